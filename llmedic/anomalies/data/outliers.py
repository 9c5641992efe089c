"""Outliers of a numeric column by three rules: Tukey's IQR fences, robust z (median/MAD), and 3σ.

The IQR and robust-z rules are the ones to act on: quartiles and the median are not dragged by the
outliers themselves, so a cluster of extreme values cannot hide itself ("masking"); 3σ is reported
alongside because operators know it, and the gap between the rules is informative.

:func:`column_fences` is what the audit and the repairs judge a column by: the fences of the
dataset's **reference version** (the known-good distribution), per group when the column has one
(``group_by`` or the dataset's ``segment_column``), widened to the reference's own range, so a value
the reference shows as normal is never an outlier. Without a reference they are the batch's own
fences, which is weaker (the batch's outliers move its fences) and is said so.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

__all__ = ["MIN_GROUP_VALUES", "FenceSet", "OutlierFences", "column_fences", "fences", "outlier_mask"]

MIN_GROUP_VALUES = 8
"""A group needs this many values on the basis side for fences of its own; rows of smaller groups
(or of groups the basis lacks) are judged by the column's overall fences."""

METHODS = ("iqr", "robust_z", "sigma3")

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


def _widened(f: OutlierFences, low: float, high: float) -> OutlierFences:
    """``f`` with every rule's limits widened to include ``[low, high]`` (the reference's range)."""
    return replace(
        f,
        iqr_low=min(f.iqr_low, low),
        iqr_high=max(f.iqr_high, high),
        robust_low=min(f.robust_low, low),
        robust_high=max(f.robust_high, high),
        sigma_low=min(f.sigma_low, low),
        sigma_high=max(f.sigma_high, high),
    )


@dataclass(frozen=True)
class FenceSet:
    """The fences one column is judged by: overall, and per group when the column is grouped."""

    basis: Literal["reference", "batch"]
    overall: OutlierFences
    groups: dict[str, OutlierFences] = field(default_factory=dict)
    labels: np.ndarray | None = None
    """The group of each judged row (``None``: the column is not grouped)."""

    def bounds(self, method: str) -> tuple[np.ndarray, np.ndarray]:
        """Per-row (low, high) of one rule for the judged rows (a scalar pair when not grouped)."""
        lo, hi = self.overall.limits(method)
        if self.labels is None or not self.groups:
            return np.asarray(lo), np.asarray(hi)
        low = np.full(self.labels.shape[0], lo, dtype=np.float64)
        high = np.full(self.labels.shape[0], hi, dtype=np.float64)
        for key, g in self.groups.items():
            rows = self.labels == key
            low[rows], high[rows] = g.limits(method)
        return low, high

    def mask(self, values: np.ndarray, method: str) -> np.ndarray:
        """Which values (NaN never) fall outside ``method``'s fences of their row's group."""
        lo, hi = self.bounds(method)
        with np.errstate(invalid="ignore"):
            return np.asarray((values < lo) | (values > hi))

    def ungrouped_rows(self) -> int:
        """Judged rows whose group has no fences of its own (judged by the overall fences)."""
        if self.labels is None:
            return 0
        return int(np.count_nonzero(~np.isin(self.labels, list(self.groups))))


def _finite(x: np.ndarray) -> np.ndarray:
    return x[np.isfinite(x)] if x.dtype.kind == "f" else x.astype(np.float64)


def column_fences(
    values: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    reference: np.ndarray | None = None,
    reference_labels: np.ndarray | None = None,
    iqr_k: float = 1.5,
    robust_z: float = 3.5,
) -> FenceSet | None:
    """The fences ``values`` are judged by: the reference's (widened to its range, per group when
    ``labels`` are given) when it has at least 4 values, else the batch's own. None when neither has."""
    use_ref = reference is not None and _finite(reference).size >= 4
    basis = reference if use_ref and reference is not None else values
    basis_labels = reference_labels if use_ref else labels

    def judge(x: np.ndarray) -> OutlierFences | None:
        f = fences(x, iqr_k=iqr_k, robust_z=robust_z)
        if f is None or not use_ref:
            return f
        fin = _finite(x)
        return _widened(f, float(fin.min()), float(fin.max()))

    overall = judge(basis)
    if overall is None:
        return None
    groups: dict[str, OutlierFences] = {}
    if labels is not None and basis_labels is not None:
        finite = np.isfinite(basis.astype(np.float64, copy=False))
        keys, counts = np.unique(basis_labels[finite].astype(str), return_counts=True)
        for key, count in zip(keys, counts, strict=True):
            if count >= MIN_GROUP_VALUES:
                g = judge(basis[basis_labels == key])
                if g is not None:
                    groups[str(key)] = g
    return FenceSet(
        basis="reference" if use_ref else "batch",
        overall=overall,
        groups=groups,
        labels=labels.astype(str) if labels is not None else None,
    )
