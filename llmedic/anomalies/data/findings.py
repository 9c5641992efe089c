"""What the data audit reports: :class:`Finding` objects, each tied to the anomaly type that owns it
(``FINDING_ANOMALY``), the profile of each column and the whole :class:`DataAudit`. Pure."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from llmedic.catalog import AnomalyType
from llmedic.config import ColumnSchema, DatasetConfig

__all__ = [
    "FINDING_ANOMALY",
    "ColumnReport",
    "DataAudit",
    "Finding",
    "FindingKind",
    "effective_schema",
    "finding",
]

FindingKind = Literal[
    "missing",
    "type",
    "date_format",
    "pattern",
    "encoding",
    "range",
    "allowed",
    "outliers",
    "duplicate_rows",
    "duplicate_keys",
    "drift",
]

FINDING_ANOMALY: dict[str, AnomalyType] = {
    "missing": AnomalyType.DATA_MISSING,
    "type": AnomalyType.DATA_FORMAT,
    "date_format": AnomalyType.DATA_FORMAT,
    "pattern": AnomalyType.DATA_FORMAT,
    "encoding": AnomalyType.DATA_FORMAT,
    "range": AnomalyType.DATA_QUALITY,
    "allowed": AnomalyType.DATA_QUALITY,
    "outliers": AnomalyType.DATA_QUALITY,
    "duplicate_rows": AnomalyType.DATA_QUALITY,
    "duplicate_keys": AnomalyType.DATA_QUALITY,
    "drift": AnomalyType.DATA_QUALITY,
}

_SAMPLE_ROWS = 5
"""Affected rows a finding names (for evidence samples)."""


class Finding(BaseModel):
    """Something the audit found, whether or not it breaches its threshold."""

    kind: FindingKind
    anomaly: AnomalyType
    column: str | None = None
    count: int
    share: float
    threshold: float
    breach: bool
    message: str
    patterns: list[str] = Field(default_factory=list)
    rows: list[int] = Field(default_factory=list)
    """Positions of a few affected rows (for evidence samples)."""


class ColumnReport(BaseModel):
    """The profile of one column."""

    name: str
    dtype: str
    missing: int
    missing_share: float
    invalid: dict[str, int] = Field(default_factory=dict)
    """Finding kind → cells (type, date_format, pattern, encoding, range, allowed, outliers)."""
    stats: dict[str, float] = Field(default_factory=dict)
    outlier_fences: dict[str, float] = Field(default_factory=dict)
    """The column's overall fences of each rule (from the reference when there is one)."""
    outlier_counts: dict[str, int] = Field(default_factory=dict)
    outlier_basis: str = ""
    """What the outliers were judged by: the reference's fences (per group), or the batch's own."""
    outlier_group_fences: dict[str, list[float]] = Field(default_factory=dict)
    """Grouped columns: each group's (low, high) fences of the dataset's ``outlier_method``."""
    date_formats: dict[str, int] = Field(default_factory=dict)
    drift: dict[str, float | str | bool] | None = None


class DataAudit(BaseModel):
    """Everything :func:`audit_frame` measured."""

    dataset: str
    version: str | None = None
    reference: str | None = None
    rows: int
    columns: int
    missing_cells: int
    rows_with_missing: int
    missing_per_row: dict[int, int] = Field(default_factory=dict)
    """Number of missing checked cells in a row → rows with that many."""
    missing_by_segment: dict[str, float] = Field(default_factory=dict)
    missing_by_day: dict[str, float] = Field(default_factory=dict)
    duplicate_rows: int = 0
    duplicate_keys: int = 0
    drifted_columns: list[str] = Field(default_factory=list)
    drift_share: float | None = None
    dataset_drift: bool = False
    column_reports: list[ColumnReport] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)

    def breaches(self, anomaly: AnomalyType | None = None) -> list[Finding]:
        """Findings over their threshold (of one anomaly type when given)."""
        return [f for f in self.findings if f.breach and (anomaly is None or f.anomaly == anomaly)]

    def anomalies(self) -> list[AnomalyType]:
        """Anomaly types with at least one breach, in catalogue order."""
        hit = {f.anomaly for f in self.breaches()}
        return [a for a in AnomalyType if a in hit]

    @property
    def clean_cell_share(self) -> float:
        """Share of checked cells that are neither missing nor invalid (a trend figure)."""
        checked = sum(1 for _ in self.column_reports) * self.rows
        bad = sum(
            c.missing + sum(v for k, v in c.invalid.items() if k != "outliers") for c in self.column_reports
        )
        return 1.0 if checked == 0 else max(0.0, 1 - bad / checked)

    def column(self, name: str) -> ColumnReport | None:
        """The profile of one column."""
        return next((c for c in self.column_reports if c.name == name), None)


def effective_schema(frame: pd.DataFrame, cfg: DatasetConfig) -> dict[str, ColumnSchema]:
    """The declared columns, or (no schema declared) one inferred from the frame's dtypes."""
    if cfg.columns:
        return dict(cfg.columns)
    out: dict[str, ColumnSchema] = {}
    for name in frame.columns:
        dt = frame[name].dtype
        if pd.api.types.is_bool_dtype(dt):
            kind = "bool"
        elif pd.api.types.is_numeric_dtype(dt):
            kind = "float"
        elif pd.api.types.is_datetime64_any_dtype(dt):
            kind = "datetime"
        else:
            kind = "string"
        out[str(name)] = ColumnSchema(dtype=kind)
    return out


def finding(
    kind: FindingKind,
    count: int,
    of: int,
    threshold: float,
    message: str,
    *,
    column: str | None = None,
    mask: np.ndarray | None = None,
    patterns: list[str] | None = None,
    breach: bool | None = None,
) -> Finding:
    """A finding of ``count`` out of ``of`` (rows, cells or columns); it breaches when its share
    exceeds ``threshold`` unless the caller decides (``breach``)."""
    share = count / of if of else 0.0
    return Finding(
        kind=kind,
        anomaly=FINDING_ANOMALY[kind],
        column=column,
        count=count,
        share=share,
        threshold=threshold,
        breach=share > threshold if breach is None else breach,
        message=message,
        patterns=patterns or [],
        rows=_rows(mask) if mask is not None else [],
    )


def _rows(mask: np.ndarray) -> list[int]:
    return [int(i) for i in np.flatnonzero(mask)[:_SAMPLE_ROWS]]
