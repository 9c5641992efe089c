"""Capacity review of one service from Prometheus history: what to read, and the review of it.

Reads, at ``capacity.step_seconds`` resolution over ``capacity.lookback_days``:

* GPU utilisation and memory from the DCGM exporter (``DCGM_FI_DEV_GPU_UTIL``, ``DCGM_FI_DEV_FB_USED``
  and ``DCGM_FI_DEV_FB_FREE``; the busiest GPU of the service counts), and the GPU count;
* KV-cache use (``vllm:kv_cache_usage_perc``, the fullest instance);
* requests per second (``rate(vllm:request_success_total)``), in total and per instance;
* end-to-end p99 latency (``histogram_quantile`` over ``vllm:e2e_request_latency_seconds``).

A metric with no series is reported as "no data" (a GPU-less service has no DCGM metrics), never as
zero. The maths is in :mod:`llmedic.reviews.capacity.analysis`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import numpy as np

from llmedic.adapters.metrics import PrometheusSource
from llmedic.config import CapacityConfig, EnvironmentFile, ServiceCapacity
from llmedic.reviews.capacity.analysis import Recommendation, ResourceReview, recommend, review_series

__all__ = ["ServiceReview", "review_service"]


@dataclass
class ServiceReview:
    """Everything the capacity review says about one service."""

    service: str
    start: float
    end: float
    resources: dict[str, ResourceReview]
    series: dict[str, tuple[list[float], list[float]]]
    """Resource → (Unix seconds, values), for the chart."""
    gpus: int | None
    replicas: int
    per_instance_qps: dict[str, float]
    recommendations: list[Recommendation] = field(default_factory=list)

    @property
    def below_target(self) -> list[ResourceReview]:
        """Resources whose headroom is already under the reserve."""
        return [r for r in self.resources.values() if r.below_target]


def _points(rows: list[tuple[dict[str, str], list[tuple[float, float]]]]) -> tuple[list[float], list[float]]:
    if not rows:
        return [], []
    pts = [(t, v) for t, v in rows[0][1] if v == v]  # drop NaN (no traffic in a window)
    return [t for t, _ in pts], [v for _, v in pts]


Query = tuple[str, float, str]
"""A PromQL range query, the capacity it is judged against (0: none declared) and its unit."""


def _queries(sel: str, dcgm: str, w: str, own: ServiceCapacity, instances: int) -> dict[str, Query]:
    """The range query per resource (the service's instances selected by ``sel``, its GPUs by
    ``dcgm``, ``w`` the step as a PromQL duration)."""
    return {
        # Gauges: the peak within each step (``max_over_time``), so a busy minute between two
        # points of the range is not lost.
        "gpu_utilisation": (f"max(max_over_time(DCGM_FI_DEV_GPU_UTIL{dcgm}[{w}])) / 100", 1.0, "share"),
        "gpu_memory": (
            f"max(max_over_time(DCGM_FI_DEV_FB_USED{dcgm}[{w}]) / (max_over_time(DCGM_FI_DEV_FB_USED{dcgm}[{w}])"
            f" + min_over_time(DCGM_FI_DEV_FB_FREE{dcgm}[{w}])))",
            1.0,
            "share",
        ),
        "kv_cache": (f"max(max_over_time(vllm:kv_cache_usage_perc{sel}[{w}]))", 1.0, "share"),
        "qps": (
            f"sum(rate(vllm:request_success_total{sel}[{w}]))",
            (own.max_qps_per_instance or 0) * instances,
            "req/s",
        ),
        "latency_p99": (
            f"histogram_quantile(0.99, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket{sel}[{w}])))",
            own.latency_slo_seconds or 0,
            "s",
        ),
    }


def _review_resource(
    name: str, t: list[float], y: list[float], capacity: float, unit: str, cfg: CapacityConfig, now: float
) -> ResourceReview:
    if capacity > 0:
        return review_series(
            name, unit, np.array(t), np.array(y), capacity=capacity, reserve=cfg.reserve, now=now
        )
    # No declared capacity (max QPS, SLO): percentiles and trend only, judged against the
    # window's own peak so the maths stays defined; the report says it is undeclared.
    r = review_series(
        name, unit, np.array(t), np.array(y), capacity=max(y) if y else 1.0, reserve=cfg.reserve, now=now
    )
    return replace(r, reserve=0.0, reserve_date=None, exhaustion_date=None, note="no capacity declared")


def _per_instance_qps(
    source: PrometheusSource, sel: str, w: str, start: float, end: float, step: float, names: dict[str, str]
) -> dict[str, float]:
    """The p95 requests per second of each instance, by instance name."""
    label = source.instance_label
    per_inst: dict[str, float] = {}
    for labels, pts in source.query_range(
        f"sum by ({label}) (rate(vllm:request_success_total{sel}[{w}]))", start, end, step
    ):
        vals = [v for _, v in pts if v == v]
        if vals:
            per_inst[labels.get(label, "?")] = float(np.percentile(vals, 95))
    return {names.get(k, k): v for k, v in per_inst.items()}


def review_service(
    source: PrometheusSource, env: EnvironmentFile, service: str, cfg: CapacityConfig, *, now: float
) -> ServiceReview:
    """Read the history of ``service`` and review every resource."""
    svc = env.service(service)
    own: ServiceCapacity = cfg.services.get(service, ServiceCapacity())
    netlocs = "|".join(source.selector(i).split('"')[1] for i in svc.instances)
    sel = f'{{{source.instance_label}=~"{netlocs}"}}'
    dcgm = own.dcgm_selector
    start, end, step = now - cfg.lookback_days * 86_400, now, cfg.step_seconds
    w = f"{int(step)}s"
    resources: dict[str, ResourceReview] = {}
    series: dict[str, tuple[list[float], list[float]]] = {}
    for name, (q, capacity, unit) in _queries(sel, dcgm, w, own, len(svc.instances)).items():
        t, y = _points(source.query_range(q, start, end, step))
        series[name] = (t, y)
        resources[name] = _review_resource(name, t, y, capacity, unit, cfg, now)
    count = source.query(f"count(last_over_time(DCGM_FI_DEV_GPU_UTIL{dcgm}[{w}]))")
    gpus = own.gpus or (int(count[0][1]) if count else None)
    names = {source.selector(i).split('"')[1]: i.name for i in svc.instances}
    per_inst = _per_instance_qps(source, sel, w, start, end, step, names)
    review = ServiceReview(
        service=service,
        start=start,
        end=end,
        resources=resources,
        series=series,
        gpus=gpus,
        replicas=len(svc.instances),
        per_instance_qps=per_inst,
    )
    review.recommendations = recommend(
        resources,
        gpus=gpus,
        replicas=len(svc.instances),
        per_instance_qps=per_inst,
        horizon_days=cfg.horizon_days,
        now=datetime.fromtimestamp(now, UTC),
    )
    return review
