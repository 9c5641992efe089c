"""From a data audit to a diagnosis the playbook maps to a fix, and the bisection of a lineage.

Diagnoses per anomaly type (the ``when:`` names of the data playbooks):

* ``data_missing``: ``sparse_missing`` (few rows hit: drop them), ``column_missing`` (impute),
  ``batch_broken`` (a column mostly empty, or too many rows hit: roll back);
* ``data_format``: ``bad_encoding``, ``mixed_date_formats``, ``type_mismatch``,
  ``pattern_violations`` (the commonest kind of bad cell wins), or ``batch_broken``;
* ``data_quality``: ``drift`` (dataset drift against the reference), ``duplicates``, ``outliers``,
  ``invalid_values`` (out of range / not allowed), or ``batch_broken``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from llmedic.analysis.data_audit import DataAudit, Finding
from llmedic.catalog import AnomalyType
from llmedic.diagnoses import DataFormatDiagnosis, DataMissingDiagnosis, DataQualityDiagnosis

__all__ = ["DataDiagnosis", "bisect_first_bad", "diagnose_data", "rows_hit"]

T = TypeVar("T")

DataDiagnosis = DataMissingDiagnosis | DataFormatDiagnosis | DataQualityDiagnosis

_FORMAT_DIAGNOSIS = {
    "encoding": DataFormatDiagnosis.BAD_ENCODING,
    "date_format": DataFormatDiagnosis.MIXED_DATE_FORMATS,
    "type": DataFormatDiagnosis.TYPE_MISMATCH,
    "pattern": DataFormatDiagnosis.PATTERN_VIOLATIONS,
}
_QUALITY_DIAGNOSIS = {
    "duplicate_rows": DataQualityDiagnosis.DUPLICATES,
    "duplicate_keys": DataQualityDiagnosis.DUPLICATES,
    "outliers": DataQualityDiagnosis.OUTLIERS,
    "range": DataQualityDiagnosis.INVALID_VALUES,
    "allowed": DataQualityDiagnosis.INVALID_VALUES,
}
_NONE: dict[AnomalyType, DataDiagnosis] = {
    AnomalyType.DATA_MISSING: DataMissingDiagnosis.NONE,
    AnomalyType.DATA_FORMAT: DataFormatDiagnosis.NONE,
    AnomalyType.DATA_QUALITY: DataQualityDiagnosis.NONE,
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
    if anomaly == AnomalyType.DATA_MISSING:
        if worst.share > rollback_row_share or share > rollback_row_share:
            return DataMissingDiagnosis.BATCH_BROKEN, (
                f"{worst.column} is {worst.share:.1%} missing and {share:.1%} of rows have gaps "
                f"(> {rollback_row_share:.0%}): the batch is broken, not sparse"
            )
        if share <= drop_max_share:
            return (
                DataMissingDiagnosis.SPARSE_MISSING,
                f"{audit.rows_with_missing} rows ({share:.2%} ≤ {drop_max_share:.0%}) have missing values",
            )
        guarded = sorted({f.column for f in breaches if f.column in no_impute})
        if guarded:
            return DataMissingDiagnosis.BATCH_BROKEN, (
                f"{share:.1%} of rows (> {drop_max_share:.0%}) have gaps in {guarded}, whose values "
                "cannot be imputed: roll back rather than invent them"
            )
        cols = ", ".join(f"{f.column} {f.share:.1%}" for f in breaches)
        return (
            DataMissingDiagnosis.COLUMN_MISSING,
            f"missing values concentrated in columns: {cols}; {share:.1%} of rows hit",
        )
    if anomaly == AnomalyType.DATA_FORMAT:
        if share > rollback_row_share:
            return (
                DataFormatDiagnosis.BATCH_BROKEN,
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
    drift = next((f for f in breaches if f.kind == "drift"), None)
    if drift is not None:
        return DataQualityDiagnosis.DRIFT, drift.message + ": " + "; ".join(drift.patterns)
    if share > rollback_row_share:
        return (
            DataQualityDiagnosis.BATCH_BROKEN,
            f"{share:.1%} of rows have quality problems (> {rollback_row_share:.0%})",
        )
    by_quality: dict[DataQualityDiagnosis, int] = {}
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
