"""Audit a dataset version against its declared schema and a reference version.

One function, :func:`audit_frame`, computes everything the three data playbooks and the monthly audit
need, and reports it as :class:`~llmedic.anomalies.data.findings.Finding` objects, each tied to the anomaly type that owns it:

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

from dataclasses import dataclass

import numpy as np
import pandas as pd

from llmedic.anomalies.data.conformance import Parsed, as_text, isin_text, missing_mask, parse_column
from llmedic.anomalies.data.duplicates import duplicated_rows
from llmedic.anomalies.data.findings import (
    ColumnReport,
    DataAudit,
    Finding,
    FindingKind,
    effective_schema,
    finding,
)
from llmedic.anomalies.data.outliers import fences, outlier_mask
from llmedic.config import ColumnSchema, DatasetConfig, DataThresholds
from llmedic.drift import column_drift
from llmedic.redact import MASK, redact_text

__all__ = ["audit_frame"]


def _sample(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """At most ``rows`` rows, drawn without replacement (seeded), in their original order."""
    if len(frame) <= rows:
        return frame
    keep = np.zeros(len(frame), dtype=bool)
    keep[np.random.default_rng(seed).choice(len(frame), size=rows, replace=False)] = True
    return frame[keep]


@dataclass
class _Column:
    """One column under audit: what its checks share, and what they add to."""

    name: str
    col: ColumnSchema
    s: pd.Series
    missing: np.ndarray
    parsed: Parsed
    report: ColumnReport
    n: int
    t: DataThresholds
    checks: set[str]
    findings: list[Finding]

    def share(self, count: int) -> float:
        return count / self.n if self.n else 0.0

    def valid(self) -> np.ndarray:
        return np.asarray(~(self.missing | self.parsed.invalid))


def _check_missing(c: _Column) -> None:
    n_miss = c.report.missing
    limit = c.col.max_missing_share if c.col.max_missing_share is not None else c.t.max_missing_share
    if not (n_miss and "missing" in c.checks):
        return
    breach = (not c.col.nullable) or c.share(n_miss) > limit
    c.findings.append(
        finding(
            "missing",
            n_miss,
            c.n,
            0.0 if not c.col.nullable else limit,
            f"{c.name}: {n_miss} missing ({c.share(n_miss):.2%})"
            + (" in a non-nullable column" if not c.col.nullable else f"; limit {limit:.2%}"),
            column=c.name,
            mask=c.missing,
            breach=breach,
        )
    )


def _check_formats(c: _Column) -> None:
    """Values not of the declared type, dates in undeclared formats, regex violations, mojibake."""
    col, parsed = c.col, c.parsed
    kinds: dict[FindingKind, np.ndarray] = {}
    if parsed.invalid.any() and "formats" in c.checks:
        if col.dtype in ("date", "datetime"):
            kinds["date_format" if any(p.kind == "date_format" for p in parsed.patterns) else "type"] = (
                parsed.invalid
            )
        elif col.regex is not None and col.dtype in ("string", "category"):
            kinds["pattern"] = parsed.invalid
        else:
            kinds["type"] = parsed.invalid
    if parsed.encoding_bad is not None and parsed.encoding_bad.any() and "formats" in c.checks:
        kinds["encoding"] = parsed.encoding_bad
    for kind, mask in kinds.items():
        count = int(mask.sum())
        c.report.invalid[kind] = count
        pats = [p for p in parsed.patterns if (p.kind == "encoding") == (kind == "encoding")]
        what = {
            "type": f"not {col.dtype}",
            "date_format": f"dates not in the declared format(s) {col.date_formats or ['ISO 8601']}",
            "pattern": f"values not matching {col.regex!r}",
            "encoding": "mis-decoded text (mojibake)",
        }[kind]
        formats = len(parsed.formats)
        c.findings.append(
            finding(
                kind,
                count,
                c.n,
                c.t.max_invalid_share,
                f"{c.name}: {count} {what}"
                + (f"; the column uses {formats} date formats" if formats > 1 else ""),
                column=c.name,
                mask=mask,
                patterns=[p.describe(secret=col.secret) for p in pats],
            )
        )
    c.report.date_formats = parsed.formats


def _numbers(c: _Column) -> np.ndarray:
    """The column's parsed numbers as a NumPy array (missing and unparseable values are NaN), with
    min / max / mean in the report."""
    v = c.parsed.values
    numpy_number = isinstance(v.dtype, np.dtype) and v.dtype.kind in "fiu"
    x = v.to_numpy() if numpy_number else v.to_numpy(dtype="float64", na_value=np.nan)
    if x.dtype.kind in "iu":
        if x.size:
            c.report.stats = {"min": float(x.min()), "max": float(x.max()), "mean": float(x.mean())}
        finite, count = np.ones(0, dtype=bool), 0
    else:
        finite = np.isfinite(x)
        count = int(finite.sum())
    if count:  # reductions with `where=`: no copy of the column (nanmean copies it)
        c.report.stats = {
            "min": float(np.min(x, where=finite, initial=np.inf)),
            "max": float(np.max(x, where=finite, initial=-np.inf)),
            "mean": float(np.sum(x, where=finite) / count),
        }
    return np.asarray(x)


def _check_range(c: _Column, x: np.ndarray) -> None:
    col = c.col
    if not ((col.min is not None or col.max is not None) and "range" in c.checks):
        return
    with np.errstate(invalid="ignore"):
        # Missing and unparseable values are NaN here, and NaN compares False.
        lo = x < col.min if col.min is not None else np.zeros(c.n, dtype=bool)
        out = np.logical_or(lo, x > col.max, out=lo) if col.max is not None else lo
    if out.any():
        count = int(out.sum())
        c.report.invalid["range"] = count
        c.findings.append(
            finding(
                "range",
                count,
                c.n,
                c.t.max_invalid_share,
                f"{c.name}: {count} values outside [{col.min}, {col.max}]",
                column=c.name,
                mask=out,
            )
        )


def _check_outliers(c: _Column, x: np.ndarray) -> None:
    t, report = c.t, c.report
    f = fences(x, iqr_k=t.iqr_k, robust_z=t.robust_z) if "outliers" in c.checks else None
    if f is None:
        return
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
    if not count:
        return
    mask = outlier_mask(x, f, t.outlier_method)
    report.invalid["outliers"] = count
    low, high = f.limits(t.outlier_method)
    c.findings.append(
        finding(
            "outliers",
            count,
            c.n,
            t.max_outlier_share,
            f"{c.name}: {count} outliers by {t.outlier_method} (outside [{low:.4g}, {high:.4g}]); "
            f"IQR {f.iqr_count}, robust z {f.robust_count}, 3σ {f.sigma_count}",
            column=c.name,
            mask=mask,
        )
    )


def _check_allowed(c: _Column, frame: pd.DataFrame) -> None:
    col, s, name = c.col, c.s, c.name
    if col.allowed is None or "allowed" not in c.checks:
        return
    if col.dtype in ("int", "float"):
        allowed_num = np.array([float(a) for a in col.allowed if not isinstance(a, str)], dtype=float)
        x = c.parsed.values.to_numpy(dtype="float64", na_value=np.nan)
        bad = c.valid() & ~np.isin(x, allowed_num)
        bad_values = as_text(frame[name][bad])
    else:
        allowed_txt = [str(a) for a in col.allowed]
        bad = c.valid() & ~isin_text(s, allowed_txt)
        if bad.any():  # surrounding spaces are not a wrong value: re-check the few left
            idx = np.flatnonzero(bad)
            bad[idx[isin_text(s[bad], allowed_txt, strip=True)]] = False
        bad_values = as_text(s[bad]).str.strip()
    if not bad.any():
        return
    count = int(bad.sum())
    c.report.invalid["allowed"] = count
    counts = bad_values.value_counts().head(8)
    lower = {str(a).lower(): str(a) for a in col.allowed}
    near = int(sum(n for v, n in bad_values.value_counts().items() if str(v).strip().lower() in lower))
    c.findings.append(
        finding(
            "allowed",
            count,
            c.n,
            c.t.max_invalid_share,
            f"{name}: {count} values outside the allowed set"
            + (f" ({near} differ from an allowed value only by case)" if near else ""),
            column=name,
            mask=bad,
            patterns=[f"{MASK if col.secret else redact_text(repr(v))} × {k}" for v, k in counts.items()],
        )
    )


def _audit_column(
    frame: pd.DataFrame, name: str, col: ColumnSchema, cfg: DatasetConfig, findings: list[Finding]
) -> _Column:
    """Profile one column: missing values, formats, then range / outliers / allowed values on the
    valid ones (findings in that order)."""
    checks: set[str] = set(cfg.checks)
    n = len(frame)
    s = frame[name]
    missing = missing_mask(s, cfg.missing_tokens)
    parsed = parse_column(s, col, missing, formats="formats" in checks, stamps=name == cfg.time_column)
    n_miss = int(missing.sum())
    report = ColumnReport(name=name, dtype=col.dtype, missing=n_miss, missing_share=n_miss / n if n else 0.0)
    c = _Column(name, col, s, missing, parsed, report, n, cfg.thresholds, checks, findings)
    _check_missing(c)
    _check_formats(c)
    if col.dtype in ("int", "float"):
        x = _numbers(c)
        _check_range(c, x)
        _check_outliers(c, x)
    _check_allowed(c, frame)
    return c


def _missing_by_row(
    audit: DataAudit, frame: pd.DataFrame, cfg: DatasetConfig, columns: list[_Column]
) -> None:
    """Missing cells per row, and their mean by segment and by day."""
    if not columns:
        return
    n = len(frame)
    per_row: np.ndarray = np.zeros(n, dtype=np.int16 if len(columns) < 32767 else np.int32)
    for c in columns:
        np.add(per_row, c.missing, out=per_row, casting="unsafe")
    audit.missing_cells = int(per_row.sum())
    audit.rows_with_missing = int(np.count_nonzero(per_row))
    per_row_counts = np.bincount(per_row)  # O(n); np.unique would sort ten million integers
    audit.missing_per_row = {int(k): int(c) for k, c in enumerate(per_row_counts) if c}
    if cfg.segment_column and cfg.segment_column in frame.columns:
        seg = as_text(frame[cfg.segment_column]).fillna("(missing)")
        audit.missing_by_segment = {
            str(k): round(float(v) / len(columns), 6)
            for k, v in pd.Series(per_row, index=frame.index).groupby(seg.to_numpy()).mean().items()
        }
    stamps = next((c.parsed for c in columns if c.name == cfg.time_column), None)
    if cfg.time_column and stamps is not None:
        days = pd.to_datetime(stamps.values, errors="coerce").dt.strftime("%Y-%m-%d")
        audit.missing_by_day = {
            str(k): round(float(v) / len(columns), 6)
            for k, v in pd.Series(per_row, index=frame.index)
            .groupby(days.fillna("(no date)").to_numpy())
            .mean()
            .items()
        }


def _duplicates(audit: DataAudit, frame: pd.DataFrame, cfg: DatasetConfig, findings: list[Finding]) -> None:
    """Rows repeating an earlier row exactly, then rows repeating its key with other values."""
    n, t, checks = len(frame), cfg.thresholds, set(cfg.checks)
    dup = duplicated_rows(frame, frame.columns) if "duplicates" in checks else np.zeros(n, dtype=bool)
    audit.duplicate_rows = int(dup.sum())
    if audit.duplicate_rows:
        findings.append(
            finding(
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
                finding(
                    "duplicate_keys",
                    audit.duplicate_keys,
                    n,
                    t.max_duplicate_share,
                    f"{audit.duplicate_keys} rows repeat the key {cfg.key} of an earlier row with other values",
                    mask=kdup,
                )
            )


def _drift_values(side: pd.DataFrame, name: str, col: ColumnSchema, cfg: DatasetConfig) -> pd.Series:
    """One side's values of a column, as drift compares them (numbers parsed, categories stripped)."""
    miss = missing_mask(side[name], cfg.missing_tokens)
    if col.dtype in ("int", "float"):
        return parse_column(side[name], col, miss).values
    return as_text(side[name]).str.strip().where(~pd.Series(miss, index=side.index))


def _drift(
    audit: DataAudit,
    frame: pd.DataFrame,
    reference: pd.DataFrame,
    cfg: DatasetConfig,
    columns: list[_Column],
    findings: list[Finding],
) -> None:
    """Per-column drift against the reference, and dataset drift when enough columns drifted."""
    t = cfg.thresholds
    compared: list[str] = []
    # Drift is measured on samples (drawn once per side, the same rows for every column).
    ref_sample = _sample(reference, t.drift_sample_rows, seed=0)
    cur_sample = _sample(frame, t.drift_sample_rows, seed=1)
    for c in columns:
        name, col = c.name, c.col
        if (
            not col.drift
            or name not in reference.columns
            or col.dtype not in ("int", "float", "category", "bool")
        ):
            continue
        numeric = col.dtype in ("int", "float")
        values = [_drift_values(side, name, col, cfg) for side in (ref_sample, cur_sample)]
        d = column_drift(name, values[0], values[1], numeric, t)
        if d is None:
            continue
        compared.append(name)
        c.report.drift = {
            "method": d.method,
            "statistic": d.statistic,
            "threshold": d.threshold,
            "drifted": d.drifted,
            "psi": d.psi,
        }
        if d.drifted:
            audit.drifted_columns.append(name)
    if not compared:
        return
    audit.drift_share = len(audit.drifted_columns) / len(compared)
    audit.dataset_drift = audit.drift_share >= t.drift_share
    if audit.drifted_columns:
        msgs = [
            f"{r.name}: {r.drift['method']} {float(r.drift['statistic']):.4g}, PSI {float(r.drift['psi']):.3f}"
            for r in (c.report for c in columns)
            if r.drift and r.drift["drifted"]
        ]
        findings.append(
            finding(
                "drift",
                len(audit.drifted_columns),
                len(compared),
                t.drift_share,
                f"{len(audit.drifted_columns)} of {len(compared)} columns drifted from the reference"
                + (f" {audit.reference}" if audit.reference else "")
                + (" — dataset drift" if audit.dataset_drift else ""),
                patterns=msgs,
                breach=audit.dataset_drift,
            )
        )


def audit_frame(
    frame: pd.DataFrame,
    cfg: DatasetConfig,
    *,
    dataset: str = "",
    version: str | None = None,
    reference: pd.DataFrame | None = None,
    reference_version: str | None = None,
) -> DataAudit:
    """Profile ``frame`` against ``cfg``'s schema and thresholds (and ``reference`` for drift).

    Findings come column by column (missing, formats, range, outliers, allowed values), then
    duplicate rows and keys, then drift."""
    findings: list[Finding] = []
    columns = [
        _audit_column(frame, name, col, cfg, findings)
        for name, col in effective_schema(frame, cfg).items()
        if name in frame.columns
    ]
    audit = DataAudit(
        dataset=dataset,
        version=version,
        reference=reference_version,
        rows=len(frame),
        columns=len(frame.columns),
        missing_cells=0,
        rows_with_missing=0,
    )
    _missing_by_row(audit, frame, cfg, columns)
    _duplicates(audit, frame, cfg, findings)
    if reference is not None and "drift" in cfg.checks:
        _drift(audit, frame, reference, cfg, columns, findings)
    audit.column_reports = [c.report for c in columns]
    audit.findings = findings
    return audit
