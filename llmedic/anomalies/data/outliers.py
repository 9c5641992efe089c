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


def _quantiles(x: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    """Linear-interpolation quantiles (NumPy's default) of ``x``, partitioning ``x`` in place:
    one partition for all of them instead of a copy and a partition per call."""
    n = x.size
    pos = [q * (n - 1) for q in qs]
    kth = sorted({int(np.floor(p)) for p in pos} | {min(int(np.floor(p)) + 1, n - 1) for p in pos})
    x.partition(kth)
    out = []
    for p in pos:
        lo = int(np.floor(p))
        hi = min(lo + 1, n - 1)
        out.append(float(x[lo] + (x[hi] - x[lo]) * (p - lo)))
    return out


def _count_outside(x: np.ndarray, lo: float, hi: float) -> int:
    return int(np.count_nonzero(x < lo) + np.count_nonzero(x > hi))


def fences(values: np.ndarray, iqr_k: float = 1.5, robust_z: float = 3.5) -> OutlierFences | None:
    """Fences of a numeric array (NaN ignored); None for fewer than 4 values."""
    x = values[np.isfinite(values)] if values.dtype.kind == "f" else values.astype(np.float64)
    if x.size < 4:
        return None
    mean, std = float(x.mean()), float(x.std())
    lo_s, hi_s = mean - 3 * std, mean + 3 * std
    sigma_count = _count_outside(x, lo_s, hi_s)
    q1, med, q3 = _quantiles(x, (0.25, 0.5, 0.75))  # reorders x, which is our own copy
    iqr = q3 - q1
    lo_i, hi_i = q1 - iqr_k * iqr, q3 + iqr_k * iqr
    iqr_count = _count_outside(x, lo_i, hi_i)
    dev = np.abs(x - med)
    (mad,) = _quantiles(dev, (0.5,))
    if mad > 0:
        half = robust_z * mad / _MAD_SCALE
        lo_r, hi_r = med - half, med + half
        robust_count = _count_outside(x, lo_r, hi_r)
    else:  # more than half the values are equal: anything else is unusual only if IQR says so too
        lo_r, hi_r, robust_count = lo_i, hi_i, iqr_count
    return OutlierFences(
        n=int(x.size),
        median=med,
        iqr_low=float(lo_i),
        iqr_high=float(hi_i),
        robust_low=float(lo_r),
        robust_high=float(hi_r),
        sigma_low=lo_s,
        sigma_high=hi_s,
        iqr_count=iqr_count,
        robust_count=robust_count,
        sigma_count=sigma_count,
    )


def outlier_mask(values: np.ndarray, f: OutlierFences, method: str) -> np.ndarray:
    """Which values (NaN never) fall outside ``method``'s fences."""
    lo, hi = f.limits(method)
    with np.errstate(invalid="ignore"):
        return np.asarray((values < lo) | (values > hi))
