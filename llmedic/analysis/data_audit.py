"""Audit a dataset version against its declared schema and a reference version.

One function, :func:`audit_frame`, computes everything the three data playbooks and the monthly audit
need, and reports it as :class:`Finding` objects, each tied to the anomaly type that owns it:

* ``data_missing`` — missing values per column (null, blank, a missing token), per row, by segment
  and by day;
* ``data_format`` — values that are not of the declared type, dates in undeclared formats, regex
  violations, mis-decoded text (mojibake);
* ``data_quality`` — values out of range or outside the allowed set, outliers, duplicate rows and
  keys, drift against the reference version.

Pure: no I/O, no Prefect. The same function backs ``llmedic data validate``, every data flow's
confirm/reproduce/verify step, the monthly audit and the benchmark.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, Field

from llmedic.analysis.conformance import Parsed, as_text, isin_text, missing_mask, parse_column
from llmedic.analysis.drift import column_drift
from llmedic.analysis.outliers import fences, outlier_mask
from llmedic.catalog import AnomalyType
from llmedic.config import ColumnSchema, DatasetConfig
from llmedic.redact import MASK, redact_text

__all__ = [
    "FINDING_ANOMALY",
    "ColumnReport",
    "DataAudit",
    "Finding",
    "FindingKind",
    "audit_frame",
    "duplicated_rows",
    "effective_schema",
    "row_hashes",
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
    outlier_counts: dict[str, int] = Field(default_factory=dict)
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


def _finding(
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


_M1, _M2, _GOLDEN = (
    np.uint64(0xBF58476D1CE4E5B9),
    np.uint64(0x94D049BB133111EB),
    np.uint64(0x9E3779B97F4A7C15),
)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a cheap, well-spread 64-bit mixing of each element."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return np.asarray(x ^ (x >> np.uint64(31)))


def _codes(s: pd.Series) -> np.ndarray:
    """64-bit codes, equal exactly when two cells of the column are equal."""
    dt = s.dtype
    if isinstance(dt, np.dtype) and dt.kind == "f":
        a = s.to_numpy()
        a = np.where(np.isnan(a), np.nan, a + 0.0)  # one NaN; -0.0 == 0.0
        return a.astype(np.float64).view(np.uint64)
    if isinstance(dt, np.dtype) and dt.kind in "iub":
        return s.to_numpy().astype(np.int64, copy=False).view(np.uint64)
    if isinstance(dt, np.dtype) and dt.kind == "M":
        return s.to_numpy().view(np.int64).view(np.uint64)
    if isinstance(dt, pd.StringDtype) or dt == "str":
        arr = pa.array(s)
        arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
        idx = pc.fill_null(pc.dictionary_encode(arr).indices, -1)
        return np.asarray(idx.to_numpy(zero_copy_only=False)).astype(np.int64).view(np.uint64)
    if s.dtype == np.dtype(object) and s.map(lambda v: isinstance(v, list | dict)).any():
        s = s.map(lambda v: json.dumps(v, sort_keys=True, default=str) if isinstance(v, list | dict) else v)
    return pd.factorize(s, use_na_sentinel=True)[0].astype(np.int64).view(np.uint64)


def row_hashes(frame: pd.DataFrame, columns: Iterable[str]) -> pd.Series:
    """One 64-bit hash per row over ``columns``: per-column codes (the bits of numbers, Arrow
    dictionary codes for text) mixed together. Equal rows always hash equal; unequal rows may
    collide, so :func:`duplicated_rows` confirms every candidate exactly."""
    h = np.zeros(len(frame), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for i, name in enumerate(columns, 1):
            h = _mix(h ^ (_codes(frame[name]) + _GOLDEN * np.uint64(i)))
    return pd.Series(h, index=frame.index)


def _cheap(s: pd.Series) -> bool:
    return isinstance(s.dtype, np.dtype) and s.dtype.kind in "fiubM"


def duplicated_rows(frame: pd.DataFrame, columns: Iterable[str]) -> np.ndarray:
    """Rows that repeat an earlier row exactly on ``columns`` (the first occurrence is not marked).

    Two stages, so ten million rows cost seconds: rows whose *number* columns repeat are found by
    hashing those columns alone (text needs a dictionary of every distinct value, numbers only their
    bits); only those candidates are then compared on every column, exactly, by per-column codes.
    """
    cols = list(columns)
    if not cols or frame.empty:
        return np.zeros(len(frame), dtype=bool)
    cheap = [c for c in cols if _cheap(frame[c])] or cols
    cand = row_hashes(frame, cheap).duplicated(keep=False).to_numpy()
    out = np.zeros(len(frame), dtype=bool)
    if not cand.any():
        return out
    sub = frame[cand]  # a boolean filter: Arrow columns are filtered chunk by chunk, not copied whole
    codes = pd.DataFrame({i: _codes(sub[c]).view(np.int64) for i, c in enumerate(cols)})
    out[np.flatnonzero(cand)[codes.duplicated().to_numpy()]] = True
    return out


def _sample(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """At most ``rows`` rows, drawn without replacement (seeded), in their original order."""
    if len(frame) <= rows:
        return frame
    keep = np.zeros(len(frame), dtype=bool)
    keep[np.random.default_rng(seed).choice(len(frame), size=rows, replace=False)] = True
    return frame[keep]


def audit_frame(
    frame: pd.DataFrame,
    cfg: DatasetConfig,
    *,
    dataset: str = "",
    version: str | None = None,
    reference: pd.DataFrame | None = None,
    reference_version: str | None = None,
) -> DataAudit:
    """Profile ``frame`` against ``cfg``'s schema and thresholds (and ``reference`` for drift)."""
    t = cfg.thresholds
    checks = set(cfg.checks)
    n = len(frame)
    schema = effective_schema(frame, cfg)
    findings: list[Finding] = []
    reports: list[ColumnReport] = []
    miss_matrix: dict[str, np.ndarray] = {}
    parsed_cols: dict[str, Parsed] = {}

    def share(count: int, of: int = n) -> float:
        return count / of if of else 0.0

    for name, col in schema.items():
        if name not in frame.columns:
            continue
        s = frame[name]
        missing = missing_mask(s, cfg.missing_tokens)
        miss_matrix[name] = missing
        parsed = parse_column(s, col, missing, formats="formats" in checks, stamps=name == cfg.time_column)
        parsed_cols[name] = parsed
        n_miss = int(missing.sum())
        report = ColumnReport(name=name, dtype=col.dtype, missing=n_miss, missing_share=share(n_miss))
        limit = col.max_missing_share if col.max_missing_share is not None else t.max_missing_share
        if n_miss and "missing" in checks:
            breach = (not col.nullable) or share(n_miss) > limit
            findings.append(
                _finding(
                    "missing",
                    n_miss,
                    n,
                    0.0 if not col.nullable else limit,
                    f"{name}: {n_miss} missing ({share(n_miss):.2%})"
                    + (" in a non-nullable column" if not col.nullable else f"; limit {limit:.2%}"),
                    column=name,
                    mask=missing,
                    breach=breach,
                )
            )
        # type / format
        kinds: dict[FindingKind, np.ndarray] = {}
        if parsed.invalid.any() and "formats" in checks:
            if col.dtype in ("date", "datetime"):
                kinds["date_format" if any(p.kind == "date_format" for p in parsed.patterns) else "type"] = (
                    parsed.invalid
                )
            elif col.regex is not None and col.dtype in ("string", "category"):
                kinds["pattern"] = parsed.invalid
            else:
                kinds["type"] = parsed.invalid
        if parsed.encoding_bad is not None and parsed.encoding_bad.any() and "formats" in checks:
            kinds["encoding"] = parsed.encoding_bad
        for kind, mask in kinds.items():
            count = int(mask.sum())
            report.invalid[kind] = count
            pats = [p for p in parsed.patterns if (p.kind == "encoding") == (kind == "encoding")]
            what = {
                "type": f"not {col.dtype}",
                "date_format": f"dates not in the declared format(s) {col.date_formats or ['ISO 8601']}",
                "pattern": f"values not matching {col.regex!r}",
                "encoding": "mis-decoded text (mojibake)",
            }[kind]
            formats = len(parsed.formats)
            findings.append(
                _finding(
                    kind,
                    count,
                    n,
                    t.max_invalid_share,
                    f"{name}: {count} {what}"
                    + (f"; the column uses {formats} date formats" if formats > 1 else ""),
                    column=name,
                    mask=mask,
                    patterns=[p.describe(secret=col.secret) for p in pats],
                )
            )
        report.date_formats = parsed.formats
        # range / allowed / outliers on valid values

        def valid(missing: np.ndarray = missing, parsed: Parsed = parsed) -> np.ndarray:
            return np.asarray(~(missing | parsed.invalid))

        if col.dtype in ("int", "float"):
            v = parsed.values
            numpy_number = isinstance(v.dtype, np.dtype) and v.dtype.kind in "fiu"
            x = v.to_numpy() if numpy_number else v.to_numpy(dtype="float64", na_value=np.nan)
            if x.dtype.kind in "iu":
                if x.size:
                    report.stats = {"min": float(x.min()), "max": float(x.max()), "mean": float(x.mean())}
                finite, count = np.ones(0, dtype=bool), 0
            else:
                finite = np.isfinite(x)
                count = int(finite.sum())
            if count:  # reductions with `where=`: no copy of the column (nanmean copies it)
                report.stats = {
                    "min": float(np.min(x, where=finite, initial=np.inf)),
                    "max": float(np.max(x, where=finite, initial=-np.inf)),
                    "mean": float(np.sum(x, where=finite) / count),
                }
            if (col.min is not None or col.max is not None) and "range" in checks:
                with np.errstate(invalid="ignore"):
                    # Missing and unparseable values are NaN here, and NaN compares False.
                    lo = x < col.min if col.min is not None else np.zeros(n, dtype=bool)
                    out = np.logical_or(lo, x > col.max, out=lo) if col.max is not None else lo
                if out.any():
                    count = int(out.sum())
                    report.invalid["range"] = count
                    findings.append(
                        _finding(
                            "range",
                            count,
                            n,
                            t.max_invalid_share,
                            f"{name}: {count} values outside [{col.min}, {col.max}]",
                            column=name,
                            mask=out,
                        )
                    )
            f = fences(x, iqr_k=t.iqr_k, robust_z=t.robust_z) if "outliers" in checks else None
            if f is not None:
                report.stats["median"] = f.median
                report.outlier_counts = {m: f.count(m) for m in ("iqr", "robust_z", "sigma3")}
                report.outlier_fences = {
                    "iqr_low": f.iqr_low,
                    "iqr_high": f.iqr_high,
                    "robust_low": f.robust_low,
                    "robust_high": f.robust_high,
                    "sigma_low": f.sigma_low,
                    "sigma_high": f.sigma_high,
                }
                count = f.count(t.outlier_method)
                if count:
                    mask = outlier_mask(x, f, t.outlier_method)
                    report.invalid["outliers"] = count
                    low, high = f.limits(t.outlier_method)
                    findings.append(
                        _finding(
                            "outliers",
                            count,
                            n,
                            t.max_outlier_share,
                            f"{name}: {count} outliers by {t.outlier_method} (outside [{low:.4g}, {high:.4g}]); "
                            f"IQR {f.iqr_count}, robust z {f.robust_count}, 3σ {f.sigma_count}",
                            column=name,
                            mask=mask,
                        )
                    )
        if col.allowed is not None and "allowed" in checks:
            if col.dtype in ("int", "float"):
                allowed_num = np.array([float(a) for a in col.allowed if not isinstance(a, str)], dtype=float)
                x = parsed.values.to_numpy(dtype="float64", na_value=np.nan)
                bad = valid() & ~np.isin(x, allowed_num)
                bad_values = as_text(frame[name][bad])
            else:
                allowed_txt = [str(a) for a in col.allowed]
                bad = valid() & ~isin_text(s, allowed_txt)
                if bad.any():  # surrounding spaces are not a wrong value: re-check the few left
                    idx = np.flatnonzero(bad)
                    bad[idx[isin_text(s[bad], allowed_txt, strip=True)]] = False
                bad_values = as_text(s[bad]).str.strip()
            if bad.any():
                count = int(bad.sum())
                report.invalid["allowed"] = count
                counts = bad_values.value_counts().head(8)
                lower = {str(a).lower(): str(a) for a in col.allowed}
                near = int(
                    sum(n for v, n in bad_values.value_counts().items() if str(v).strip().lower() in lower)
                )
                findings.append(
                    _finding(
                        "allowed",
                        count,
                        n,
                        t.max_invalid_share,
                        f"{name}: {count} values outside the allowed set"
                        + (f" ({near} differ from an allowed value only by case)" if near else ""),
                        column=name,
                        mask=bad,
                        patterns=[
                            f"{MASK if col.secret else redact_text(repr(v))} × {c}" for v, c in counts.items()
                        ],
                    )
                )
        reports.append(report)

    # missing per row, by segment, by day
    checked = list(miss_matrix)
    audit = DataAudit(
        dataset=dataset,
        version=version,
        reference=reference_version,
        rows=n,
        columns=len(frame.columns),
        missing_cells=0,
        rows_with_missing=0,
    )
    if checked:
        per_row: np.ndarray = np.zeros(n, dtype=np.int16 if len(checked) < 32767 else np.int32)
        for m in miss_matrix.values():
            np.add(per_row, m, out=per_row, casting="unsafe")
        audit.missing_cells = int(per_row.sum())
        audit.rows_with_missing = int(np.count_nonzero(per_row))
        per_row_counts = np.bincount(per_row)  # O(n); np.unique would sort ten million integers
        audit.missing_per_row = {int(k): int(c) for k, c in enumerate(per_row_counts) if c}
        if cfg.segment_column and cfg.segment_column in frame.columns:
            seg = as_text(frame[cfg.segment_column]).fillna("(missing)")
            audit.missing_by_segment = {
                str(k): round(float(v) / len(checked), 6)
                for k, v in pd.Series(per_row, index=frame.index).groupby(seg.to_numpy()).mean().items()
            }
        if cfg.time_column and cfg.time_column in parsed_cols:
            days = pd.to_datetime(parsed_cols[cfg.time_column].values, errors="coerce").dt.strftime(
                "%Y-%m-%d"
            )
            audit.missing_by_day = {
                str(k): round(float(v) / len(checked), 6)
                for k, v in pd.Series(per_row, index=frame.index)
                .groupby(days.fillna("(no date)").to_numpy())
                .mean()
                .items()
            }
    # duplicates
    dup = duplicated_rows(frame, frame.columns) if "duplicates" in checks else np.zeros(n, dtype=bool)
    audit.duplicate_rows = int(dup.sum())
    if audit.duplicate_rows:
        findings.append(
            _finding(
                "duplicate_rows",
                audit.duplicate_rows,
                n,
                t.max_duplicate_share,
                f"{audit.duplicate_rows} rows repeat an earlier row exactly",
                mask=dup,
            )
        )
    if cfg.key and "duplicates" in checks and all(k in frame.columns for k in cfg.key):
        kdup = duplicated_rows(frame, cfg.key) & ~dup
        audit.duplicate_keys = int(kdup.sum())
        if audit.duplicate_keys:
            findings.append(
                _finding(
                    "duplicate_keys",
                    audit.duplicate_keys,
                    n,
                    t.max_duplicate_share,
                    f"{audit.duplicate_keys} rows repeat the key {cfg.key} of an earlier row with other values",
                    mask=kdup,
                )
            )
    # drift
    if reference is not None and "drift" in checks:
        compared: list[str] = []
        # Drift is measured on samples (drawn once per side, the same rows for every column).
        ref_sample = _sample(reference, t.drift_sample_rows, seed=0)
        cur_sample = _sample(frame, t.drift_sample_rows, seed=1)
        for name, col in schema.items():
            if not col.drift or name not in parsed_cols or name not in reference.columns:
                continue
            if col.dtype not in ("int", "float", "category", "bool"):
                continue
            numeric = col.dtype in ("int", "float")
            values = []
            for side in (ref_sample, cur_sample):
                miss = missing_mask(side[name], cfg.missing_tokens)
                if numeric:
                    values.append(parse_column(side[name], col, miss).values)
                else:
                    values.append(as_text(side[name]).str.strip().where(~pd.Series(miss, index=side.index)))
            d = column_drift(name, values[0], values[1], numeric, t)
            if d is None:
                continue
            compared.append(name)
            rep = next(r for r in reports if r.name == name)
            rep.drift = {
                "method": d.method,
                "statistic": d.statistic,
                "threshold": d.threshold,
                "drifted": d.drifted,
                "psi": d.psi,
            }
            if d.drifted:
                audit.drifted_columns.append(name)
        if compared:
            audit.drift_share = len(audit.drifted_columns) / len(compared)
            audit.dataset_drift = audit.drift_share >= t.drift_share
            if audit.drifted_columns:
                msgs = [
                    f"{r.name}: {r.drift['method']} {float(r.drift['statistic']):.4g}, PSI {float(r.drift['psi']):.3f}"
                    for r in reports
                    if r.drift and r.drift["drifted"]
                ]
                findings.append(
                    _finding(
                        "drift",
                        len(audit.drifted_columns),
                        len(compared),
                        t.drift_share,
                        f"{len(audit.drifted_columns)} of {len(compared)} columns drifted from the reference"
                        + (f" {reference_version}" if reference_version else "")
                        + (" — dataset drift" if audit.dataset_drift else ""),
                        patterns=msgs,
                        breach=audit.dataset_drift,
                    )
                )
    audit.column_reports = reports
    audit.findings = findings
    return audit
