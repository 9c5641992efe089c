"""The data home, shared by ``data_missing``, ``data_format`` and ``data_quality``.

The audit of a dataset version against its schema and a reference (``audit`` runs it, ``findings``
is what it reports, with ``conformance`` for types and formats, ``outliers`` and ``duplicates``
behind it, and the core's ``llmedic.drift``), the pure diagnosis and the three ``Diagnosis`` enums (``diagnosis``),
the repairs a fix applies (``repair_ops``: the typed operations; ``repair``: applying them), the
typed step results (``results``), the evidence collectors (``evidence``), the verification criteria
(``verify``) and the steps (``home``). Everything but the last three is pure: no adapter, no I/O, no
Prefect.
"""
