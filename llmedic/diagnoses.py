"""The diagnoses of the anomaly types not yet moved into their homes (issue 15): one enum per type,
the names a playbook's ``fixes[].when`` may use. A moved type declares ``Diagnosis`` in
``llmedic/anomalies/<home>/diagnosis.py``; ``llmedic.anomalies.DIAGNOSES`` lists where each lives.

The evidence step of each flow ends with exactly one member of its type's enum; the playbook maps
it to a fix, and a diagnosis no fix lists escalates to a human. Because the set is closed, a
``when:`` entry naming anything else is refused when the playbook loads (a typo would otherwise
leave a fix that can never be chosen).

Every enum includes the "nothing explains it" value its producer can return (``unknown``,
``unexplained``, ``none``, ``healthy``): they are diagnoses too, and the shipped playbooks let them
escalate on purpose.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "DataFormatDiagnosis",
    "DataMissingDiagnosis",
    "DataQualityDiagnosis",
]


class DataMissingDiagnosis(StrEnum):
    """``llmedic.analysis.data_diagnosis.diagnose_data`` for missing values."""

    SPARSE_MISSING = "sparse_missing"
    """Few rows hit: drop them."""
    COLUMN_MISSING = "column_missing"
    """Gaps concentrated in columns that may be imputed."""
    BATCH_BROKEN = "batch_broken"
    """Too much is missing (or in columns that may not be imputed): roll back."""
    NONE = "none"
    """The audit finds no breach of this kind (the confirm step and the audit disagree)."""


class DataFormatDiagnosis(StrEnum):
    """``diagnose_data`` for badly formatted values (the commonest kind of bad cell wins)."""

    BAD_ENCODING = "bad_encoding"
    MIXED_DATE_FORMATS = "mixed_date_formats"
    TYPE_MISMATCH = "type_mismatch"
    PATTERN_VIOLATIONS = "pattern_violations"
    BATCH_BROKEN = "batch_broken"
    NONE = "none"


class DataQualityDiagnosis(StrEnum):
    """``diagnose_data`` for low-quality values."""

    DRIFT = "drift"
    DUPLICATES = "duplicates"
    OUTLIERS = "outliers"
    INVALID_VALUES = "invalid_values"
    BATCH_BROKEN = "batch_broken"
    NONE = "none"
