"""Latency above SLO: confirm with metrics + probes, find the scope, drain a degraded instance,
reproduce, then shed load, restart (gated) or scale out (gated), verify p99, archive.

The behaviour is the latency home's (``llmedic/anomalies/latency/``) and the playbook's
(``playbooks/latency.yaml``); this module only wires the flow."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.client.schemas.objects import State

from llmedic.catalog import AnomalyType, anomaly_info
from llmedic.incident import IncidentRequest
from tasks.finalize import end_incident
from tasks.respond import respond, to_state

__all__ = ["latency"]


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
    return to_state(respond(AnomalyType.LATENCY, request))
