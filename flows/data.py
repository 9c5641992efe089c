"""The three data anomaly flows: missing values, bad formats, poor quality (outliers, duplicates,
drift). One home serves all three (``llmedic/anomalies/data/``, each type with its own diagnoses);
each playbook decides thresholds, diagnoses → fixes and approvals.

confirm (re-profile the pinned version) → assess (rows/columns hit, consumers) → evidence (profile,
worst columns, masked sample rows, lineage bisected to the first bad version) → quarantine the
version (consumers move to the last good one) → reproduce on the stored copy → approval → repair
into a new version, or roll back → verify by re-auditing what consumers now see → archive with the
before/after figures. The bad version is never modified; compensation re-points consumers.

The behaviour is the data home's and the playbooks' (``playbooks/data_*.yaml``); this module only
wires the flows.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.client.schemas.objects import State

from llmedic.catalog import AnomalyType, anomaly_info
from llmedic.incident import IncidentRequest
from tasks.finalize import end_incident
from tasks.respond import respond, to_state

__all__ = ["data_format", "data_missing", "data_quality"]


@flow(
    name=anomaly_info(AnomalyType.DATA_MISSING).flow_name,
    description=__doc__,
    log_prints=True,
    persist_result=True,
    on_failure=[end_incident],
    on_crashed=[end_incident],
    on_cancellation=[end_incident],
)
def data_missing(request: IncidentRequest) -> State[Any]:
    """Missing values in a dataset version: drop a few rows, impute, or roll back."""
    return to_state(respond(AnomalyType.DATA_MISSING, request))


@flow(
    name=anomaly_info(AnomalyType.DATA_FORMAT).flow_name,
    description=__doc__,
    log_prints=True,
    persist_result=True,
    on_failure=[end_incident],
    on_crashed=[end_incident],
    on_cancellation=[end_incident],
)
def data_format(request: IncidentRequest) -> State[Any]:
    """Wrong types, mixed date formats, bad encoding: coerce, normalise, apply rules, or roll back."""
    return to_state(respond(AnomalyType.DATA_FORMAT, request))


@flow(
    name=anomaly_info(AnomalyType.DATA_QUALITY).flow_name,
    description=__doc__,
    log_prints=True,
    persist_result=True,
    on_failure=[end_incident],
    on_crashed=[end_incident],
    on_cancellation=[end_incident],
)
def data_quality(request: IncidentRequest) -> State[Any]:
    """Outliers, duplicates, invalid values, drift: clean into a new version, or roll back."""
    return to_state(respond(AnomalyType.DATA_QUALITY, request))
