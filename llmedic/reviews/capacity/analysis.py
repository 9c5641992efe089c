"""Capacity review maths: percentiles, headroom against a reserve, a robust growth trend and the
dates the reserve and the capacity run out, and recommendations with the numbers behind them.

Headroom is judged on the 99th percentile of the look-back window (one spike does not make a
shortage; a busy hour every day does): utilisation = p99 / capacity, headroom = 1 − utilisation,
and the review wants ``reserve`` (the guide's 20–30 %) left. The trend is Theil–Sen's slope of the
daily 99th percentiles (robust to a few odd days), projected to the day it crosses the reserve line
(``(1 − reserve) × capacity``) and the capacity itself.

Pure: NumPy and SciPy, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
from scipy import stats

__all__ = ["Recommendation", "ResourceReview", "recommend", "review_series"]

DAY = 86_400.0


@dataclass(frozen=True)
class ResourceReview:
    """One resource of one service over the look-back window."""

    name: str
    unit: str
    capacity: float
    reserve: float
    samples: int
    p50: float
    p95: float
    p99: float
    peak: float
    slope_per_day: float
    """Theil–Sen slope of the daily p99, in ``unit`` per day."""
    slope_low: float
    slope_high: float
    reserve_date: datetime | None
    """When the daily p99 trend crosses ``(1 − reserve) × capacity`` (None: flat or falling)."""
    exhaustion_date: datetime | None
    """When it reaches the capacity (None: flat or falling)."""
    note: str = ""

    @property
    def utilisation(self) -> float:
        """p99 as a share of the capacity."""
        return self.p99 / self.capacity if self.capacity > 0 else math.nan

    @property
    def headroom(self) -> float:
        """1 − utilisation."""
        return 1.0 - self.utilisation

    @property
    def below_target(self) -> bool:
        """Less headroom than the reserve already."""
        return self.samples > 0 and self.headroom < self.reserve

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form."""

        def day(d: datetime | None) -> str | None:
            return d.date().isoformat() if d else None

        return {
            "resource": self.name,
            "unit": self.unit,
            "capacity": self.capacity,
            "samples": self.samples,
            "p50": round(self.p50, 4),
            "p95": round(self.p95, 4),
            "p99": round(self.p99, 4),
            "peak": round(self.peak, 4),
            "utilisation": round(self.utilisation, 4),
            "headroom": round(self.headroom, 4),
            "reserve": self.reserve,
            "below_target": self.below_target,
            "slope_per_day": round(self.slope_per_day, 6),
            "reserve_date": day(self.reserve_date),
            "exhaustion_date": day(self.exhaustion_date),
            "note": self.note,
        }


def _crossing(
    intercept: float, slope: float, level: float, start_day: float, now_day: float
) -> datetime | None:
    """The day the line ``intercept + slope × (d − start_day)`` reaches ``level`` (today if it
    already has; None when it never will)."""
    current = intercept + slope * (now_day - start_day)
    if current >= level:
        return datetime.fromtimestamp(now_day * DAY, UTC)
    if slope <= 0:
        return None
    d = start_day + (level - intercept) / slope
    return datetime.fromtimestamp(d * DAY, UTC)


def review_series(
    name: str,
    unit: str,
    t: np.ndarray,
    y: np.ndarray,
    *,
    capacity: float,
    reserve: float,
    now: float | None = None,
    min_days: int = 7,
) -> ResourceReview:
    """Review one series (Unix seconds, values in ``unit``) against ``capacity`` with ``reserve``."""
    if not 0 <= reserve < 1:
        raise ValueError("reserve is a share in [0, 1)")
    if capacity <= 0:
        raise ValueError("capacity must be positive")
    t = np.asarray(t, dtype=float)
    y = np.asarray(y, dtype=float)
    keep = np.isfinite(t) & np.isfinite(y)
    t, y = t[keep], y[keep]
    now = float(now if now is not None else (t.max() if t.size else 0.0))
    if y.size == 0:
        return ResourceReview(
            name, unit, capacity, reserve, 0, *(math.nan,) * 4, 0.0, 0.0, 0.0, None, None, note="no data"
        )
    p50, p95, p99 = (float(np.percentile(y, q)) for q in (50, 95, 99))
    days = np.floor(t / DAY)
    uniq = np.unique(days)
    daily = np.array([np.percentile(y[days == d], 99) for d in uniq])
    note = ""
    slope = low = high = 0.0
    reserve_date = exhaustion_date = None
    if uniq.size >= min_days:
        slope, intercept, low, high = (float(v) for v in stats.theilslopes(daily, uniq - uniq[0]))
        today = math.floor(now / DAY)
        # Only a trend whose 95 % interval excludes zero is projected; otherwise it is noise.
        if low > 0:
            reserve_date = _crossing(intercept, slope, (1 - reserve) * capacity, uniq[0], today)
            exhaustion_date = _crossing(intercept, slope, capacity, uniq[0], today)
        else:
            note = "no significant growth"
    else:
        note = f"only {uniq.size} day(s) of data: no trend (needs {min_days})"
    return ResourceReview(
        name,
        unit,
        capacity,
        reserve,
        int(y.size),
        p50,
        p95,
        p99,
        float(y.max()),
        slope,
        low,
        high,
        reserve_date,
        exhaustion_date,
        note,
    )


@dataclass(frozen=True)
class Recommendation:
    """What to do, and the figures that say why."""

    action: str
    """``add_gpus``, ``scale_out``, ``rebalance_replicas``, ``quantise`` or ``tune_batch_limits``."""
    reason: str
    numbers: dict[str, float | int | str] = field(default_factory=dict)


def recommend(
    reviews: dict[str, ResourceReview],
    *,
    gpus: int | None = None,
    replicas: int | None = None,
    per_instance_qps: dict[str, float] | None = None,
    horizon_days: int = 90,
    now: datetime | None = None,
) -> list[Recommendation]:
    """Recommendations from a service's reviews (keys: ``gpu_utilisation``, ``gpu_memory``,
    ``kv_cache``, ``qps``, ``latency_p99``), each with the numbers behind it."""
    now = now or datetime.now(UTC)
    soon = now + timedelta(days=horizon_days)
    out: list[Recommendation] = []

    def short(key: str) -> ResourceReview | None:
        r = reviews.get(key)
        if r is None or r.samples == 0:
            return None
        return r if r.below_target or (r.reserve_date is not None and r.reserve_date <= soon) else None

    gpu = short("gpu_utilisation")
    if gpu is not None and gpus:
        # GPUs needed so that the p99 utilisation sits at the reserve line.
        need = math.ceil(gpus * gpu.utilisation / (1 - gpu.reserve)) - gpus
        when = "now" if gpu.below_target else f"by {gpu.reserve_date:%Y-%m-%d}"
        out.append(
            Recommendation(
                "add_gpus",
                f"GPU utilisation p99 {gpu.utilisation:.0%} leaves {gpu.headroom:.0%} headroom "
                f"(target {gpu.reserve:.0%}) {when}: add {max(1, need)} GPU(s) to {gpus}",
                {"gpus": gpus, "p99_utilisation": round(gpu.utilisation, 4), "add": max(1, need)},
            )
        )
    load = short("qps") or short("latency_p99")
    if load is not None and replicas:
        need = math.ceil(replicas * load.utilisation / (1 - load.reserve)) - replicas
        out.append(
            Recommendation(
                "scale_out",
                f"{load.name} p99 at {load.utilisation:.0%} of capacity ({load.p99:.3g} {load.unit} of "
                f"{load.capacity:.3g}): add {max(1, need)} replica(s) to {replicas}",
                {"replicas": replicas, "p99_utilisation": round(load.utilisation, 4), "add": max(1, need)},
            )
        )
    if per_instance_qps and len(per_instance_qps) > 1:
        hi = max(per_instance_qps, key=lambda k: per_instance_qps[k])
        lo = min(per_instance_qps, key=lambda k: per_instance_qps[k])
        if per_instance_qps[lo] > 0 and per_instance_qps[hi] / per_instance_qps[lo] >= 1.5:
            ratio = per_instance_qps[hi] / per_instance_qps[lo]
            out.append(
                Recommendation(
                    "rebalance_replicas",
                    f"{hi} carries {ratio:.1f}× the load of {lo} (p95 {per_instance_qps[hi]:.2f} vs "
                    f"{per_instance_qps[lo]:.2f} req/s): fix the balancer weights or routing",
                    {"busiest": hi, "idlest": lo, "ratio": round(ratio, 2)},
                )
            )
    mem = short("gpu_memory")
    if mem is not None and gpu is None:
        out.append(
            Recommendation(
                "quantise",
                f"GPU memory p99 {mem.utilisation:.0%} with compute to spare: an 8-bit (FP8/INT8) "
                "variant halves the weights' memory, a 4-bit (AWQ/GPTQ) one quarters it",
                {"p99_memory": round(mem.utilisation, 4)},
            )
        )
    kv = short("kv_cache")
    if kv is not None:
        factor = (1 - kv.reserve) / kv.utilisation if kv.utilisation > 0 else 1.0
        out.append(
            Recommendation(
                "tune_batch_limits",
                f"KV cache p99 {kv.utilisation:.0%}: lower max_num_seqs (or max_num_batched_tokens) to "
                f"about {factor:.0%} of today's, or give the cache more memory (gpu_memory_utilization)",
                {"p99_kv_cache": round(kv.utilisation, 4), "scale_limits_by": round(factor, 3)},
            )
        )
    return out
