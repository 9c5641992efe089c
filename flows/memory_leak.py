"""Memory leak: judge the resident-memory series of every in-rotation instance, drain the leaking
one, reproduce with requests straight at it, restart it (or, when the release leaks, restart the
fleet one instance at a time) behind the approval gate, verify memory is back near its baseline and
flat, archive with the fitted trend.

The behaviour is the memory-leak home's (``llmedic/anomalies/memory_leak/``) and the playbook's
(``playbooks/memory_leak.yaml``); this module only wires the flow."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.client.schemas.objects import State

from llmedic.catalog import AnomalyType, anomaly_info
from llmedic.incident import IncidentRequest
from tasks.finalize import end_incident
from tasks.respond import respond, to_state

__all__ = ["memory_leak"]


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
    return to_state(respond(AnomalyType.MEMORY_LEAK, request))
