"""The latency diagnosis: shed load, restart one instance, or scale out. Pure: no adapter, no I/O,
no Prefect.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["Diagnosis", "InstanceLatency", "LatencyVerdict", "diagnose_latency"]


class Diagnosis(StrEnum):
    """Why latency is high (``diagnose_latency``); the names the latency playbook's ``when`` may use."""

    INSTANCE_DEGRADED = "instance_degraded"
    KV_CACHE_PRESSURE = "kv_cache_pressure"
    QUEUEING = "queueing"
    SLOW_DECODE = "slow_decode"
    FLEET_OVERLOAD = "fleet_overload"
    UNKNOWN = "unknown"


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

    diagnosis: Diagnosis
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

    def verdict(diagnosis: Diagnosis, reason: str, scope: str = "instance") -> LatencyVerdict:
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
                Diagnosis.SLOW_DECODE,
                f"{len(over)} of {len(active)} instances are over the {slo_p99_seconds:g}s SLO with no queue and "
                f"no KV-cache pressure, and inter-token latency p99 up to {worst * 1000:.0f} ms "
                f"(> {itl_p99_threshold * 1000:.0f} ms): decoding is compute-bound",
                "fleet",
            )
        return verdict(
            Diagnosis.FLEET_OVERLOAD,
            f"{len(over)} of {len(active)} instances are over the {slo_p99_seconds:g}s p99 SLO "
            f"(share {share:.0%} ≥ {fleet_share_threshold:.0%})",
            "fleet",
        )
    if me is None:
        return verdict(Diagnosis.UNKNOWN, f"no figures for {target}", "instance")
    if me.kv_cache_usage >= kv_cache_threshold:
        return verdict(
            Diagnosis.KV_CACHE_PRESSURE,
            f"KV-cache usage {me.kv_cache_usage:.0%} ≥ {kv_cache_threshold:.0%}: requests contend "
            "for cache and get preempted",
            "instance",
        )
    if me.waiting >= queue_threshold:
        return verdict(
            Diagnosis.QUEUEING,
            f"{me.waiting:.1f} requests waiting (≥ {queue_threshold:g}) with {me.running:.0f} running",
            "instance",
        )
    if me.p99_seconds is not None and me.p99_seconds > slo_p99_seconds:
        return verdict(
            Diagnosis.INSTANCE_DEGRADED,
            f"p99 {me.p99_seconds:.2f}s over the {slo_p99_seconds:g}s SLO without queueing or KV-cache "
            f"pressure, while {others_ok} other instance(s) are within it: the instance itself is slow",
            "instance",
        )
    return verdict(Diagnosis.UNKNOWN, "no rule matched the figures; a human should look", "instance")
