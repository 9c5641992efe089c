"""Data faults to inject into a versioned dataset: the data side of the sandbox.

Each fault writes a new version (producer step ``upstream-etl``, a neutral commit message: the fault is not named) that becomes current, exactly as
a broken pipeline run would; with the sandbox's knowledge base declared as a dataset, a fault in its
``answers`` column shows up at the service as wrong or "I don't know" answers, and can be traced
back from an accuracy drop to the version and the step that produced it.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from llmedic.adapters.datastore import DataStore, Producer, Version
from llmedic.config import DatasetConfig
from llmedic.errors import DatasetError

__all__ = ["FAULTS", "DataFault", "inject"]

DataFault = Literal[
    "blank",
    "null_token",
    "wrong_type",
    "shuffle",
    "duplicate",
    "mojibake",
    "date_format",
    "shift",
    "outliers",
]
FAULTS: dict[str, str] = {
    "blank": "empty the column in a share of rows (an empty list for JSON list columns)",
    "null_token": "write 'null' into a share of rows",
    "wrong_type": "write 'N/A' into a share of rows (a number column then holds text)",
    "shuffle": "swap the column's values between rows (wrong answers that look right)",
    "duplicate": "append a share of rows again",
    "mojibake": "re-decode the text as cp1252 (UTF-8 mis-decoding)",
    "date_format": "rewrite dates in a share of rows as DD/MM/YYYY",
    "shift": "multiply a number column by 1.5 in every row (drift)",
    "outliers": "multiply a number column by 100 in a share of rows",
}


def _rows(n: int, share: float, rng: np.random.Generator) -> np.ndarray:
    k = max(1, round(n * share))
    return np.sort(rng.choice(n, size=min(k, n), replace=False))


def corrupt(
    frame: pd.DataFrame, fault: DataFault, column: str | None, share: float, seed: int = 0
) -> pd.DataFrame:
    """A corrupted copy of ``frame`` (pure)."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    if fault == "duplicate":
        return pd.concat([out, out.iloc[_rows(len(out), share, rng)]], ignore_index=True)
    if column is None or column not in out.columns:
        raise DatasetError(f"fault {fault!r} needs --column naming one of {list(out.columns)}")
    rows = _rows(len(out), share, rng)
    col = out[column]
    if fault in ("blank", "null_token", "wrong_type"):
        listy = col.dtype == object and col.map(lambda v: isinstance(v, list)).any()
        value: object = {"blank": [] if listy else "", "null_token": "null", "wrong_type": "N/A"}[fault]
        out[column] = col.astype(object)
        for r in rows:
            out.at[int(r), column] = value  # type: ignore[assignment]  # a list is a valid JSON cell
    elif fault == "shuffle":
        values = col.iloc[rows].tolist()
        out[column] = col.astype(object)
        rolled = values[1:] + values[:1]
        for r, v in zip(rows, rolled, strict=True):
            out.at[int(r), column] = v
    elif fault == "mojibake":
        text = col.astype("str")
        fixed = text.iloc[rows].map(lambda v: v.encode("utf-8").decode("cp1252", errors="replace"))
        out[column] = text
        out.loc[out.index[rows], column] = fixed.to_numpy()
    elif fault == "date_format":
        parsed = pd.to_datetime(col.iloc[rows], errors="coerce")
        out[column] = col.astype("str")
        out.loc[out.index[rows], column] = (
            parsed.dt.strftime("%d/%m/%Y").fillna(col.iloc[rows].astype("str")).to_numpy()
        )
    elif fault in ("shift", "outliers"):
        nums = pd.to_numeric(col, errors="coerce")
        factor = 1.5 if fault == "shift" else 100.0
        target = np.arange(len(out)) if fault == "shift" else rows
        changed = nums.copy()
        changed.iloc[target] = nums.iloc[target] * factor
        out[column] = (
            changed.map(lambda v: "" if pd.isna(v) else f"{v:g}") if col.dtype != "float64" else changed
        )
    return out


def inject(
    store: DataStore,
    name: str,
    cfg: DatasetConfig,
    fault: DataFault,
    *,
    column: str | None = None,
    share: float = 0.1,
    seed: int = 0,
    by: str = "upstream-etl",
) -> Version:
    """Commit a corrupted copy of the current version as the new current version."""
    store.ensure_seeded(name, cfg)
    source, frame = store.read(name, cfg)
    bad = corrupt(frame, fault, column, share, seed)
    return store.commit(
        name,
        bad,
        cfg,
        by=by,
        # What an upstream job would write: the fault's name must not reach llmedic's evidence
        # through the version's metadata (it decides from the data only).
        why="nightly batch",
        parent=source.id,
        producer=Producer(step="upstream-etl", job=f"batch-{seed}"),
    )
