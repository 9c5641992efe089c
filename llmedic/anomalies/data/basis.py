"""What a column is judged against: the dataset's reference version (the known-good distribution),
per group when the column has one. Shared by the audit and the repairs, so that a repair changes
exactly the cells the audit found outside the fences. Pure.

* The **group** of a numeric column is its ``group_by`` column, else the dataset's
  ``segment_column`` (doses of different drugs in one column are judged drug by drug).
* The **fences** come from the reference's values of the same group
  (:func:`~llmedic.anomalies.data.outliers.column_fences`); without a reference, from the batch
  itself — weaker, and every finding says which basis it used.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from llmedic.anomalies.data.conformance import as_text, missing_mask, parse_column
from llmedic.anomalies.data.outliers import FenceSet, column_fences
from llmedic.config import ColumnSchema, DatasetConfig

__all__ = ["basis_text", "fences_for", "group_of", "labels", "numbers"]


def group_of(name: str, col: ColumnSchema, cfg: DatasetConfig) -> str | None:
    """The column whose values tell ``name``'s groups apart (``group_by``, else ``segment_column``)."""
    group = col.group_by or cfg.segment_column
    return group if group and group != name else None


def labels(frame: pd.DataFrame, group: str | None) -> np.ndarray | None:
    """Each row's group (stripped text; a missing group is its own group ``(missing)``)."""
    if group is None or group not in frame.columns:
        return None
    text = as_text(frame[group]).str.strip()
    return np.asarray(text.fillna("(missing)").to_numpy(dtype=object).astype(str))


def numbers(frame: pd.DataFrame, name: str, col: ColumnSchema, cfg: DatasetConfig) -> np.ndarray:
    """A numeric column parsed as float64 (missing and unparseable values are NaN)."""
    s = frame[name]
    values = parse_column(s, col, missing_mask(s, cfg.missing_tokens), formats=False).values
    return np.asarray(values.to_numpy(dtype="float64", na_value=np.nan))


def fences_for(
    x: np.ndarray,
    frame: pd.DataFrame,
    name: str,
    col: ColumnSchema,
    cfg: DatasetConfig,
    reference: pd.DataFrame | None,
) -> FenceSet | None:
    """The fences the values ``x`` of column ``name`` of ``frame`` are judged by."""
    group = group_of(name, col, cfg)
    ref_x = ref_labels = None
    if reference is not None and name in reference.columns:
        ref_x = numbers(reference, name, col, cfg)
        ref_labels = labels(reference, group)
    t = cfg.thresholds
    return column_fences(
        x,
        labels=labels(frame, group),
        reference=ref_x,
        reference_labels=ref_labels,
        iqr_k=t.iqr_k,
        robust_z=t.robust_z,
    )


def basis_text(f: FenceSet, group: str | None, reference_version: str | None) -> str:
    """``the reference v0001's fences per drug`` / ``this batch's own fences (no reference: weaker)``."""
    per = f" per {group}" if group and f.groups else ""
    if f.basis == "reference":
        return f"the reference{' ' + reference_version if reference_version else ''}'s fences{per}"
    return (
        f"this batch's own fences{per} (no reference version to judge by: weaker, the batch's own "
        "outliers widen them)"
    )
