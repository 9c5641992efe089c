"""Drift of a column against a reference version: PSI, KS, chi-square, Jensen–Shannon, Wasserstein.

Definitions and default thresholds follow Evidently 0.7 (see ``docs/flows/data.md``): PSI ≥ 0.1,
KS p ≤ 0.05, chi-square p < 0.05, Jensen–Shannon distance ≥ 0.1, normed Wasserstein ≥ 0.1, and the
automatic choice per column (KS / chi-square for a reference of at most 1000 rows, Wasserstein /
Jensen–Shannon above, because with many rows p-values flag differences nobody cares about). Every
column also gets its PSI with the usual reading (< 0.1 little change, 0.1–0.25 moderate, > 0.25
significant), whatever decided the drift.

Pure, and in the core rather than the data home: the data audit measures each column against the
dataset's reference with it, and the accuracy home the golden set's prompts against the baseline's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial.distance import jensenshannon

from llmedic.config import DataThresholds

__all__ = ["ColumnDrift", "binned", "choose_method", "column_drift", "psi", "psi_band"]

_EMPTY = 0.0001  # Evidently's replacement for an empty bin, so the logarithms stay finite


@dataclass(frozen=True)
class ColumnDrift:
    """One column compared with the reference."""

    column: str
    method: str
    statistic: float
    threshold: float
    drifted: bool
    psi: float
    kind: str
    """``numeric`` or ``categorical``."""

    def describe(self) -> str:
        """``price: ks p=0.0001 (≤ 0.05) drifted; PSI 0.31 significant``."""
        word = "p" if self.method in ("ks", "chi2", "z") else "stat"
        cmp = "≤" if self.method in ("ks", "chi2", "z") else "≥"
        return (
            f"{self.column}: {self.method} {word}={self.statistic:.4g} ({cmp} {self.threshold:g} drifts) "
            f"{'drifted' if self.drifted else 'stable'}; PSI {self.psi:.3f} {psi_band(self.psi)}"
        )


def psi_band(value: float) -> str:
    """The rule-of-thumb reading of a PSI value."""
    if value < 0.1:
        return "little change"
    if value <= 0.25:
        return "moderate change"
    return "significant change"


def binned(ref: pd.Series, cur: pd.Series, numeric: bool) -> tuple[np.ndarray, np.ndarray]:
    """Shares per bin: Sturges bins on both samples for numeric columns with more than 20 distinct
    values, one bin per category otherwise; empty bins get 0.0001."""
    r: np.ndarray
    c: np.ndarray
    if numeric and ref.nunique() > 20:
        both = np.concatenate([ref.to_numpy(dtype=float), cur.to_numpy(dtype=float)])
        edges = np.histogram_bin_edges(both, bins="sturges")
        r = np.histogram(ref.to_numpy(dtype=float), bins=edges)[0] / len(ref)
        c = np.histogram(cur.to_numpy(dtype=float), bins=edges)[0] / len(cur)
    else:
        keys = pd.Index(pd.unique(pd.concat([ref, cur], ignore_index=True)))
        r = ref.value_counts(normalize=True).reindex(keys, fill_value=0).to_numpy(dtype=float)
        c = cur.value_counts(normalize=True).reindex(keys, fill_value=0).to_numpy(dtype=float)
    r = np.where(r == 0, _EMPTY, r)
    c = np.where(c == 0, _EMPTY, c)
    return r, c


def psi(ref: pd.Series, cur: pd.Series, numeric: bool) -> float:
    """Population stability index Σ (ref% − cur%)·ln(ref% / cur%)."""
    r, c = binned(ref, cur, numeric)
    return float(np.sum((r - c) * np.log(r / c)))


def choose_method(n_ref: int, nunique: int, numeric: bool) -> str:
    """Evidently's default test for a column."""
    if n_ref <= 1000:
        if numeric and nunique > 5:
            return "ks"
        return "z" if nunique <= 2 else "chi2"
    if numeric and nunique > 5:
        return "wasserstein"
    return "js"


def _chi2(ref: pd.Series, cur: pd.Series) -> float:
    keys = pd.Index(pd.unique(pd.concat([ref, cur], ignore_index=True)))
    obs = cur.value_counts().reindex(keys, fill_value=0).to_numpy(dtype=float)
    exp = ref.value_counts().reindex(keys, fill_value=0).to_numpy(dtype=float) * (len(cur) / len(ref))
    if np.any(exp == 0):
        return 0.0  # a category the reference never had: certainly a different distribution
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(stats.chisquare(obs, exp).pvalue)


def _z(ref: pd.Series, cur: pd.Series) -> float:
    """Two-proportion z-test on the share of the reference's most common value."""
    top = ref.value_counts().index[0]
    p1, p2 = float((ref == top).mean()), float((cur == top).mean())
    n1, n2 = len(ref), len(cur)
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0 if p1 == p2 else 0.0
    return float(2 * stats.norm.sf(abs(p1 - p2) / se))


def column_drift(
    name: str, ref: pd.Series, cur: pd.Series, numeric: bool, t: DataThresholds, seed: int = 0
) -> ColumnDrift | None:
    """Compare one column (missing values dropped; at most ``t.drift_sample_rows`` per side)."""
    ref, cur = ref.dropna(), cur.dropna()
    if len(ref) < 2 or len(cur) < 2:
        return None
    if len(ref) > t.drift_sample_rows:
        ref = ref.sample(t.drift_sample_rows, random_state=seed)
    if len(cur) > t.drift_sample_rows:
        cur = cur.sample(t.drift_sample_rows, random_state=seed + 1)
    if numeric:
        ref, cur = ref.astype("float64"), cur.astype("float64")
    else:
        ref, cur = ref.astype("str"), cur.astype("str")
    nunique = int(ref.nunique())
    method = t.drift_method if t.drift_method != "auto" else choose_method(len(ref), nunique, numeric)
    if method in ("ks", "wasserstein") and not numeric:
        method = "chi2" if len(ref) <= 1000 else "js"
    p = psi(ref, cur, numeric)
    if method == "psi":
        stat, threshold, drifted = p, t.psi_threshold, p >= t.psi_threshold
    elif method == "ks":
        stat = float(stats.ks_2samp(ref.to_numpy(), cur.to_numpy()).pvalue)
        threshold, drifted = t.ks_p_value, stat <= t.ks_p_value
    elif method == "chi2":
        stat, threshold = _chi2(ref, cur), t.chi2_p_value
        drifted = stat < threshold
    elif method == "z":
        stat, threshold = _z(ref, cur), t.chi2_p_value
        drifted = stat < threshold
    elif method == "wasserstein":
        norm = max(float(np.std(ref.to_numpy())), 0.001)
        stat = float(stats.wasserstein_distance(ref.to_numpy(), cur.to_numpy())) / norm
        threshold, drifted = t.wasserstein_threshold, stat >= t.wasserstein_threshold
    else:  # js
        r, c = binned(ref, cur, numeric)
        stat = float(jensenshannon(r, c))
        threshold, drifted = t.js_threshold, stat >= t.js_threshold
    return ColumnDrift(
        name, method, stat, threshold, bool(drifted), p, "numeric" if numeric else "categorical"
    )
