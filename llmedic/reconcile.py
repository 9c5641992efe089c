"""Every run ends its incident.

A flow run closes its own incident on every path it can see (``tasks/respond.py::respond`` turns
any exception into an escalation). What it cannot see — its process killed, the run cancelled, the
run deleted — is closed here, by one function, :func:`close_escalated`, called from two places:

* the flow-run state hooks (``on_failure``, ``on_crashed``, ``on_cancellation``; ``tasks/finalize.py``),
  which Prefect runs in the flow-run process, or in the ``serve()`` runner when the process died or
  was cancelled;
* the reconciler, :func:`reconcile`, for what no hook sees (the runner itself gone, a run deleted
  from the server): ``llmedic up`` runs it every ``approval_sweep_seconds``, and
  ``llmedic incidents reconcile`` runs it once.

The reconciler closes an open incident only when its flow run is in a terminal state (Completed,
Failed, Crashed, Cancelled) or the Prefect server has no such run. A run that is scheduled, pending,
running, paused or suspended at a gate, or cancelling, is live and is left alone; when the Prefect
API cannot be asked, nothing is closed.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from prefect.client.schemas.objects import FlowRun, State, StateType
from pydantic import BaseModel, Field

from llmedic.config import Settings, load_environment
from llmedic.errors import FlowRunNotFound, LlmedicError, OrchestrationError, RunEnded
from llmedic.incident import (
    Decision,
    Incident,
    NotificationDelivery,
    NotificationRecord,
    Outcome,
    Step,
    StepRecord,
    utcnow,
)
from llmedic.notify import deliver_to_team_of
from llmedic.orchestration import api_healthy, read_run
from llmedic.store.incidents import IncidentStore
from llmedic.store.knowledge import KnowledgeBase

__all__ = [
    "TERMINAL_STATES",
    "Reconciled",
    "Reconciliation",
    "close_escalated",
    "close_run_incident",
    "describe_state",
    "reconcile",
]

log = logging.getLogger("llmedic.reconcile")

TERMINAL_STATES = frozenset({StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED})
"""Flow-run states after which nothing in the run will close its incident any more."""


class Reconciled(BaseModel):
    """One incident the reconciler closed."""

    incident_id: str
    flow_run_id: str
    run_state: str
    """The run's state name (``Crashed``, ``Cancelled``…), or ``gone`` when the server has no such run."""


class Reconciliation(BaseModel):
    """What one pass of :func:`reconcile` did."""

    checked: int = 0
    """Open incidents whose flow run was looked up."""
    closed: list[Reconciled] = Field(default_factory=list)
    unreachable: str | None = None
    """Why the Prefect API could not be asked (the pass then stopped and closed nothing more)."""


def _notify(settings: Settings, incident: Incident, message: str) -> NotificationRecord:
    """Tell the team (and the escalation route) what reached whom. Never raises."""
    text = f"[llmedic] [escalated] {incident.id} ({incident.anomaly.value} on {incident.target}): {message}"
    try:
        env = load_environment(settings=settings)
    except LlmedicError as exc:  # the environment file broke since the run started: say so, send nothing
        failed = NotificationDelivery(
            route=incident.team.value, status="failed", error=f"{exc.code}: {exc.message}"
        )
        return NotificationRecord(
            kind="escalated", text=text, team=incident.team.value, deliveries=[failed], at=utcnow()
        )
    if env.prefect_ui_url is not None and incident.flow_run_id:
        text += f"\nrun: {str(env.prefect_ui_url).rstrip('/')}/runs/flow-run/{incident.flow_run_id}"
    return deliver_to_team_of(env, incident.anomaly, text, kind="escalated", escalate=True)


def close_escalated(
    incident_id: str, *, code: str, reason: str, closed_by: str, settings: Settings
) -> Incident | None:
    """Close an incident that is still open as ``escalated`` (error ``code`` and ``reason`` on its
    record), notify its team and archive it to the knowledge base.

    Idempotent: returns ``None`` and changes nothing when the incident is no longer open. The closed
    record is saved before anything else is tried, so a notification or archive that fails cannot
    leave the incident open; such a failure is recorded on it instead.
    """
    store = IncidentStore.from_settings(settings)
    incident = store.load(incident_id)
    if incident.outcome != Outcome.OPEN:
        return None
    incident.decisions.append(
        Decision(topic="error", choice=code, reason=f"{reason} (closed by {closed_by})")
    )
    incident.escalate(f"{code}: {reason}")
    incident.close(Outcome.ESCALATED)
    # The runner's on_crashed hook and the sweeper's reconciler can see the same ended run at the
    # same moment (on one host or two): the row is replaced only while it is still open, so the
    # second one finds it closed and sends no second notice.
    if not store.save_if_open(incident):
        return None
    incident.notifications.append(_notify(settings, incident, f"outcome escalated: {code}: {reason}"))
    kb = KnowledgeBase.from_settings(settings)
    now = utcnow()
    incident.timeline.append(
        StepRecord(
            step=Step.ARCHIVE,
            started_at=now,
            finished_at=now,
            summary=f"report {kb.report_path(incident.id)} (closed by {closed_by})",
        )
    )
    try:
        incident = kb.archive(incident)
    except Exception as exc:  # the record is closed already; whatever broke the archive goes on it
        log.exception("archiving incident %s failed", incident_id)
        incident.decisions.append(
            Decision(topic="archive", choice="failed", reason=f"{type(exc).__name__}: {exc}")
        )
    store.save(incident)
    return incident


def close_run_incident(
    flow_run_id: str, run_state: str, *, closed_by: str, settings: Settings
) -> Incident | None:
    """Close the incident of a flow run that ended in ``run_state`` (a state's name and message),
    if it is still open. ``None`` when the run has no incident or it is closed already."""
    found = IncidentStore.from_settings(settings).find_by_run(flow_run_id)
    if found is None or found.outcome != Outcome.OPEN:
        return None
    return close_escalated(
        found.id,
        code=RunEnded.code,
        reason=f"flow run {flow_run_id} ended {run_state} with the incident open",
        closed_by=closed_by,
        settings=settings,
    )


def describe_state(state: State[Any]) -> str:
    """``Crashed: Process exited with status code: -9 …`` — a state's name and its message."""
    name = state.name or state.type.value.title()
    return f"{name}: {state.message}" if state.message else name


def _api_answers() -> bool:
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    return bool(url) and api_healthy(str(url))


def reconcile(
    settings: Settings,
    *,
    read: Callable[[str], FlowRun] = read_run,
    healthy: Callable[[], bool] = _api_answers,
) -> Reconciliation:
    """Close, escalated, every open incident whose flow run is terminal or gone (one pass).

    ``read`` is how a run is looked up (:func:`llmedic.orchestration.read_run`: it raises
    :class:`FlowRunNotFound` for a run the server does not have, :class:`OrchestrationError` when
    the API cannot be asked — then the pass stops, because nothing can be told apart).
    """
    result = Reconciliation()
    for incident in IncidentStore.from_settings(settings).all():
        if incident.outcome != Outcome.OPEN or not incident.flow_run_id:
            continue
        try:
            uuid.UUID(incident.flow_run_id)
        except ValueError:
            continue  # a run outside Prefect (``local``): no server to ask
        result.checked += 1
        try:
            run = read(incident.flow_run_id)
        except FlowRunNotFound:
            # A wrong PREFECT_API_URL or a proxy also answers 404: "gone" only from a server
            # that answers its own health check.
            if not healthy():
                result.unreachable = (
                    f"flow run {incident.flow_run_id} not found, and the API's /health does not answer"
                )
                return result
            state, text = "gone", "gone (the Prefect server has no such run)"
        except OrchestrationError as exc:
            result.unreachable = exc.message
            return result
        else:
            if run.state is None or run.state.type not in TERMINAL_STATES:
                continue
            state, text = run.state.name or run.state.type.value.title(), describe_state(run.state)
        try:
            closed = close_escalated(
                incident.id,
                code=RunEnded.code,
                reason=f"flow run {incident.flow_run_id} ended {text} with the incident open",
                closed_by="the reconciler",
                settings=settings,
            )
        except Exception:  # one incident's disk error must not keep the others open
            log.exception("closing incident %s failed; trying again next pass", incident.id)
            continue
        if closed is not None:
            result.closed.append(
                Reconciled(incident_id=incident.id, flow_run_id=incident.flow_run_id, run_state=state)
            )
    return result
