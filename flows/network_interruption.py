"""Network interruption: probe the link hop by hop (DNS, TCP loss and latency over N tries, HTTP)
and check the artifact it carries; resume an interrupted transfer with checksum verification, retry a
degraded link with backoff, or fail its consumers over to the backup endpoint behind the approval
gate; verify the active endpoint answers and the artifact is in place; archive.

The behaviour is the network home's (``llmedic/anomalies/network/``) and the playbook's
(``playbooks/network_interruption.yaml``); this module only wires the flow."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.client.schemas.objects import State

from llmedic.catalog import AnomalyType, anomaly_info
from llmedic.incident import IncidentRequest
from tasks.finalize import end_incident
from tasks.respond import respond, to_state

__all__ = ["network_interruption"]


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
    return to_state(respond(AnomalyType.NETWORK_INTERRUPTION, request))
