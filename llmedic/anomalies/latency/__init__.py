"""The latency home: latency percentiles as Prometheus computes them (``quantiles``), the pure
diagnosis and its ``Diagnosis`` enum (``diagnosis``), the typed step results (``results``), the
evidence collectors (``evidence``), the verification criteria (``verify``) and the steps
(``home``)."""
