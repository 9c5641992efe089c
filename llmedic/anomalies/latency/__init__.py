"""The latency home: the pure diagnosis and its ``Diagnosis`` enum (``diagnosis``), the typed step
results (``results``), the evidence collectors (``evidence``), the verification criteria
(``verify``) and the steps (``home``). The percentiles themselves (as Prometheus computes them) are
:mod:`llmedic.quantiles`, shared with the adapters."""
