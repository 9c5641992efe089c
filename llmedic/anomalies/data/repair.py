"""Repairs of a dataset version: pure functions from a frame to a new frame and what changed.

Each operation is a typed model (a playbook names them in a fix's ``params.operations``) and only
touches what the schema says is wrong: imputing fills missing cells of the columns that have them,
coercion turns values not of the declared type into missing ones, date normalisation rewrites
recognised formats in the canonical one... The result is a *new* version; its source stays as is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from llmedic.anomalies.data.basis import fences_for, group_of, labels
from llmedic.anomalies.data.conformance import MOJIBAKE, as_text, fix_mojibake, missing_mask, parse_column
from llmedic.anomalies.data.duplicates import duplicated_rows
from llmedic.anomalies.data.findings import effective_schema
from llmedic.anomalies.data.knn import knn_fill
from llmedic.anomalies.data.repair_ops import (
    Coerce,
    Dedupe,
    DropRows,
    Impute,
    NormaliseDates,
    NormaliseEncoding,
    OperationBase,
    Outliers,
    Rules,
)
from llmedic.config import ColumnSchema, DatasetConfig
from llmedic.errors import ControlError

__all__ = ["RepairLog", "apply_operations"]  # the operations themselves: llmedic.anomalies.data.repair_ops


@dataclass
class RepairLog:
    """What the operations did."""

    rows_before: int
    rows_after: int = 0
    steps: list[str] = field(default_factory=list)
    cells_changed: dict[str, int] = field(default_factory=dict)
    rows_dropped: int = 0
    blanked: dict[str, np.ndarray] = field(default_factory=dict)
    """Per column, the cells an operation of this repair set to missing (impossible values)."""

    def blank(self, column: str, mask: np.ndarray) -> None:
        """Remember cells set to missing (``impute`` with ``cells: blanked`` fills only those)."""
        old = self.blanked.get(column)
        self.blanked[column] = mask.copy() if old is None else old | mask

    def keep(self, rows: np.ndarray) -> None:
        """Rows kept by an operation that dropped the others: the remembered cells follow them."""
        self.blanked = {c: m[rows] for c, m in self.blanked.items()}

    def note(self, text: str, column: str | None = None, cells: int = 0) -> None:
        """Record one change."""
        self.steps.append(text)
        if column is not None and cells:
            self.cells_changed[column] = self.cells_changed.get(column, 0) + cells


def _numeric(col: ColumnSchema) -> bool:
    return col.dtype in ("int", "float")


def _render(values: pd.Series, col: ColumnSchema, like: pd.Series) -> pd.Series:
    """Typed values back in the column's storage: text columns stay text, ints print without .0."""
    if not (like.dtype == object or isinstance(like.dtype, pd.StringDtype) or like.dtype == "str"):
        if col.dtype == "int":
            return values.round().astype("Int64")
        return values
    if col.dtype == "int":
        out = values.round().astype("Int64").astype("str")
    elif col.dtype == "float":
        out = values.map(
            lambda v: (
                ""
                if pd.isna(v)
                else repr(float(v)).removesuffix(".0")
                if float(v).is_integer()
                else repr(float(v))
            )
        )
    else:
        out = values.astype("str")
    return out.where(values.notna(), "")


def _targets(
    frame: pd.DataFrame,
    schema: dict[str, ColumnSchema],
    op: OperationBase,
    pred: Callable[[ColumnSchema], bool],
) -> list[str]:
    names = op.columns if op.columns is not None else list(schema)
    unknown = [c for c in names if c not in frame.columns or c not in schema]
    if unknown:
        raise ControlError(f"repair names column(s) {unknown} that the dataset does not declare")
    return [c for c in names if pred(schema[c])]


def _by_group(x: pd.Series, groups: Any, strategy: str, col: ColumnSchema, fill: float) -> pd.Series:
    """Missing values filled with their group's mean or median (``fill`` for a group with none)."""
    grouped = x.groupby(groups)
    per = grouped.transform("mean") if strategy == "mean" else grouped.transform("median")
    out = x.fillna(per).fillna(fill)
    return out.round() if col.dtype == "int" else out


def _impute(
    frame: pd.DataFrame, cfg: DatasetConfig, schema: dict[str, ColumnSchema], op: Impute, log: RepairLog
) -> pd.DataFrame:
    for name in _targets(frame, schema, op, lambda s: True):
        col = schema[name]
        miss = missing_mask(frame[name], cfg.missing_tokens)
        if op.cells == "blanked":
            miss &= log.blanked.get(name, np.zeros(len(frame), dtype=bool))
        if not miss.any():
            continue
        if not col.impute:
            log.note(f"{name}: {int(miss.sum())} missing values left alone (the column may not be imputed)")
            continue
        parsed = parse_column(frame[name], col, miss)
        if _numeric(col):
            x = parsed.values
            if op.strategy == "knn":
                filled, fallback = knn_fill(frame, schema, cfg, name, op.k)
                how = f"knn k={op.k}" + (
                    f" ({fallback} rows without neighbours took the median)" if fallback else ""
                )
            else:
                if op.strategy == "constant":
                    if op.value is None:
                        raise ControlError("impute strategy 'constant' needs a value")
                    fill = float(op.value)
                elif op.strategy == "mean":
                    fill = float(x.mean())
                elif op.strategy == "mode":
                    fill = float(x.mode().iloc[0])
                else:
                    fill = float(x.median())
                if col.dtype == "int":
                    fill = float(round(fill))
                filled, how = x.fillna(fill), f"{op.strategy} {fill:g}"
                groups = labels(frame, group_of(name, col, cfg))
                if groups is not None and op.strategy in ("mean", "median"):
                    filled, how = _by_group(x, groups, op.strategy, col, fill), f"{op.strategy} per group"
            new = x.where(~pd.Series(miss, index=frame.index), filled)
            changed = pd.Series(miss & new.notna().to_numpy(), index=frame.index)
            frame[name] = _render(new, col, frame[name]).where(changed, frame[name])
        else:
            present = as_text(frame[name])[~miss]
            if op.strategy == "constant" and op.value is not None:
                fill_txt = str(op.value)
            elif present.empty:
                log.note(f"{name}: nothing to impute from (every value is missing)")
                continue
            else:
                fill_txt = str(present.str.strip().mode().iloc[0])
            how = f"mode {fill_txt!r}" if op.strategy != "constant" else f"constant {fill_txt!r}"
            filled_txt = as_text(frame[name]).where(~pd.Series(miss, index=frame.index), fill_txt)
            frame[name] = filled_txt if frame[name].dtype != object else filled_txt.astype(object)
        log.note(f"imputed {int(miss.sum())} missing {name} ({how})", name, int(miss.sum()))
    return frame


def _drop_rows(
    frame: pd.DataFrame, cfg: DatasetConfig, schema: dict[str, ColumnSchema], op: DropRows, log: RepairLog
) -> pd.DataFrame:
    names = _targets(frame, schema, op, lambda s: True)
    drop = np.zeros(len(frame), dtype=bool)
    for name in names:
        drop |= missing_mask(frame[name], cfg.missing_tokens)
    n = int(drop.sum())
    if n == 0:
        return frame
    share = n / len(frame)
    if share > op.max_share:
        raise ControlError(
            f"dropping {n} rows ({share:.2%}) with missing values would exceed the playbook's limit of {op.max_share:.2%}",
            hint="impute instead, or roll back to the last good version",
        )
    log.rows_dropped += n
    log.note(f"dropped {n} rows ({share:.2%}) with missing values in {names}")
    log.keep(~drop)
    return frame.loc[~drop].reset_index(drop=True)


def _coerce(
    frame: pd.DataFrame, cfg: DatasetConfig, schema: dict[str, ColumnSchema], op: Coerce, log: RepairLog
) -> pd.DataFrame:
    for name in _targets(frame, schema, op, lambda s: s.dtype in ("int", "float", "bool")):
        col = schema[name]
        miss = missing_mask(frame[name], cfg.missing_tokens)
        parsed = parse_column(frame[name], col, miss)
        if not parsed.invalid.any():
            continue
        n = int(parsed.invalid.sum())
        values = parsed.values
        if _numeric(col) and op.strip_thousands:
            text = as_text(frame[name]).str.strip()
            grouped = text.str.fullmatch(_THOUSANDS).to_numpy(dtype=bool, na_value=False) & parsed.invalid
            if grouped.any():
                nums = pd.to_numeric(text[grouped].str.replace(r"[$€£,\s]", "", regex=True), errors="coerce")
                values = values.copy()
                values[grouped] = nums.to_numpy()
                log.note(
                    f"read {int(grouped.sum())} values with thousands separators in {name} as numbers",
                    name,
                    int(grouped.sum()),
                )
        unparsed = parsed.invalid & values.isna().to_numpy()
        if _numeric(col) and op.fill != "missing" and unparsed.any():
            good = values[~parsed.invalid & ~miss]
            fill = {"median": good.median(), "mean": good.mean()}.get(op.fill)
            if op.fill == "mode":
                fill = good.mode().iloc[0] if not good.empty else None
            if fill is not None and not pd.isna(fill):
                values = values.copy()
                values[unparsed] = round(float(fill)) if col.dtype == "int" else float(fill)
                log.note(
                    f"{int(unparsed.sum())} unparseable values in {name} set to the {op.fill} {float(fill):g}",
                    name,
                    int(unparsed.sum()),
                )
        if col.dtype == "bool":
            text = as_text(frame[name]).where(~pd.Series(parsed.invalid, index=frame.index), "")
            frame[name] = text
        else:
            frame[name] = _render(values, col, frame[name]).where(
                pd.Series(parsed.invalid, index=frame.index), frame[name]
            )
        if unparsed.any() and (op.fill == "missing" or not _numeric(col)):
            log.note(
                f"coerced {int(unparsed.sum())} non-{col.dtype} values in {name} to missing",
                name,
                int(unparsed.sum()),
            )
        del n
    return frame


_THOUSANDS = r"[$€£]?\s*-?\d{1,3}(?:,\d{3})+(?:\.\d+)?"


def _dates(
    frame: pd.DataFrame,
    cfg: DatasetConfig,
    schema: dict[str, ColumnSchema],
    op: NormaliseDates,
    log: RepairLog,
) -> pd.DataFrame:
    from llmedic.anomalies.data.conformance import COMMON_DATE_FORMATS

    for name in _targets(frame, schema, op, lambda s: s.dtype in ("date", "datetime")):
        col = schema[name]
        s = frame[name]
        if pd.api.types.is_datetime64_any_dtype(s.dtype):
            continue
        text = as_text(s).str.strip()
        miss = missing_mask(s, cfg.missing_tokens)
        canonical = (
            col.date_formats[0]
            if col.date_formats
            else ("%Y-%m-%d" if col.dtype == "date" else "%Y-%m-%dT%H:%M:%S")
        )
        out = text.copy()
        todo = ~miss
        if col.date_formats:
            ok = pd.to_datetime(text[todo], format=canonical, errors="coerce").notna().to_numpy()
            todo[np.flatnonzero(todo)[ok]] = False
        changed = 0
        for fmt in [*col.date_formats[1:], *[f for f in COMMON_DATE_FORMATS if f not in col.date_formats]]:
            if not todo.any():
                break
            parsed = pd.to_datetime(text[todo], format=fmt, errors="coerce")
            hit = parsed.notna().to_numpy()
            if hit.any():
                idx = np.flatnonzero(todo)[hit]
                out.iloc[idx] = pd.Series(list(parsed[hit].dt.strftime(canonical)), index=out.index[idx])
                todo[idx] = False
                changed += int(hit.sum())
        if changed:
            frame[name] = out
            log.note(f"rewrote {changed} dates in {name} as {canonical}", name, changed)
        if todo.any():
            log.note(f"{name}: {int(todo.sum())} values are not dates in any known format (left as they are)")
    return frame


def _encoding(
    frame: pd.DataFrame,
    cfg: DatasetConfig,
    schema: dict[str, ColumnSchema],
    op: NormaliseEncoding,
    log: RepairLog,
) -> pd.DataFrame:
    for name in _targets(frame, schema, op, lambda s: s.dtype in ("string", "category")):
        text = as_text(frame[name])
        bad = text.str.contains(MOJIBAKE, regex=True).to_numpy(dtype=bool, na_value=False)
        if not bad.any():
            continue
        fixed = text[bad].map(fix_mojibake)
        out = text.copy()
        out[bad] = fixed
        frame[name] = out
        log.note(f"repaired {int(bad.sum())} mis-decoded values in {name}", name, int(bad.sum()))
    return frame


def _rules(
    frame: pd.DataFrame, cfg: DatasetConfig, schema: dict[str, ColumnSchema], op: Rules, log: RepairLog
) -> pd.DataFrame:
    for rule in op.rules:
        if rule.column not in frame.columns:
            raise ControlError(f"rule names column {rule.column!r}, which the dataset does not have")
        before = as_text(frame[rule.column])
        text = before
        if rule.strip:
            text = text.str.strip()
        if rule.case:
            text = getattr(text.str, rule.case)()
        if rule.map:
            text = text.replace(rule.map)
        if rule.match is not None:
            text = text.str.replace(rule.match, rule.replace, regex=True)
        changed = int((text.fillna("\0") != before.fillna("\0")).sum())
        if changed:
            frame[rule.column] = text
            log.note(f"rule on {rule.column}: {changed} values rewritten", rule.column, changed)
    for name in _targets(frame, schema, op, lambda s: True):
        col = schema[name]
        miss = missing_mask(frame[name], cfg.missing_tokens)
        if op.snap_allowed and col.allowed is not None and not _numeric(col):
            lookup = {str(a).strip().lower(): str(a) for a in col.allowed}
            text = as_text(frame[name])
            allowed = {str(a) for a in col.allowed}
            off = ~miss & ~text.isin(allowed).to_numpy(dtype=bool, na_value=False)
            if off.any():
                snapped = text[off].str.strip().str.lower().map(lookup)
                hit = snapped.notna()
                if hit.any():
                    out = text.copy()
                    out[snapped[hit].index] = snapped[hit]
                    frame[name] = out
                    log.note(
                        f"{name}: {int(hit.sum())} values snapped to the allowed spelling",
                        name,
                        int(hit.sum()),
                    )
        if not op.invalid_to_missing:
            continue
        miss = missing_mask(frame[name], cfg.missing_tokens)
        parsed = parse_column(frame[name], col, miss)
        valid = ~miss & ~parsed.invalid
        bad = np.zeros(len(frame), dtype=bool)
        if _numeric(col) and (col.min is not None or col.max is not None):
            x = parsed.values.to_numpy(dtype="float64", na_value=np.nan)
            with np.errstate(invalid="ignore"):
                bad |= valid & (
                    (x < col.min if col.min is not None else False)
                    | (x > col.max if col.max is not None else False)
                )
        if col.allowed is not None and not _numeric(col):
            bad |= valid & ~as_text(frame[name]).str.strip().isin([str(a) for a in col.allowed]).to_numpy(
                dtype=bool, na_value=False
            )
        if bad.any():
            blank: Any = "" if frame[name].dtype == object or frame[name].dtype == "str" else np.nan
            frame.loc[bad, name] = blank
            log.blank(name, bad)
            log.note(
                f"{name}: {int(bad.sum())} values outside the range/allowed set set to missing",
                name,
                int(bad.sum()),
            )
    return frame


def _outliers(
    frame: pd.DataFrame,
    cfg: DatasetConfig,
    schema: dict[str, ColumnSchema],
    op: Outliers,
    log: RepairLog,
    reference: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Outliers by the fences the audit judges by (the reference's, per group; else the batch's):
    only the cells outside them change."""
    method = op.method or cfg.thresholds.outlier_method
    drop = np.zeros(len(frame), dtype=bool)
    for name in _targets(frame, schema, op, _numeric):
        col = schema[name]
        miss = missing_mask(frame[name], cfg.missing_tokens)
        x = parse_column(frame[name], col, miss).values
        arr = x.to_numpy(dtype="float64", na_value=np.nan)
        f = fences_for(arr, frame, name, col, cfg, reference)
        if f is None:
            continue
        mask = f.mask(arr, method)
        n = int(mask.sum())
        if not n:
            continue
        basis = "the reference's fences" if f.basis == "reference" else "the batch's own fences"
        if f.groups:
            basis += f" per {group_of(name, col, cfg)}"
        if op.treatment == "remove":
            drop |= mask
            log.note(f"{name}: {n} outliers by {method} (against {basis}) marked for removal")
        elif op.treatment == "cap":
            lo, hi = f.bounds(method)
            capped = pd.Series(np.clip(arr, lo, hi), index=frame.index)
            frame[name] = _render(capped, col, frame[name]).where(
                pd.Series(mask, index=frame.index), frame[name]
            )
            log.note(f"{name}: {n} outliers by {method} capped to {basis}", name, n)
        else:
            frame[f"{name}_outlier"] = mask
            log.note(f"{name}: {n} outliers by {method} flagged in {name}_outlier", name, n)
    if drop.any():
        log.rows_dropped += int(drop.sum())
        log.keep(~drop)
        frame = frame.loc[~drop].reset_index(drop=True)
    return frame


def _dedupe(
    frame: pd.DataFrame, cfg: DatasetConfig, schema: dict[str, ColumnSchema], op: Dedupe, log: RepairLog
) -> pd.DataFrame:
    if op.by == "key":
        if not cfg.key:
            raise ControlError("dedupe by key needs the dataset's key: columns")
        cols = list(cfg.key)
    else:
        cols = list(frame.columns)
    dup = duplicated_rows(frame, cols)
    n = int(dup.sum())
    if n:
        log.rows_dropped += n
        log.note(
            f"removed {n} duplicate rows ({'same key' if op.by == 'key' else 'exact copies'}; first kept)"
        )
        log.keep(~dup)
        frame = frame.loc[~dup].reset_index(drop=True)
    return frame


_HANDLERS: dict[str, Callable[..., pd.DataFrame]] = {
    "impute": _impute,
    "drop_rows": _drop_rows,
    "coerce_types": _coerce,
    "normalise_dates": _dates,
    "normalise_encoding": _encoding,
    "rules": _rules,
    "outliers": _outliers,
    "dedupe": _dedupe,
}


def apply_operations(
    frame: pd.DataFrame,
    cfg: DatasetConfig,
    operations: list[Any],
    focus: list[str] | None = None,
    reference: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, RepairLog]:
    """Run the operations in order on a copy of ``frame``. ``focus``: the columns an incident found
    in breach; operations that name no columns work on those only (a repair fixes what is broken and
    leaves the rest of the data as it was). ``reference``: the dataset's reference version, whose
    fences decide which values are outliers (as in the audit); without it, the batch's own."""
    out = frame.copy()
    schema = effective_schema(frame, cfg)
    log = RepairLog(rows_before=len(frame))
    for op in operations:
        if focus is not None and op.columns is None and op.op != "dedupe":
            op = op.model_copy(update={"columns": [c for c in focus if c in schema]})
        if op.op == "outliers":
            out = _outliers(out, cfg, schema, op, log, reference)
        else:
            out = _HANDLERS[op.op](out, cfg, schema, op, log)
    if out.empty:
        raise ControlError(
            "the repair would leave no rows", hint="roll back to the last good version instead"
        )
    log.rows_after = len(out)
    return out, log
