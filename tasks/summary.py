"""What a flow run returns: the incident's summary, and the Prefect state that shows it."""

from __future__ import annotations

from typing import Any

from prefect.client.schemas.objects import State
from prefect.states import Completed, Failed
from pydantic import BaseModel

from llmedic.incident import Incident, Outcome

__all__ = ["IncidentSummary", "summary_of", "to_state"]


class IncidentSummary(BaseModel):
    """What a flow run returns (and the demo prints)."""

    incident_id: str
    anomaly: str
    target: str
    outcome: str
    escalated: bool
    escalation_reason: str = ""
    """Why a human must look (empty unless escalated)."""
    diagnosis: str
    fix: str | None
    approval: str | None
    verified: bool | None
    report_path: str | None
    flow_run_id: str
    seconds: float | None


def summary_of(incident: Incident) -> IncidentSummary:
    """The summary of an incident."""
    fixes = [a for a in incident.actions if a.name not in ("drain_instance", "undrain_instance")]
    last = incident.attempts[-1].action if incident.attempts else None
    # The last fix tried (a compensation runs under another action's name, after it).
    fix = next((a for a in reversed(fixes) if a.name == last), fixes[0] if fixes else None)
    appr = incident.approvals[-1] if incident.approvals else None
    return IncidentSummary(
        incident_id=incident.id,
        anomaly=incident.anomaly.value,
        target=incident.target,
        outcome=incident.outcome.value,
        escalated=incident.escalated,
        escalation_reason=incident.escalation_reason,
        diagnosis=incident.diagnosis,
        fix=(fix.name + (" (dry run)" if fix.dry_run else "")) if fix else None,
        approval=(f"{'approved' if appr.approved else 'rejected'} by {appr.by}") if appr else None,
        verified=incident.verification.passed if incident.verification else None,
        report_path=incident.report_path,
        flow_run_id=incident.flow_run_id,
        seconds=incident.duration_seconds,
    )


def to_state(summary: IncidentSummary) -> State[Any]:
    """Failed when the incident needs a human (escalated, which includes rolled back and timed-out
    approvals), so it stands out in the Prefect UI; Completed otherwise."""
    # The reason goes in the state's message: it is what the Prefect UI shows beside a Failed run.
    message = f"{summary.incident_id}: {summary.outcome}" + (
        f" (escalated: {summary.escalation_reason})" if summary.escalated else ""
    )
    if summary.escalated or summary.outcome in (Outcome.FAILED_ROLLED_BACK.value, Outcome.ESCALATED.value):
        return Failed(message=message, data=summary.model_dump())
    return Completed(message=message, data=summary.model_dump())
