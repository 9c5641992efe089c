"""The dependency-conflict home: the environment analysis (``environment``: what ``pip check``
reports, the lock, torch's CUDA), the evidence collectors (``evidence``), the pure diagnosis and its
``Diagnosis`` enum (``diagnosis``), the verification criteria (``verify``) and the steps (``home``)."""
