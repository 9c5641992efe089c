"""From a data audit to a diagnosis the playbook maps to a fix, and the bisection of a lineage.
Pure: no adapter, no I/O, no Prefect.

The data home serves three anomaly types, each with its own closed set of diagnoses (the ``when:``
names of its playbook):

* ``data_missing`` (:class:`MissingDiagnosis`): ``sparse_missing`` (few rows hit: drop them),
  ``column_missing`` (impute), ``batch_broken`` (a column mostly empty, or too many rows hit: roll
  back);
* ``data_format`` (:class:`FormatDiagnosis`): ``bad_encoding``, ``mixed_date_formats``,
  ``type_mismatch``, ``pattern_violations`` (the commonest kind of bad cell wins), or
  ``batch_broken``;
* ``data_quality`` (:class:`QualityDiagnosis`): ``drift`` (a drift-enabled column drifted from the
  reference, whatever share of the columns did), ``duplicates``, ``outliers``, ``invalid_values``
  (out of range / not allowed), or ``batch_broken``.

A systematic change is never repaired: when a column drifted, ``data_quality`` is ``drift`` and
``data_missing`` / ``data_format`` are ``batch_broken`` (both roll back), because no edit of some
cells makes a shifted distribution right.

Each includes ``none``: the audit finds no breach of the kind (the confirm step and the audit
disagree); the shipped playbooks let it escalate on purpose.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import TypeVar

from llmedic.anomalies.data.findings import DataAudit, Finding
from llmedic.catalog import AnomalyType

__all__ = [
    "DIAGNOSIS_OF",
    "DataDiagnosis",
    "FormatDiagnosis",
    "MissingDiagnosis",
    "QualityDiagnosis",
    "bisect_first_bad",
    "diagnose_data",
    "rows_hit",
]

T = TypeVar("T")


class MissingDiagnosis(StrEnum):
    """:func:`diagnose_data` for missing values (``data_missing``)."""

    SPARSE_MISSING = "sparse_missing"
    """Few rows hit: drop them."""
    COLUMN_MISSING = "column_missing"
    """Gaps concentrated in columns that may be imputed."""
    BATCH_BROKEN = "batch_broken"
    """Too much is missing (or in columns that may not be imputed): roll back."""
    NONE = "none"
    """The audit finds no breach of this kind (the confirm step and the audit disagree)."""


class FormatDiagnosis(StrEnum):
    """:func:`diagnose_data` for badly formatted values (``data_format``; the commonest kind of bad
    cell wins)."""

    BAD_ENCODING = "bad_encoding"
    MIXED_DATE_FORMATS = "mixed_date_formats"
    TYPE_MISMATCH = "type_mismatch"
    PATTERN_VIOLATIONS = "pattern_violations"
    BATCH_BROKEN = "batch_broken"
    NONE = "none"


class QualityDiagnosis(StrEnum):
    """:func:`diagnose_data` for low-quality values (``data_quality``)."""

    DRIFT = "drift"
    DUPLICATES = "duplicates"
    OUTLIERS = "outliers"
    INVALID_VALUES = "invalid_values"
    BATCH_BROKEN = "batch_broken"
    NONE = "none"


DataDiagnosis = MissingDiagnosis | FormatDiagnosis | QualityDiagnosis

DIAGNOSIS_OF: dict[AnomalyType, type[StrEnum]] = {
    AnomalyType.DATA_MISSING: MissingDiagnosis,
    AnomalyType.DATA_FORMAT: FormatDiagnosis,
    AnomalyType.DATA_QUALITY: QualityDiagnosis,
}
"""The ``Diagnosis`` enum of each anomaly type the data home serves."""

_FORMAT_DIAGNOSIS = {
    "encoding": FormatDiagnosis.BAD_ENCODING,
    "date_format": FormatDiagnosis.MIXED_DATE_FORMATS,
    "type": FormatDiagnosis.TYPE_MISMATCH,
    "pattern": FormatDiagnosis.PATTERN_VIOLATIONS,
}
_QUALITY_DIAGNOSIS = {
    "duplicate_rows": QualityDiagnosis.DUPLICATES,
    "duplicate_keys": QualityDiagnosis.DUPLICATES,
    "outliers": QualityDiagnosis.OUTLIERS,
    "range": QualityDiagnosis.INVALID_VALUES,
    "allowed": QualityDiagnosis.INVALID_VALUES,
}
_NONE: dict[AnomalyType, DataDiagnosis] = {
    AnomalyType.DATA_MISSING: MissingDiagnosis.NONE,
    AnomalyType.DATA_FORMAT: FormatDiagnosis.NONE,
    AnomalyType.DATA_QUALITY: QualityDiagnosis.NONE,
}


def rows_hit(audit: DataAudit, anomaly: AnomalyType) -> float:
    """Upper estimate of the share of rows an anomaly type's breaches touch."""
    if audit.rows == 0:
        return 0.0
    if anomaly == AnomalyType.DATA_MISSING:
        return audit.rows_with_missing / audit.rows
    cells = sum(f.count for f in audit.breaches(anomaly) if f.kind != "drift")
    return min(1.0, cells / audit.rows)


def diagnose_data(
    anomaly: AnomalyType,
    audit: DataAudit,
    rollback_row_share: float,
    drop_max_share: float,
    no_impute: frozenset[str] = frozenset(),
) -> tuple[DataDiagnosis, str]:
    """(diagnosis, reason) for a confirmed data anomaly. ``no_impute``: columns whose missing
    values may not be invented (too many of them → the batch is broken)."""
    breaches = audit.breaches(anomaly)
    if not breaches:
        return _NONE[anomaly], f"no {anomaly.value} breach in {audit.version}"
    share = rows_hit(audit, anomaly)
    worst: Finding = max(breaches, key=lambda f: f.share)
    drifted = [f for f in audit.breaches(AnomalyType.DATA_QUALITY) if f.kind == "drift" and f.column]
    drift_reason = "; ".join(f.message for f in drifted)
    if drifted and anomaly == AnomalyType.DATA_MISSING:
        return MissingDiagnosis.BATCH_BROKEN, f"the batch also drifted from the reference: {drift_reason}"
    if drifted and anomaly == AnomalyType.DATA_FORMAT:
        return FormatDiagnosis.BATCH_BROKEN, f"the batch also drifted from the reference: {drift_reason}"
    if anomaly == AnomalyType.DATA_MISSING:
        if worst.share > rollback_row_share or share > rollback_row_share:
            return MissingDiagnosis.BATCH_BROKEN, (
                f"{worst.column} is {worst.share:.1%} missing and {share:.1%} of rows have gaps "
                f"(> {rollback_row_share:.0%}): the batch is broken, not sparse"
            )
        if share <= drop_max_share:
            return (
                MissingDiagnosis.SPARSE_MISSING,
                f"{audit.rows_with_missing} rows ({share:.2%} ≤ {drop_max_share:.0%}) have missing values",
            )
        guarded = sorted({f.column for f in breaches if f.column in no_impute})
        if guarded:
            return MissingDiagnosis.BATCH_BROKEN, (
                f"{share:.1%} of rows (> {drop_max_share:.0%}) have gaps in {guarded}, whose values "
                "cannot be imputed: roll back rather than invent them"
            )
        cols = ", ".join(f"{f.column} {f.share:.1%}" for f in breaches)
        return (
            MissingDiagnosis.COLUMN_MISSING,
            f"missing values concentrated in columns: {cols}; {share:.1%} of rows hit",
        )
    if anomaly == AnomalyType.DATA_FORMAT:
        if share > rollback_row_share:
            return (
                FormatDiagnosis.BATCH_BROKEN,
                f"{share:.1%} of rows have badly formatted values (> {rollback_row_share:.0%})",
            )
        by_kind: dict[str, int] = {}
        for f in breaches:
            by_kind[f.kind] = by_kind.get(f.kind, 0) + f.count
        kind = max(by_kind, key=lambda k: by_kind[k])
        detail = "; ".join(
            f.message + (f" [{', '.join(f.patterns[:3])}]" if f.patterns else "") for f in breaches
        )
        return _FORMAT_DIAGNOSIS[kind], detail
    drift = [f for f in breaches if f.kind == "drift"]
    if drift:
        return QualityDiagnosis.DRIFT, "; ".join(
            f.message + ("" if f.column or not f.patterns else ": " + "; ".join(f.patterns)) for f in drift
        )
    if share > rollback_row_share:
        return (
            QualityDiagnosis.BATCH_BROKEN,
            f"{share:.1%} of rows have quality problems (> {rollback_row_share:.0%})",
        )
    by_quality: dict[QualityDiagnosis, int] = {}
    for f in breaches:
        d = _QUALITY_DIAGNOSIS[f.kind]
        by_quality[d] = by_quality.get(d, 0) + f.count
    diagnosis = max(by_quality, key=lambda k: by_quality[k])
    return diagnosis, "; ".join(f.message for f in breaches)


def bisect_first_bad(versions: Sequence[T], is_bad: Callable[[T], bool]) -> tuple[int, int]:
    """Index of the first version (oldest first) with the defect, assuming once it appears it stays;
    and how many versions were examined. The last version is known bad."""
    if not versions:
        raise ValueError("no versions to bisect")
    lo, hi = 0, len(versions) - 1  # versions[hi] is bad
    probes = 0
    while lo < hi:
        mid = (lo + hi) // 2
        probes += 1
        if is_bad(versions[mid]):
            hi = mid
        else:
            lo = mid + 1
    return hi, probes
