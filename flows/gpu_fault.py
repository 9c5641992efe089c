"""GPU fault: read the instance's GPUs (NVML), the host's kernel log for XIDs and a canary
completion; decide by the XID table and NVML's recovery hint — restart the worker, reset the GPU,
drain the node and mark it for replacement, or shed load while it throttles — behind the approval
gate for the risky ones; verify the GPUs need no action, no new XID appeared and the canary answers;
archive.

The behaviour is the gpu home's (``llmedic/anomalies/gpu/``) and the playbook's
(``playbooks/gpu_fault.yaml``); this module only wires the flow."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.client.schemas.objects import State

from llmedic.catalog import AnomalyType, anomaly_info
from llmedic.incident import IncidentRequest
from tasks.finalize import end_incident
from tasks.respond import respond, to_state

__all__ = ["gpu_fault"]


@flow(
    name=anomaly_info(AnomalyType.GPU_FAULT).flow_name,
    description=__doc__,
    log_prints=True,
    persist_result=True,
    on_failure=[end_incident],
    on_crashed=[end_incident],
    on_cancellation=[end_incident],
)
def gpu_fault(request: IncidentRequest) -> State[Any]:
    """Handle a GPU-fault incident end to end."""
    return to_state(respond(AnomalyType.GPU_FAULT, request))
