"""Network interruption: probe the link hop by hop (DNS, TCP loss and latency over N tries, HTTP)
and check the artifact it carries; resume an interrupted transfer with checksum verification, retry a
degraded link with backoff, or fail its consumers over to the backup endpoint behind the approval
gate; verify the active endpoint answers and the artifact is in place; archive."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.client.schemas.objects import State

from llmedic.catalog import AnomalyType, anomaly_info
from llmedic.incident import IncidentRequest
from tasks.finalize import end_incident
from tasks.network import (
    assess_network,
    confirm_network,
    evidence_network,
    no_isolation,
    no_release,
    reproduce_network,
    verify_network,
)
from tasks.legacy_plan import ResponsePlan
from tasks.respond import respond, to_state

__all__ = ["NETWORK_PLAN", "network_interruption"]

NETWORK_PLAN = ResponsePlan(
    confirm=confirm_network,
    assess=assess_network,
    evidence=evidence_network,
    isolate=no_isolation,
    reproduce=reproduce_network,
    verify=verify_network,
    release=no_release,
)


@flow(
    name=anomaly_info(AnomalyType.NETWORK_INTERRUPTION).flow_name,
    description=__doc__,
    log_prints=True,
    persist_result=True,
    on_failure=[end_incident],
    on_crashed=[end_incident],
    on_cancellation=[end_incident],
)
def network_interruption(request: IncidentRequest) -> State[Any]:
    """Handle a network-interruption incident end to end."""
    return to_state(respond(AnomalyType.NETWORK_INTERRUPTION, request, NETWORK_PLAN))
