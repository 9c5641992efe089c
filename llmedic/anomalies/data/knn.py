"""k-nearest-neighbour imputation of one numeric column (the ``impute`` repair's ``strategy: knn``):
distance over the dataset's other numeric columns, standardised. Pure."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from llmedic.anomalies.data.conformance import missing_mask, parse_column
from llmedic.config import ColumnSchema, DatasetConfig

__all__ = ["knn_fill"]


def knn_fill(
    frame: pd.DataFrame, schema: dict[str, ColumnSchema], cfg: DatasetConfig, target: str, k: int
) -> tuple[pd.Series, int]:
    """``target`` with its missing values filled by the mean of ``k`` neighbours, and how many rows
    had none (those take the median)."""
    numeric = [c for c, s in schema.items() if s.dtype in ("int", "float") and c in frame.columns]
    parsed = {
        c: parse_column(frame[c], schema[c], missing_mask(frame[c], cfg.missing_tokens)).values.to_numpy(
            dtype="float64", na_value=np.nan
        )
        for c in numeric
    }
    y = parsed[target]
    feats = [c for c in numeric if c != target]
    out = y.copy()
    todo = np.flatnonzero(np.isnan(y))
    fallback = 0
    if not feats:
        fallback = len(todo)
        out[todo] = np.nanmedian(y)
        return pd.Series(out, index=frame.index), fallback
    X = np.column_stack([parsed[c] for c in feats])
    mu, sd = np.nanmean(X, axis=0), np.nanstd(X, axis=0)
    sd[sd == 0] = 1
    Z = (X - mu) / sd
    usable = ~np.isnan(Z)
    donors_all = ~np.isnan(y)
    patterns = (
        pd.Series([tuple(r) for r in usable[todo]], index=todo) if len(todo) else pd.Series([], dtype=object)
    )
    for pattern, rows in patterns.groupby(patterns, sort=False):
        cols = np.array(pattern, dtype=bool)
        idx = rows.index.to_numpy()
        donors = donors_all & usable[:, cols].all(axis=1) if cols.any() else np.zeros(len(y), dtype=bool)
        if not cols.any() or donors.sum() == 0:
            out[idx] = np.nanmedian(y)
            fallback += len(idx)
            continue
        tree = cKDTree(Z[donors][:, cols])
        kk = min(k, int(donors.sum()))
        _, nn = tree.query(Z[idx][:, cols], k=kk)
        nn = np.asarray(nn).reshape(len(idx), kk)
        out[idx] = y[donors][nn].mean(axis=1)
    return pd.Series(out, index=frame.index), fallback
