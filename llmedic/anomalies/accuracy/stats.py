"""Deciding whether accuracy really dropped (answers are scored by ``llmedic.answer_scoring``).

The decision methods (Miller 2024, "Adding Error Bars to Evals"):

* the same items re-scored (paired): McNemar's test on the discordant pairs (exact binomial when
  there are few) and a bootstrap (BCa) interval of the mean per-item difference;
* independent samples: a one-sided two-proportion z-test (the baseline beats the new run);
* one rate: Wilson's interval;
* power first: :func:`required_items` says how many items are needed to see a given drop, and
  :func:`power_warning` says so when a golden set is too small for the playbook's margin.

Pure: NumPy and SciPy, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = [
    "DropVerdict",
    "PairedTest",
    "compare_runs",
    "mcnemar",
    "paired_bootstrap",
    "power_warning",
    "required_items",
    "two_proportion_z",
    "wilson_interval",
]


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    if n <= 0:
        return 0.0, 1.0
    z = float(stats.norm.ppf(1 - (1 - confidence) / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def two_proportion_z(k_base: int, n_base: int, k_new: int, n_new: int) -> tuple[float, float]:
    """(z, one-sided p) for "the baseline's rate is higher than the new one" (pooled variance)."""
    if min(n_base, n_new) <= 0:
        raise ValueError("both samples need at least one item")
    p1, p2 = k_base / n_base, k_new / n_new
    pooled = (k_base + k_new) / (n_base + n_new)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_base + 1 / n_new))
    if se == 0:
        return 0.0, 1.0 if p1 <= p2 else 0.0
    z = (p1 - p2) / se
    return z, float(stats.norm.sf(z))


@dataclass(frozen=True)
class PairedTest:
    """McNemar on the same items scored twice."""

    better: int
    """Items right before and wrong now (b)."""
    worse_fixed: int
    """Items wrong before and right now (c)."""
    p_value: float
    exact: bool


def mcnemar(before: Sequence[int], after: Sequence[int], exact_below: int = 25) -> PairedTest:
    """One-sided McNemar test that accuracy fell: exact binomial on the discordant pairs when there
    are fewer than ``exact_below`` of them, the continuity-corrected chi-square otherwise."""
    if len(before) != len(after):
        raise ValueError("paired scores need the same items in the same order")
    b = sum(1 for x, y in zip(before, after, strict=True) if x and not y)
    c = sum(1 for x, y in zip(before, after, strict=True) if y and not x)
    if b + c == 0:
        return PairedTest(b, c, 1.0, True)
    if b + c < exact_below:
        p = float(stats.binomtest(b, b + c, 0.5, alternative="greater").pvalue)
        return PairedTest(b, c, p, True)
    chi2 = (abs(b - c) - 1) ** 2 / (b + c)
    p_two = float(stats.chi2.sf(chi2, 1))
    return PairedTest(b, c, p_two / 2 if b > c else 1 - p_two / 2, False)


def paired_bootstrap(
    before: Sequence[float], after: Sequence[float], confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """(mean difference after − before, low, high): a BCa bootstrap interval of the mean per-item
    difference (a regression when ``high`` is below minus the practical margin)."""
    diffs = np.asarray(after, dtype=float) - np.asarray(before, dtype=float)
    if diffs.size < 2:
        raise ValueError("a bootstrap needs at least two paired items")
    mean = float(diffs.mean())
    if np.all(diffs == diffs[0]):
        return mean, mean, mean
    res = stats.bootstrap((diffs,), np.mean, confidence_level=confidence, method="BCa", random_state=seed)
    return mean, float(res.confidence_interval.low), float(res.confidence_interval.high)


def required_items(p_base: float, p_new: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Items per arm to detect a drop from ``p_base`` to ``p_new`` with a one-sided test (Cohen's h,
    normal approximation, as statsmodels' ``NormalIndPower`` computes it)."""
    h = abs(2 * math.asin(math.sqrt(p_base)) - 2 * math.asin(math.sqrt(p_new)))
    if h == 0:
        raise ValueError("the two rates are equal: no sample size detects no difference")
    z = float(stats.norm.ppf(1 - alpha) + stats.norm.ppf(power))
    return math.ceil((z / h) ** 2)


def power_warning(
    items: int, p_base: float, margin: float, alpha: float = 0.05, power: float = 0.8
) -> str | None:
    """A warning when ``items`` cannot detect a drop of ``margin`` from ``p_base``; None otherwise."""
    need = required_items(p_base, max(0.0, p_base - margin), alpha, power)
    if items >= need:
        return None
    return (
        f"{items} golden items cannot reliably detect a drop of {margin:.0%} from {p_base:.0%} "
        f"(about {need} are needed for {power:.0%} power at one-sided α={alpha:g}); a real drop may be "
        "missed — add items or accept a larger margin"
    )


@dataclass(frozen=True)
class DropVerdict:
    """Did accuracy fall from a baseline run to a new one? Plain numbers, JSON-friendly."""

    method: str
    """``mcnemar`` (the same items re-scored) or ``two_proportion_z`` (independent samples)."""
    n_base: int
    k_base: int
    n_new: int
    k_new: int
    p_value: float
    margin: float
    alpha: float
    base_interval: tuple[float, float]
    new_interval: tuple[float, float]
    newly_wrong: tuple[str, ...] = ()
    newly_right: tuple[str, ...] = ()
    diff_interval: tuple[float, float] | None = None
    """Paired: BCa interval of the mean per-item difference (new − base)."""
    power_note: str | None = None

    @property
    def base_accuracy(self) -> float:
        """Baseline share correct."""
        return self.k_base / self.n_base if self.n_base else 0.0

    @property
    def new_accuracy(self) -> float:
        """New share correct."""
        return self.k_new / self.n_new if self.n_new else 0.0

    @property
    def drop(self) -> float:
        """Baseline accuracy minus new accuracy (positive: worse)."""
        return self.base_accuracy - self.new_accuracy

    @property
    def dropped(self) -> bool:
        """Significant at ``alpha`` *and* at least ``margin`` worse (a real, material drop)."""
        return self.p_value < self.alpha and self.drop >= self.margin

    @property
    def within_baseline(self) -> bool:
        """The new accuracy reaches the baseline's Wilson interval (what recovery means)."""
        return self.new_accuracy >= self.base_interval[0]

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form for evidence and reports."""
        return {
            "method": self.method,
            "baseline": f"{self.k_base}/{self.n_base}",
            "now": f"{self.k_new}/{self.n_new}",
            "base_accuracy": round(self.base_accuracy, 4),
            "new_accuracy": round(self.new_accuracy, 4),
            "drop": round(self.drop, 4),
            "p_value": round(self.p_value, 6),
            "alpha": self.alpha,
            "margin": self.margin,
            "dropped": self.dropped,
            "within_baseline": self.within_baseline,
            "base_interval": [round(x, 4) for x in self.base_interval],
            "new_interval": [round(x, 4) for x in self.new_interval],
            "diff_interval": [round(x, 4) for x in self.diff_interval] if self.diff_interval else None,
            "newly_wrong": list(self.newly_wrong),
            "newly_right": list(self.newly_right),
            "power_note": self.power_note,
        }


def compare_runs(
    base: dict[str, int], new: dict[str, int], *, margin: float, alpha: float = 0.05
) -> DropVerdict:
    """Compare per-item correctness (item id → 0/1) of a baseline run and a new run.

    When the runs share items, the shared items are compared pairwise (McNemar, plus a bootstrap
    interval of the per-item difference); otherwise the two rates are compared as independent
    samples (one-sided two-proportion z). Either way the verdict carries Wilson intervals and a
    power note when the sample is too small to see a drop of ``margin``."""
    if not base or not new:
        raise ValueError("both runs need at least one scored item")
    shared = sorted(set(base) & set(new))
    if len(shared) >= 2:
        b = [int(bool(base[i])) for i in shared]
        a = [int(bool(new[i])) for i in shared]
        test = mcnemar(b, a)
        _, lo, hi = paired_bootstrap(b, a)
        kb, kn, n = sum(b), sum(a), len(shared)
        note = power_warning(n, kb / n, margin, alpha) if kb / n - margin > 0 else None
        return DropVerdict(
            method="mcnemar",
            n_base=n,
            k_base=kb,
            n_new=n,
            k_new=kn,
            p_value=test.p_value,
            margin=margin,
            alpha=alpha,
            base_interval=wilson_interval(kb, n),
            new_interval=wilson_interval(kn, n),
            newly_wrong=tuple(i for i, x, y in zip(shared, b, a, strict=True) if x and not y),
            newly_right=tuple(i for i, x, y in zip(shared, b, a, strict=True) if y and not x),
            diff_interval=(lo, hi),
            power_note=note,
        )
    kb, nb = sum(int(bool(v)) for v in base.values()), len(base)
    kn, nn = sum(int(bool(v)) for v in new.values()), len(new)
    _, p = two_proportion_z(kb, nb, kn, nn)
    note = power_warning(min(nb, nn), kb / nb, margin, alpha) if kb / nb - margin > 0 else None
    return DropVerdict(
        method="two_proportion_z",
        n_base=nb,
        k_base=kb,
        n_new=nn,
        k_new=kn,
        p_value=p,
        margin=margin,
        alpha=alpha,
        base_interval=wilson_interval(kb, nb),
        new_interval=wilson_interval(kn, nn),
        power_note=note,
    )
