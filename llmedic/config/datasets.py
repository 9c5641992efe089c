"""The versioned datasets llmedic audits and repairs (their schema and audit thresholds) and the
golden sets scored against the services."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from llmedic.config._base import Name, _Strict

__all__ = [
    "AUDIT_CHECKS",
    "DEFAULT_MISSING_TOKENS",
    "AuditCheck",
    "ColumnSchema",
    "ColumnType",
    "DataThresholds",
    "DatasetConfig",
    "GoldenSetConfig",
]


ColumnType = Literal["int", "float", "string", "bool", "date", "datetime", "category"]

DEFAULT_MISSING_TOKENS = ["", "null", "NULL", "None", "none", "undefined", "NaN", "nan"]


class ColumnSchema(_Strict):
    """What one column of a dataset must look like."""

    dtype: ColumnType = "string"
    """The column's type; values that do not parse are format errors."""
    nullable: bool = True
    """May the column be missing (null, blank or a missing token)?"""
    max_missing_share: float | None = Field(None, ge=0, le=1)
    """Share of missing values tolerated (default: the dataset's ``thresholds.max_missing_share``)."""
    min: float | None = None
    """Smallest valid value (numeric columns)."""
    max: float | None = None
    """Largest valid value (numeric columns)."""
    allowed: list[str | int | float | bool] | None = None
    """The only values the column may take (compared as text for strings and categories)."""
    regex: str | None = None
    """Regular expression every non-missing value must match in full."""
    date_formats: list[str] = Field(default_factory=list)
    """``strptime`` formats accepted for date/datetime columns; the first is the canonical one a repair
    writes. Empty: ISO 8601 only."""
    impute: bool = True
    """May a repair invent values for this column? ``false`` for values nobody can guess (the
    answers of a knowledge base, a label): missing values there are dropped or the batch is rolled
    back, never imputed."""
    secret: bool = False
    """Mask the column's values wherever samples are shown (evidence, reports, the CLI)."""
    drift: bool = True
    """Compare the column with the reference version."""
    group_by: str | None = None
    """Numeric columns whose values legitimately differ by group (doses of different drugs in one
    column): judge outliers per value of this column, against the same group of the reference
    version (default: the dataset's ``segment_column``; neither: the whole column)."""

    @field_validator("regex")
    @classmethod
    def _regex_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _coherent(self) -> ColumnSchema:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        if (self.min is not None or self.max is not None) and self.dtype not in ("int", "float"):
            raise ValueError(f"min/max apply to int and float columns, not {self.dtype}")
        if self.date_formats and self.dtype not in ("date", "datetime"):
            raise ValueError(f"date_formats apply to date and datetime columns, not {self.dtype}")
        if self.group_by is not None and self.dtype not in ("int", "float"):
            raise ValueError(f"group_by applies to int and float columns (their outliers), not {self.dtype}")
        return self


AuditCheck = Literal["missing", "formats", "range", "allowed", "outliers", "duplicates", "drift"]
AUDIT_CHECKS: tuple[AuditCheck, ...] = (
    "missing",
    "formats",
    "range",
    "allowed",
    "outliers",
    "duplicates",
    "drift",
)


class DataThresholds(_Strict):
    """When a dataset's audit counts as a breach (defaults from the data-quality literature; see
    docs/flows/data.md)."""

    max_missing_share: float = Field(0.01, ge=0, le=1)
    """Share of missing values per nullable column above which the column breaches."""
    max_invalid_share: float = Field(0.0, ge=0, le=1)
    """Share of values per column that may fail their type, format, regex, range or allowed set."""
    max_outlier_share: float = Field(0.01, ge=0, le=1)
    """Share of values outside the outlier rule per numeric column."""
    outlier_method: Literal["iqr", "robust_z", "sigma3"] = "iqr"
    """How outliers are flagged: Tukey's IQR fences, robust z (median/MAD) or 3 sigma."""
    iqr_k: float = Field(3.0, gt=0)
    """Tukey fence multiplier: 1.5 inner fences, 3.0 outer fences (far out)."""
    robust_z: float = Field(3.5, gt=0)
    """|0.6745 (x − median) / MAD| above which a value is an outlier (Iglewicz & Hoaglin)."""
    max_duplicate_share: float = Field(0.0, ge=0, le=1)
    """Share of exact duplicate rows (and of repeated keys) tolerated."""
    drift_method: Literal["auto", "psi", "ks", "chi2", "js", "wasserstein"] = "auto"
    """``auto`` chooses per column as Evidently does (KS / chi-square up to 1000 reference rows,
    Wasserstein / Jensen–Shannon above)."""
    psi_threshold: float = Field(0.1, gt=0)
    ks_p_value: float = Field(0.05, gt=0, lt=1)
    chi2_p_value: float = Field(0.05, gt=0, lt=1)
    js_threshold: float = Field(0.1, gt=0, le=1)
    wasserstein_threshold: float = Field(0.1, gt=0)
    drift_share: float = Field(0.5, gt=0, le=1)
    """Share of compared columns that must drift for the dataset to drift."""
    drift_sample_rows: int = Field(50_000, ge=100)
    """Drift statistics use at most this many rows per side (a seeded sample)."""


class DatasetConfig(_Strict):
    """A versioned dataset llmedic audits and repairs."""

    path: Path | None = None
    """A file imported as the first version when the store has none yet."""
    format: Literal["csv", "parquet", "jsonl"] = "csv"
    """File format of the dataset's versions."""
    encoding: str = "utf-8"
    """Text encoding of CSV/JSONL files; anything else is refused with the likely encoding named."""
    description: str = ""
    """What the dataset is (shown in reports)."""
    columns: dict[str, ColumnSchema] = Field(default_factory=dict)
    """The declared schema; columns not listed are kept but not checked."""
    key: list[str] = Field(default_factory=list)
    """Columns that identify a row; a repeated key is a duplicate."""
    segment_column: str | None = None
    """Missing values are also broken down by this column, and numeric columns' outlier fences are
    computed per value of it (unless a column names its own ``group_by``)."""
    time_column: str | None = None
    """Missing values are also broken down by day of this column."""
    missing_tokens: list[str] = Field(default_factory=lambda: list(DEFAULT_MISSING_TOKENS))
    """Text values that mean "missing" (after trimming whitespace)."""
    thresholds: DataThresholds = DataThresholds()
    checks: list[AuditCheck] = Field(default_factory=lambda: list(AUDIT_CHECKS), min_length=1)
    """Which checks the audit runs (default: all). ``formats`` covers types, date formats, regexes
    and encodings; dropping ``outliers`` or ``duplicates`` saves most of the time on huge tables."""
    publish_to: Path | None = None
    """Where the current version is materialised for its consumers (atomically replaced on every
    change of the current version); leave empty when consumers read the store."""
    consumers: list[Name] = Field(default_factory=list)
    """Services that read this dataset (shown in an incident's impact)."""

    @model_validator(mode="after")
    def _columns_declared(self) -> DatasetConfig:
        if self.columns:
            for role, cols in (
                ("key", self.key),
                ("segment_column", [self.segment_column] if self.segment_column else []),
                ("time_column", [self.time_column] if self.time_column else []),
            ):
                unknown = [c for c in cols if c not in self.columns]
                if unknown:
                    raise ValueError(f"{role} names {unknown}, which are not under columns:")
            for name, col in self.columns.items():
                if col.group_by is not None and (col.group_by not in self.columns or col.group_by == name):
                    raise ValueError(
                        f"columns.{name}.group_by names {col.group_by!r}: name another column declared "
                        "under columns: (the one whose values tell the groups apart, e.g. the drug)"
                    )
        try:
            "".encode(self.encoding)
        except LookupError:
            raise ValueError(f"unknown encoding {self.encoding!r} (e.g. utf-8, cp1252, latin-1)") from None
        return self


class GoldenSetConfig(_Strict):
    """A golden set of questions with accepted answers, scored against a service."""

    path: Path
    """JSONL: ``{"id", "question", "answers": [...], "tags": [...]}`` per line."""
    service: Name
    adversarial: Path | None = None
    """JSONL of prompts the model must resist (``{"id", "kind", "prompt", "must_contain_any",
    "must_not_contain"}``), checked by the release gate."""
