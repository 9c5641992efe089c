"""Outliers of a numeric column by three rules: Tukey's IQR fences, robust z (median/MAD), and 3σ.

The IQR and robust-z rules are the ones to act on: quartiles and the median are not dragged by the
outliers themselves, so a cluster of extreme values cannot hide itself ("masking"); 3σ is reported
alongside because operators know it, and the gap between the rules is informative.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["OutlierFences", "fences", "outlier_mask"]

_MAD_SCALE = 0.6745  # Φ⁻¹(0.75): makes MAD consistent with σ for normal data (Iglewicz & Hoaglin)


@dataclass(frozen=True)
class OutlierFences:
    """The limits each rule puts on one column, and how many values fall outside them."""

    n: int
    median: float
    iqr_low: float
    iqr_high: float
    robust_low: float
    robust_high: float
    sigma_low: float
    sigma_high: float
    iqr_count: int
    robust_count: int
    sigma_count: int

    def limits(self, method: str) -> tuple[float, float]:
        """(low, high) of one rule: ``iqr``, ``robust_z`` or ``sigma3``."""
        return {
            "iqr": (self.iqr_low, self.iqr_high),
            "robust_z": (self.robust_low, self.robust_high),
            "sigma3": (self.sigma_low, self.sigma_high),
        }[method]

    def count(self, method: str) -> int:
        """Values outside one rule's limits."""
        return {"iqr": self.iqr_count, "robust_z": self.robust_count, "sigma3": self.sigma_count}[method]


def fences(values: np.ndarray, iqr_k: float = 1.5, robust_z: float = 3.5) -> OutlierFences | None:
    """Fences of a float array (NaN ignored); None for fewer than 4 values."""
    x = values[np.isfinite(values)]
    if x.size < 4:
        return None
    q1, med, q3 = np.percentile(x, [25, 50, 75])
    iqr = q3 - q1
    mad = float(np.median(np.abs(x - med)))
    mean, std = float(x.mean()), float(x.std())
    lo_i, hi_i = q1 - iqr_k * iqr, q3 + iqr_k * iqr
    if mad > 0:
        half = robust_z * mad / _MAD_SCALE
        lo_r, hi_r = med - half, med + half
    else:  # more than half the values are equal: anything else is unusual only if IQR says so too
        lo_r, hi_r = lo_i, hi_i
    lo_s, hi_s = mean - 3 * std, mean + 3 * std
    return OutlierFences(
        n=int(x.size),
        median=float(med),
        iqr_low=float(lo_i),
        iqr_high=float(hi_i),
        robust_low=float(lo_r),
        robust_high=float(hi_r),
        sigma_low=lo_s,
        sigma_high=hi_s,
        iqr_count=int(np.count_nonzero((x < lo_i) | (x > hi_i))),
        robust_count=int(np.count_nonzero((x < lo_r) | (x > hi_r))),
        sigma_count=int(np.count_nonzero((x < lo_s) | (x > hi_s))),
    )


def outlier_mask(values: np.ndarray, f: OutlierFences, method: str) -> np.ndarray:
    """Which values (NaN never) fall outside ``method``'s fences."""
    lo, hi = f.limits(method)
    with np.errstate(invalid="ignore"):
        return np.asarray((values < lo) | (values > hi))
