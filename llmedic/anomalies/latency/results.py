"""What each latency step hands the next: typed figures, no dict read by key."""

from __future__ import annotations

from pydantic import BaseModel

from llmedic.anomalies.base import Assessment, Confirmation, Findings, Reproduction
from llmedic.anomalies.latency.diagnosis import Diagnosis

__all__ = [
    "InstanceFigures",
    "LatencyAssessment",
    "LatencyConfirmation",
    "LatencyFindings",
    "LatencyReproduction",
]


class LatencyConfirmation(Confirmation):
    """Probes and metrics on the incident's instance; the load it carried while the probes ran."""

    probe_p99: float
    metric_p99: float | None = None
    metric_ttft_p99: float | None = None
    metric_waiting: float | None = None
    metric_running: float | None = None
    metric_kv: float | None = None
    """KV-cache usage (0..1)."""


class InstanceFigures(BaseModel):
    """One in-rotation instance as assess saw it (``None``: the metrics source had no figure)."""

    p99: float | None = None
    waiting: float | None = None
    running: float | None = None
    kv_cache_usage: float | None = None
    ttft_p99: float | None = None
    itl_p99: float | None = None
    error_ratio: float | None = None
    healthy: bool = True
    drained: bool = False


class LatencyAssessment(Assessment):
    """Every in-rotation instance of the service, by name."""

    fleet: dict[str, InstanceFigures] = {}


class LatencyFindings(Findings):
    """The diagnosis and what isolation needs to know."""

    diagnosis: Diagnosis
    scope: str
    """``instance`` or ``fleet``."""
    healthy_others: int = 0
    """In-rotation instances other than the target that are healthy and within the SLO."""
    over_slo: list[str] = []
    concurrency_limit: int | None = None


class LatencyReproduction(Reproduction):
    """The reproduction burst's p99."""

    p99: float
