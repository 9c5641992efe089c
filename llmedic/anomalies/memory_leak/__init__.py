"""The memory-leak home: the leak detector on a memory series (``detector``), the pure diagnosis and
its ``Diagnosis`` enum (``diagnosis``), the typed step results (``results``), the evidence
collectors (``evidence``), the verification criteria (``verify``) and the steps (``home``)."""
