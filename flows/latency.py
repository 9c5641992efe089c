"""Latency above SLO: confirm with metrics + probes, find the scope, drain a degraded instance,
reproduce, then shed load, restart (gated) or scale out (gated), verify p99, archive."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.client.schemas.objects import State

from llmedic.catalog import AnomalyType, anomaly_info
from llmedic.incident import IncidentRequest
from tasks.assess import assess_latency
from tasks.confirm import confirm_latency
from tasks.evidence import evidence_latency
from tasks.finalize import end_incident
from tasks.isolate import isolate_instance, release_isolation
from tasks.reproduce import reproduce_latency
from tasks.skeleton import ResponsePlan, respond, to_state
from tasks.verify import verify_latency

__all__ = ["LATENCY_PLAN", "latency"]

LATENCY_PLAN = ResponsePlan(
    confirm=confirm_latency,
    assess=assess_latency,
    evidence=evidence_latency,
    isolate=isolate_instance,
    reproduce=reproduce_latency,
    verify=verify_latency,
    release=release_isolation,
)


@flow(
    name=anomaly_info(AnomalyType.LATENCY).flow_name,
    description=__doc__,
    log_prints=True,
    persist_result=True,
    on_failure=[end_incident],
    on_crashed=[end_incident],
    on_cancellation=[end_incident],
)
def latency(request: IncidentRequest) -> State[Any]:
    """Handle a latency incident end to end."""
    return to_state(respond(AnomalyType.LATENCY, request, LATENCY_PLAN))
