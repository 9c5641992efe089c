"""Memory leak: judge the resident-memory series of every in-rotation instance, drain the leaking
one, reproduce with requests straight at it, restart it (or, when the release leaks, restart the
fleet one instance at a time) behind the approval gate, verify memory is back near its baseline and
flat, archive with the fitted trend."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.client.schemas.objects import State

from llmedic.catalog import AnomalyType, anomaly_info
from llmedic.incident import IncidentRequest
from tasks.assess import assess_leak
from tasks.confirm import confirm_leak
from tasks.evidence import evidence_leak
from tasks.finalize import end_incident
from tasks.isolate import isolate_leaking, release_isolation
from tasks.legacy_plan import ResponsePlan
from tasks.reproduce import reproduce_leak
from tasks.respond import respond, to_state
from tasks.verify import verify_leak

__all__ = ["MEMORY_LEAK_PLAN", "memory_leak"]

MEMORY_LEAK_PLAN = ResponsePlan(
    confirm=confirm_leak,
    assess=assess_leak,
    evidence=evidence_leak,
    isolate=isolate_leaking,
    reproduce=reproduce_leak,
    verify=verify_leak,
    release=release_isolation,
)


@flow(
    name=anomaly_info(AnomalyType.MEMORY_LEAK).flow_name,
    description=__doc__,
    log_prints=True,
    persist_result=True,
    on_failure=[end_incident],
    on_crashed=[end_incident],
    on_cancellation=[end_incident],
)
def memory_leak(request: IncidentRequest) -> State[Any]:
    """Handle a memory-leak incident end to end."""
    return to_state(respond(AnomalyType.MEMORY_LEAK, request, MEMORY_LEAK_PLAN))
