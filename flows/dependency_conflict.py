"""Dependency conflict: describe the service's Python environment with its own interpreter (what
``pip check`` reports, installed against the lock, import tests, torch's CUDA against the driver),
read the import errors in its log, drain it, reproduce by building a scratch environment from the
lock and import-testing it, re-pin the live environment to the lock behind the approval gate and
restart, verify the environment and the service, archive.

The behaviour is the dependency home's (``llmedic/anomalies/dependency/``) and the playbook's
(``playbooks/dependency_conflict.yaml``); this module only wires the flow."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.client.schemas.objects import State

from llmedic.catalog import AnomalyType, anomaly_info
from llmedic.incident import IncidentRequest
from tasks.finalize import end_incident
from tasks.respond import respond, to_state

__all__ = ["dependency_conflict"]


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
    return to_state(respond(AnomalyType.DEPENDENCY_CONFLICT, request))
