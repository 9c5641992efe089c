"""Latency analysis: histogram quantiles exactly as Prometheus computes them, probe percentiles, and
the latency diagnosis that chooses between shedding load, restarting one instance and scaling out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from llmedic.diagnoses import LatencyDiagnosis

__all__ = [
    "Bucket",
    "InstanceLatency",
    "LatencyVerdict",
    "bucket_delta",
    "diagnose_latency",
    "histogram_quantile",
    "sample_quantile",
]

Bucket = tuple[float, float]
"""(upper bound ``le``, cumulative count)."""


def bucket_delta(before: Sequence[Bucket], after: Sequence[Bucket]) -> list[Bucket]:
    """Per-bucket increase between two scrapes of the same cumulative histogram.

    A counter reset (the process restarted, so a count went down) makes the later scrape the delta,
    as Prometheus' ``rate()`` does.
    """
    old = dict(before)
    if any(count < old.get(le, 0.0) for le, count in after):
        return sorted(after)
    return sorted((le, count - old.get(le, 0.0)) for le, count in after)


def histogram_quantile(q: float, buckets: Sequence[Bucket]) -> float:
    """The ``q``-quantile of a cumulative histogram, with Prometheus' interpolation rules.

    Linear interpolation inside the bucket that holds the rank; the lowest bucket starts at 0 (when
    its bound is positive); a rank in the ``+Inf`` bucket returns the highest finite bound. No
    ``+Inf`` bucket or no observations gives NaN; q < 0 is -Inf and q > 1 is +Inf.
    """
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = sorted(buckets)
    if len(ordered) < 2 or not math.isinf(ordered[-1][0]):
        return math.nan
    # Force monotonic counts, as Prometheus does for scrapes that raced with observations.
    fixed: list[Bucket] = []
    running_max = 0.0
    for le, count in ordered:
        running_max = max(running_max, count)
        fixed.append((le, running_max))
    total = fixed[-1][1]
    if total == 0:
        return math.nan
    rank = q * total
    b = next(i for i, (_, count) in enumerate(fixed) if count >= rank)
    if b == len(fixed) - 1:
        return fixed[-2][0]
    if b == 0 and fixed[0][0] <= 0:
        return fixed[0][0]
    start, prev = (0.0, 0.0) if b == 0 else fixed[b - 1]
    end, count = fixed[b]
    in_bucket = count - prev
    if in_bucket == 0:
        return end
    return start + (end - start) * ((rank - prev) / in_bucket)


def sample_quantile(values: Sequence[float], q: float) -> float:
    """Quantile of raw samples (linear interpolation between closest ranks, numpy's default)."""
    if not values:
        return math.nan
    data = sorted(values)
    pos = (len(data) - 1) * q
    lo = math.floor(pos)
    hi = math.ceil(pos)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


@dataclass(frozen=True)
class InstanceLatency:
    """What is known about one instance's latency and load."""

    name: str
    p99_seconds: float | None
    waiting: float = 0.0
    running: float = 0.0
    kv_cache_usage: float = 0.0
    healthy: bool = True
    drained: bool = False
    ttft_p99: float | None = None
    itl_p99: float | None = None


@dataclass(frozen=True)
class LatencyVerdict:
    """Why latency is high, and the figures behind the verdict."""

    diagnosis: LatencyDiagnosis
    reason: str
    scope: str
    """``instance`` or ``fleet``."""
    over_slo: list[str] = field(default_factory=list)
    share_over_slo: float = 0.0
    healthy_others: int = 0


def diagnose_latency(
    target: str,
    fleet: Mapping[str, InstanceLatency],
    *,
    slo_p99_seconds: float,
    queue_threshold: float,
    kv_cache_threshold: float,
    fleet_share_threshold: float,
    itl_p99_threshold: float = math.inf,
) -> LatencyVerdict:
    """Classify a latency incident on ``target`` given every in-rotation instance of its service.

    Order matters: a fleet-wide problem is not cured on one instance; KV-cache pressure and queueing
    are cured by shedding load; a lone slow instance with neither is degraded and needs a restart.
    """
    active = {n: i for n, i in fleet.items() if not i.drained}
    over = sorted(
        n for n, i in active.items() if i.p99_seconds is not None and i.p99_seconds > slo_p99_seconds
    )
    share = len(over) / len(active) if active else 0.0
    others_ok = sum(
        1
        for n, i in active.items()
        if n != target and i.healthy and (i.p99_seconds is None or i.p99_seconds <= slo_p99_seconds)
    )
    me = fleet.get(target)

    def verdict(diagnosis: LatencyDiagnosis, reason: str, scope: str = "instance") -> LatencyVerdict:
        return LatencyVerdict(diagnosis, reason, scope, over, round(share, 3), others_ok)

    if len(active) > 1 and share >= fleet_share_threshold:
        slow = [active[n] for n in over]
        # Slow everywhere, yet nothing waits and the KV cache is not full: the model decodes slowly
        # (compute-bound). More instances would each decode just as slowly.
        if all(
            i.waiting < queue_threshold
            and i.kv_cache_usage < kv_cache_threshold
            and i.itl_p99 is not None
            and i.itl_p99 > itl_p99_threshold
            for i in slow
        ):
            worst = max(float(i.itl_p99 or 0) for i in slow)
            return verdict(
                LatencyDiagnosis.SLOW_DECODE,
                f"{len(over)} of {len(active)} instances are over the {slo_p99_seconds:g}s SLO with no queue and "
                f"no KV-cache pressure, and inter-token latency p99 up to {worst * 1000:.0f} ms "
                f"(> {itl_p99_threshold * 1000:.0f} ms): decoding is compute-bound",
                "fleet",
            )
        return verdict(
            LatencyDiagnosis.FLEET_OVERLOAD,
            f"{len(over)} of {len(active)} instances are over the {slo_p99_seconds:g}s p99 SLO "
            f"(share {share:.0%} ≥ {fleet_share_threshold:.0%})",
            "fleet",
        )
    if me is None:
        return verdict(LatencyDiagnosis.UNKNOWN, f"no figures for {target}", "instance")
    if me.kv_cache_usage >= kv_cache_threshold:
        return verdict(
            LatencyDiagnosis.KV_CACHE_PRESSURE,
            f"KV-cache usage {me.kv_cache_usage:.0%} ≥ {kv_cache_threshold:.0%}: requests contend "
            "for cache and get preempted",
            "instance",
        )
    if me.waiting >= queue_threshold:
        return verdict(
            LatencyDiagnosis.QUEUEING,
            f"{me.waiting:.1f} requests waiting (≥ {queue_threshold:g}) with {me.running:.0f} running",
            "instance",
        )
    if me.p99_seconds is not None and me.p99_seconds > slo_p99_seconds:
        return verdict(
            LatencyDiagnosis.INSTANCE_DEGRADED,
            f"p99 {me.p99_seconds:.2f}s over the {slo_p99_seconds:g}s SLO without queueing or KV-cache "
            f"pressure, while {others_ok} other instance(s) are within it: the instance itself is slow",
            "instance",
        )
    return verdict(LatencyDiagnosis.UNKNOWN, "no rule matched the figures; a human should look", "instance")
