"""Accuracy drop: re-score the golden set against the live service and test the drop against the
baseline, break it down by tag and instance, line up what changed since the baseline (model release
and configuration, knowledge dataset versions and audits, prompt drift), freeze further updates,
reproduce the wrong answers, roll back the model or the knowledge dataset behind the approval gate,
verify the score is back within the baseline's interval, archive.

The behaviour is the accuracy home's (``llmedic/anomalies/accuracy/``) and the playbook's
(``playbooks/accuracy_drop.yaml``); this module only wires the flow."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.client.schemas.objects import State

from llmedic.catalog import AnomalyType, anomaly_info
from llmedic.incident import IncidentRequest
from tasks.finalize import end_incident
from tasks.respond import respond, to_state

__all__ = ["accuracy_drop"]


@flow(
    name=anomaly_info(AnomalyType.ACCURACY_DROP).flow_name,
    description=__doc__,
    log_prints=True,
    persist_result=True,
    on_failure=[end_incident],
    on_crashed=[end_incident],
    on_cancellation=[end_incident],
)
def accuracy_drop(request: IncidentRequest) -> State[Any]:
    """Handle an accuracy-drop incident end to end."""
    return to_state(respond(AnomalyType.ACCURACY_DROP, request))
