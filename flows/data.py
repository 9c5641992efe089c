"""The three data anomaly flows: missing values, bad formats, poor quality (outliers, duplicates,
drift). One plan serves all three; each playbook decides thresholds, diagnoses → fixes and approvals.

confirm (re-profile the pinned version) → assess (rows/columns hit, consumers) → evidence (profile,
worst columns, masked sample rows, lineage bisected to the first bad version) → quarantine the
version (consumers move to the last good one) → reproduce on the stored copy → approval → repair
into a new version, or roll back → verify by re-auditing what consumers now see → archive with the
before/after figures. The bad version is never modified; compensation re-points consumers.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.client.schemas.objects import State

from llmedic.catalog import AnomalyType, anomaly_info
from llmedic.incident import IncidentRequest
from tasks.assess import assess_data
from tasks.confirm import confirm_data
from tasks.evidence import evidence_data
from tasks.finalize import end_incident
from tasks.isolate import quarantine_batch, release_quarantine
from tasks.legacy_plan import ResponsePlan
from tasks.reproduce import reproduce_data
from tasks.respond import respond, to_state
from tasks.verify import verify_data

__all__ = ["DATA_PLAN", "data_format", "data_missing", "data_quality"]

DATA_PLAN = ResponsePlan(
    confirm=confirm_data,
    assess=assess_data,
    evidence=evidence_data,
    isolate=quarantine_batch,
    reproduce=reproduce_data,
    verify=verify_data,
    release=release_quarantine,
)


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
    return to_state(respond(AnomalyType.DATA_MISSING, request, DATA_PLAN))


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
    return to_state(respond(AnomalyType.DATA_FORMAT, request, DATA_PLAN))


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
    return to_state(respond(AnomalyType.DATA_QUALITY, request, DATA_PLAN))
