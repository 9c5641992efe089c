"""The GPU-fault home: the XID table, kernel-log parser and per-GPU verdicts with the pure
diagnosis and its ``Diagnosis`` enum (``diagnosis``), the evidence collectors (``evidence``), the
verification criteria (``verify``) and the steps (``home``)."""
