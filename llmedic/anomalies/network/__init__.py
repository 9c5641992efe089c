"""The network-interruption home: the active-endpoint record a failover writes (``active``), the
evidence collectors (``evidence``), the pure diagnosis and its ``Diagnosis`` enum (``diagnosis``),
the verification criteria (``verify``) and the steps (``home``)."""
