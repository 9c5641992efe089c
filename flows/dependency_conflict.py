"""Dependency conflict: describe the service's Python environment with its own interpreter (what
``pip check`` reports, installed against the lock, import tests, torch's CUDA against the driver),
read the import errors in its log, drain it, reproduce by building a scratch environment from the
lock and import-testing it, re-pin the live environment to the lock behind the approval gate and
restart, verify the environment and the service, archive."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.client.schemas.objects import State

from llmedic.catalog import AnomalyType, anomaly_info
from llmedic.incident import IncidentRequest
from tasks.deps import assess_deps, confirm_deps, evidence_deps, isolate_deps, reproduce_deps, verify_deps
from tasks.finalize import end_incident
from tasks.isolate import release_isolation
from tasks.legacy_plan import ResponsePlan
from tasks.respond import respond, to_state

__all__ = ["DEPENDENCY_PLAN", "dependency_conflict"]

DEPENDENCY_PLAN = ResponsePlan(
    confirm=confirm_deps,
    assess=assess_deps,
    evidence=evidence_deps,
    isolate=isolate_deps,
    reproduce=reproduce_deps,
    verify=verify_deps,
    release=release_isolation,
)


@flow(
    name=anomaly_info(AnomalyType.DEPENDENCY_CONFLICT).flow_name,
    description=__doc__,
    log_prints=True,
    persist_result=True,
    on_failure=[end_incident],
    on_crashed=[end_incident],
    on_cancellation=[end_incident],
)
def dependency_conflict(request: IncidentRequest) -> State[Any]:
    """Handle a dependency-conflict incident end to end."""
    return to_state(respond(AnomalyType.DEPENDENCY_CONFLICT, request, DEPENDENCY_PLAN))
