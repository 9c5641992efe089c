"""Is a memory series leaking? Theil–Sen slope with its confidence interval, a Mann–Kendall trend
test corrected for autocorrelation (Hamed & Rao 1998), and the projected time to the memory limit.

Memory series of a serving process are autocorrelated (GC saw-tooth, allocator arenas, KV-cache
churn), so an OLS p-value — and Prometheus' ``predict_linear``, which has no test at all — is
over-confident. The verdict here requires all of (after the warm-up is cut off, with enough samples):

1. a monotone upward trend: Mann–Kendall, variance inflated for the autocorrelation of the ranks of
   the detrended series (Hamed–Rao), one-sided p below ``p_value``;
2. a robust positive slope: the lower bound of Theil–Sen's confidence interval above zero;
3. material growth: the slope would add at least ``min_growth_share`` of the limit within the
   horizon, or reach the limit within the horizon;
4. still growing: Theil–Sen's lower bound over the most recent ``recent_share`` of the window is
   above zero too;
5. not a level shift: when one step (two flat segments) fits the series better than a line — a
   cache filling up once, then flat — only the part after the step is judged.

Pure: NumPy and SciPy, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["LeakVerdict", "detect_leak", "mann_kendall_hr", "predict_linear_alert"]

_MAX_POINTS = 1500  # Mann–Kendall is O(n²): longer series are averaged down to this many points


@dataclass(frozen=True)
class LeakVerdict:
    """What the detector concluded, with the figures behind it."""

    leaking: bool
    judged: bool
    """False when the series is too short to judge (then ``leaking`` is False and ``reason`` says why)."""
    reason: str
    samples: int = 0
    slope_per_hour: float = 0.0
    slope_low_per_hour: float = 0.0
    slope_high_per_hour: float = 0.0
    mk_z: float = 0.0
    mk_p: float = 1.0
    autocorrelation_factor: float = 1.0
    baseline: float = 0.0
    """Theil–Sen fitted value at the end of the warm-up."""
    last: float = 0.0
    hours_to_limit: float | None = None

    def as_dict(self) -> dict[str, object]:
        """JSON-able figures for the evidence."""
        return dict(self.__dict__)


def mann_kendall_hr(y: np.ndarray, alpha: float = 0.05) -> tuple[float, float, float]:
    """Mann–Kendall (z, one-sided p for an upward trend, variance inflation factor) with the
    Hamed–Rao correction: the variance of S is multiplied by n/n*, computed from the significant
    autocorrelations of the ranks of the Sen-detrended series."""
    n = y.size
    diff = np.sign(y[None, :] - y[:, None])
    s = float(np.triu(diff, k=1).sum())
    _, counts = np.unique(y, return_counts=True)
    ties = counts[counts > 1]
    var_s = (n * (n - 1) * (2 * n + 5) - float(np.sum(ties * (ties - 1) * (2 * ties + 5)))) / 18.0
    # Hamed & Rao: autocorrelation of the ranks of the detrended series, significant lags only.
    x = np.arange(n, dtype=float)
    slope = float(stats.theilslopes(y, x)[0])
    ranks = stats.rankdata(y - slope * x)
    r = ranks - ranks.mean()
    denom = float(np.dot(r, r))
    factor = 1.0
    if denom > 0:
        acf = np.correlate(r, r, mode="full")[n - 1 :] / denom
        bound = stats.norm.ppf(1 - alpha / 2) / math.sqrt(n)
        k = np.arange(1, n - 2)
        rk = acf[1 : n - 2]
        sig = np.abs(rk) > bound
        if sig.any():
            kk = k[sig]
            factor = 1 + 2 / (n * (n - 1) * (n - 2)) * float(
                np.sum((n - kk) * (n - kk - 1) * (n - kk - 2) * rk[sig])
            )
            factor = max(factor, 1e-3)
    var = var_s * factor
    if var <= 0:
        return 0.0, 1.0, factor
    z = (s - 1) / math.sqrt(var) if s > 0 else (s + 1) / math.sqrt(var) if s < 0 else 0.0
    return z, float(stats.norm.sf(z)), factor


def _step_break(y: np.ndarray, min_segment: int = 5) -> int | None:
    """The break of the best one-step (piecewise constant) fit, when it fits better than a line and
    explains most of the variation (noise alone never does)."""
    n = y.size
    if n < 2 * min_segment + 2:
        return None
    yc = y - y.mean()  # centred, so the cumulative sums keep their precision
    cs, cs2 = np.cumsum(yc), np.cumsum(yc * yc)
    k = np.arange(min_segment, n - min_segment)
    left = cs2[k - 1] - cs[k - 1] ** 2 / k
    rs, rs2, m = cs[-1] - cs[k - 1], cs2[-1] - cs2[k - 1], n - k
    step_sse = left + rs2 - rs**2 / m
    best = int(np.argmin(step_sse))
    x = np.arange(n, dtype=float)
    slope, intercept = np.polyfit(x, yc, 1)
    line_sse = float(np.sum((yc - (intercept + slope * x)) ** 2))
    flat_sse = float(cs2[-1])
    material = flat_sse - float(step_sse[best]) > 0.5 * flat_sse
    return int(k[best]) if material and float(step_sse[best]) < line_sse else None


def _downsample(t: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if y.size <= _MAX_POINTS:
        return t, y
    edges = np.linspace(0, y.size, _MAX_POINTS + 1).astype(int)
    tm = np.add.reduceat(t, edges[:-1]) / np.diff(edges)
    ym = np.add.reduceat(y, edges[:-1]) / np.diff(edges)
    return tm, ym


def _clean(t: np.ndarray, y: np.ndarray, warmup_seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """Finite samples only, in time order, after the warm-up."""
    t = np.asarray(t, dtype=float)
    y = np.asarray(y, dtype=float)
    keep = np.isfinite(t) & np.isfinite(y)
    t, y = t[keep], y[keep]
    if t.size:
        order = np.argsort(t, kind="stable")
        t, y = t[order], y[order]
        after = t >= t[0] + warmup_seconds
        t, y = t[after], y[after]
    return t, y


def _why_not(
    *,
    trend: bool,
    p: float,
    p_value: float,
    factor: float,
    low_per_hour: float,
    recent_low: float,
    material: bool,
    growth: float,
    horizon_hours: float,
    min_growth_share: float,
    scale: float,
) -> list[str]:
    """Each test a series that does not leak failed, in words."""
    why = []
    if not trend:
        why.append(
            f"no significant upward trend (Mann–Kendall p {p:.2g} ≥ {p_value:g}, variance ×{factor:.1f})"
        )
    if low_per_hour <= 0:
        why.append(f"the slope's 95 % interval includes zero ({low_per_hour / 2**20:.2f} MiB/h)")
    elif recent_low <= 0:
        why.append("memory stopped growing in the recent part of the window (a step, not a leak)")
    if not material:
        why.append(
            f"growth of {growth / 2**20:.1f} MiB per {horizon_hours:g} h is below {min_growth_share:.0%} of {scale / 2**20:.0f} MiB"
        )
    return why


def detect_leak(
    t: np.ndarray,
    y: np.ndarray,
    *,
    limit: float | None = None,
    warmup_seconds: float = 0.0,
    min_samples: int = 30,
    p_value: float = 0.01,
    horizon_hours: float = 24.0,
    min_growth_share: float = 0.05,
    recent_share: float = 0.5,
    level_shifts: bool = True,
) -> LeakVerdict:
    """Judge one series: ``t`` seconds, ``y`` bytes (NaN samples dropped). ``limit``: the memory
    limit in bytes (without one, growth is judged against the series' own level)."""
    t, y = _clean(t, y, warmup_seconds)
    if t.size < min_samples:
        return LeakVerdict(
            leaking=False,
            judged=False,
            reason=f"{t.size} samples after the {warmup_seconds:g}s warm-up; at least {min_samples} are needed to judge",
            samples=int(t.size),
        )
    if float(np.ptp(y)) == 0.0:
        return LeakVerdict(
            leaking=False,
            judged=True,
            reason="memory is constant",
            samples=int(t.size),
            baseline=float(y[0]),
            last=float(y[-1]),
        )
    td, yd = _downsample(t, y)
    brk = _step_break(yd) if level_shifts else None
    if brk is not None:
        after = detect_leak(
            td[brk:],
            yd[brk:],
            limit=limit,
            min_samples=min_samples,
            p_value=p_value,
            horizon_hours=horizon_hours,
            min_growth_share=min_growth_share,
            recent_share=recent_share,
            level_shifts=False,
        )
        shift = f"a level shift at +{(td[brk] - td[0]) / 3600:.1f} h fits better than a line"
        return LeakVerdict(
            **{
                **after.__dict__,
                "reason": f"{shift}; after it: {after.reason}"
                if after.judged
                else f"{shift}, flat since (too little since to see a new trend)",
                "judged": True,
                "samples": int(t.size),
            }
        )
    return _judge_trend(
        t,
        y,
        td,
        yd,
        limit=limit,
        p_value=p_value,
        horizon_hours=horizon_hours,
        min_growth_share=min_growth_share,
        recent_share=recent_share,
    )


def _judge_trend(
    t: np.ndarray,
    y: np.ndarray,
    td: np.ndarray,
    yd: np.ndarray,
    *,
    limit: float | None,
    p_value: float,
    horizon_hours: float,
    min_growth_share: float,
    recent_share: float,
) -> LeakVerdict:
    """Tests 1-4 on a series with no level shift (``td``/``yd``: downsampled)."""
    slope, intercept, low, high = (float(v) for v in stats.theilslopes(yd, td, alpha=0.95))
    z, p, factor = mann_kendall_hr(yd)
    per_h = 3600.0
    baseline = intercept + slope * t[0]
    last_fit = intercept + slope * t[-1]
    scale = limit if limit is not None and limit > 0 else max(abs(baseline), 1.0)
    growth = slope * horizon_hours * per_h
    hours_to_limit = None
    if limit is not None and slope > 0:
        hours_to_limit = max(0.0, (limit - last_fit) / (slope * per_h))
    trend = p < p_value
    cut = int(td.size * (1 - recent_share))
    recent_low = float(stats.theilslopes(yd[cut:], td[cut:], alpha=0.95)[2]) if td.size - cut >= 10 else low
    robust = low > 0 and recent_low > 0
    material = growth >= min_growth_share * scale or (
        hours_to_limit is not None and hours_to_limit <= horizon_hours
    )
    leaking = trend and robust and material
    if leaking:
        reason = (
            f"memory grows {slope * per_h / 2**20:.1f} MiB/h (95 % CI {low * per_h / 2**20:.1f}–{high * per_h / 2**20:.1f}); "
            f"Mann–Kendall z {z:.1f}, p {p:.2g} after the autocorrelation correction (×{factor:.1f} variance)"
            + (f"; the limit is reached in {hours_to_limit:.1f} h" if hours_to_limit is not None else "")
        )
    else:
        reason = "; ".join(
            _why_not(
                trend=trend,
                p=p,
                p_value=p_value,
                factor=factor,
                low_per_hour=low * per_h,
                recent_low=recent_low,
                material=material,
                growth=growth,
                horizon_hours=horizon_hours,
                min_growth_share=min_growth_share,
                scale=scale,
            )
        )
    return LeakVerdict(  # plain Python types: the verdict goes into JSON evidence
        leaking=bool(leaking),
        judged=True,
        reason=reason,
        samples=int(t.size),
        slope_per_hour=float(slope * per_h),
        slope_low_per_hour=float(low * per_h),
        slope_high_per_hour=float(high * per_h),
        mk_z=float(z),
        mk_p=float(p),
        autocorrelation_factor=float(factor),
        baseline=float(baseline),
        last=float(y[-1]),
        hours_to_limit=None if hours_to_limit is None else float(hours_to_limit),
    )


def predict_linear_alert(t: np.ndarray, y: np.ndarray, limit: float, horizon_seconds: float) -> bool:
    """Prometheus' ``predict_linear(v[range], horizon) > limit``: an OLS line through the window,
    extrapolated; no significance test (the rule the detector is compared with)."""
    t = np.asarray(t, dtype=float)
    y = np.asarray(y, dtype=float)
    if t.size < 2:
        return False
    slope, intercept = np.polyfit(t - t[-1], y, 1)
    return bool(intercept + slope * horizon_seconds > limit)
