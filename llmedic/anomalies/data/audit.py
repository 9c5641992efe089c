"""Audit a dataset version against its declared schema and a reference version.

One function, :func:`audit_frame`, computes everything the three data playbooks and the monthly audit
need, and reports it as :class:`~llmedic.anomalies.data.findings.Finding` objects, each tied to the anomaly type that owns it:

* ``data_missing`` — missing values per column (null, blank, a missing token), per row, by segment
  and by day;
* ``data_format`` — values that are not of the declared type, dates in undeclared formats, regex
  violations, mis-decoded text (mojibake);
* ``data_quality`` — values out of range or outside the allowed set, outliers, duplicate rows and
  keys, drift against the reference version.

The reference version is the known-good distribution: outliers are judged by *its* fences (per
group when the column has one, :mod:`llmedic.anomalies.data.basis`), and every drift-enabled column
that drifted is a breach of its own, whatever share of the columns drifted. Drift is measured on
the cells no per-cell check found broken, so a few broken cells are outliers (repaired), not drift,
while a systematic change of the values (a unit change) is drift (rolled back).

Pure: no I/O, no Prefect. The same function backs ``llmedic data validate``, every data flow's
confirm/reproduce/verify step, the monthly audit and the benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from llmedic.anomalies.data.basis import basis_text, fences_for, group_of
from llmedic.anomalies.data.conformance import Parsed, as_text, isin_text, missing_mask, parse_column
from llmedic.anomalies.data.duplicates import duplicate_findings
from llmedic.anomalies.data.findings import (
    ColumnReport,
    DataAudit,
    Finding,
    FindingKind,
    effective_schema,
    finding,
)
from llmedic.anomalies.data.outliers import METHODS, FenceSet
from llmedic.config import ColumnSchema, DatasetConfig, DataThresholds
from llmedic.drift import column_drift
from llmedic.redact import MASK, redact_text

__all__ = ["audit_frame"]


@dataclass(frozen=True)
class _Ref:
    """The reference version a batch is judged against (``frame`` None: there is none)."""

    frame: pd.DataFrame | None = None
    version: str | None = None


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
    broken: np.ndarray
    """Cells a per-cell check found broken (type, range, allowed set, outliers): left out of drift."""

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
        c.broken |= out
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


def _where(f: FenceSet, mask: np.ndarray, method: str) -> str:
    """The limits the outliers broke: the column's, or those of (up to three of) their groups."""
    if f.labels is None or not f.groups:
        low, high = f.overall.limits(method)
        return f"[{low:.4g}, {high:.4g}]"
    parts = []
    for key in list(dict.fromkeys(f.labels[mask].tolist()))[:3]:
        g = f.groups.get(key)
        low, high = (g or f.overall).limits(method)
        parts.append(
            f"{key} [{low:.4g}, {high:.4g}]" + ("" if g else " (the column's: too few in the group)")
        )
    return ", ".join(parts)


def _check_outliers(c: _Column, x: np.ndarray, frame: pd.DataFrame, cfg: DatasetConfig, ref: _Ref) -> None:
    """Values outside the fences of the reference (per group), or of the batch without one."""
    t, report = c.t, c.report
    if "outliers" not in c.checks:
        return
    f = fences_for(x, frame, c.name, c.col, cfg, ref.frame)
    if f is None:
        return
    finite = np.isfinite(x)
    if finite.any():
        report.stats["median"] = float(np.median(x[finite]))
    masks = {m: f.mask(x, m) for m in METHODS}
    report.outlier_counts = {m: int(masks[m].sum()) for m in METHODS}
    o = f.overall
    report.outlier_fences = {
        "iqr_low": o.iqr_low,
        "iqr_high": o.iqr_high,
        "robust_low": o.robust_low,
        "robust_high": o.robust_high,
        "sigma_low": o.sigma_low,
        "sigma_high": o.sigma_high,
    }
    group = group_of(c.name, c.col, cfg)
    basis = basis_text(f, group, ref.version)
    report.outlier_basis = basis
    report.outlier_group_fences = {k: list(g.limits(t.outlier_method)) for k, g in f.groups.items()}
    mask = masks[t.outlier_method]
    c.broken |= mask
    count = int(mask.sum())
    if not count:
        return
    report.invalid["outliers"] = count
    counts = report.outlier_counts
    c.findings.append(
        finding(
            "outliers",
            count,
            c.n,
            t.max_outlier_share,
            f"{c.name}: {count} outliers by {t.outlier_method} against {basis} (outside "
            f"{_where(f, mask, t.outlier_method)}); IQR {counts['iqr']}, robust z {counts['robust_z']}, "
            f"3σ {counts['sigma3']}",
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
    c.broken |= bad
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
    frame: pd.DataFrame, name: str, col: ColumnSchema, cfg: DatasetConfig, findings: list[Finding], ref: _Ref
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
    broken = np.array(parsed.invalid, dtype=bool, copy=True)
    c = _Column(name, col, s, missing, parsed, report, n, cfg.thresholds, checks, findings, broken)
    _check_missing(c)
    _check_formats(c)
    if col.dtype in ("int", "float"):
        x = _numbers(c)
        _check_range(c, x)
        _check_outliers(c, x, frame, cfg, ref)
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


def _reference_values(reference: pd.DataFrame, name: str, col: ColumnSchema, cfg: DatasetConfig) -> pd.Series:
    """The reference's values of a column, as drift compares them (numbers parsed, categories stripped)."""
    miss = missing_mask(reference[name], cfg.missing_tokens)
    if col.dtype in ("int", "float"):
        return parse_column(reference[name], col, miss, formats=False).values
    return as_text(reference[name]).str.strip().where(~pd.Series(miss, index=reference.index))


def _batch_values(c: _Column) -> pd.Series:
    """The batch's values of a column that no per-cell check found broken (missing ones dropped)."""
    keep = ~(c.missing | c.broken)
    if c.col.dtype in ("int", "float"):
        return c.parsed.values.iloc[np.flatnonzero(keep)]
    return as_text(c.s.iloc[np.flatnonzero(keep)]).str.strip()


def _drift(
    audit: DataAudit,
    reference: pd.DataFrame,
    cfg: DatasetConfig,
    columns: list[_Column],
    findings: list[Finding],
) -> None:
    """Per-column drift against the reference: each drifted column is a breach of its own; the
    dataset drifts when enough columns drifted (a finding of its own, the summary)."""
    t = cfg.thresholds
    compared: list[str] = []
    for c in columns:
        name, col = c.name, c.col
        if (
            not col.drift
            or name not in reference.columns
            or col.dtype not in ("int", "float", "category", "bool")
        ):
            continue
        numeric = col.dtype in ("int", "float")
        d = column_drift(name, _reference_values(reference, name, col, cfg), _batch_values(c), numeric, t)
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
            findings.append(
                finding(
                    "drift",
                    1,
                    1,
                    0.0,
                    f"{name} drifted from the reference{' ' + audit.reference if audit.reference else ''} "
                    f"(its cells that pass every per-cell check): {d.describe()}",
                    column=name,
                    patterns=[d.describe()],
                    breach=True,
                )
            )
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
    ref = _Ref(reference, reference_version)
    columns = [
        _audit_column(frame, name, col, cfg, findings, ref)
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
    duplicate_findings(audit, frame, cfg, findings)
    if reference is not None and "drift" in cfg.checks:
        _drift(audit, reference, cfg, columns, findings)
    audit.column_reports = [c.report for c in columns]
    audit.findings = findings
    return audit
