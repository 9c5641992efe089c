"""The approval gate: a risky fix waits for a human decision (approve / reject, who, why).

In a deployment run the flow is *suspended* — its process exits, the decision can take as long as
the playbook allows, and a restart of ``llmedic up`` loses nothing. Outside a deployment (a direct
call, a test) the flow is *paused* in-process with the playbook's timeout. Either way the decision
form is the same, it can be submitted from the Prefect UI, ``llmedic approve|reject`` or the Prefect
REST API, and the decision lands on the incident.

A suspended gate has no Prefect timeout: ``llmedic up`` sweeps approvals past their deadline and
answers them with a rejection by ``llmedic-timeout`` (so the flow itself records reject + escalate).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run, suspend_flow_run

from llmedic.approvals import TIMEOUT_APPROVER, ApprovalDecision
from llmedic.incident import ApprovalRecord, Incident, Step, StepResult, utcnow
from llmedic.playbook import FixOption, Playbook
from tasks.runtime import StepContext, StepTimer, step_task

__all__ = ["TIMEOUT_APPROVER", "ApprovalDecision", "gate_key", "open_gate", "wait_for_decision"]


def gate_key(fix: FixOption) -> str:
    """Pause key of the gate for a fix (stable across re-runs of the same flow run)."""
    return "approve-" + fix.name.replace("_", "-")


@step_task(Step.APPROVE, name="open-approval-gate")
def open_gate(ctx: StepContext, fix: FixOption, timeout_minutes: float) -> StepResult:
    """Stamp the request time and deadline (cached, so a re-run keeps the original deadline)."""
    t = StepTimer(Step.APPROVE)
    deadline = t.started_at + timedelta(minutes=timeout_minutes)
    return t.done(
        f"waiting for approval of {fix.name} ({fix.risk.value} risk) until {deadline:%Y-%m-%d %H:%M:%S} UTC",
        status="waiting",
        data={"requested_at": t.started_at.isoformat(), "deadline": deadline.isoformat()},
    )


def _description(incident: Incident, fix: FixOption, deadline: datetime) -> str:
    last = incident.decisions[-3:]
    lines = [
        f"## Approve `{fix.name}` on `{incident.target}`?",
        "",
        f"**Incident** `{incident.id}` — {incident.title}",
        f"**Diagnosis** {incident.diagnosis}",
        f"**Fix** {fix.description or fix.action} — risk **{fix.risk.value}**",
        f"**Decide before** {deadline:%Y-%m-%d %H:%M:%S} UTC (then it is rejected and escalated)",
        "",
        "Recent decisions:",
        *[f"- {d.topic}: **{d.choice}** — {d.reason}" for d in last],
        "",
        f"CLI: `llmedic approve {incident.flow_run_id} --by NAME` or `llmedic reject {incident.flow_run_id} --by NAME`",
    ]
    return "\n".join(lines)


def wait_for_decision(
    ctx: StepContext, playbook: Playbook, incident: Incident, fix: FixOption, requested: dict[str, Any]
) -> ApprovalRecord:
    """Block (pause) or suspend until a decision arrives; return it as an :class:`ApprovalRecord`.

    Must be called from the flow itself (Prefect cannot suspend from inside a task). Never wrap this
    in a broad ``except``: suspension works by raising Prefect's ``Pause`` signal.
    """
    requested_at = datetime.fromisoformat(requested["requested_at"])
    deadline = datetime.fromisoformat(requested["deadline"])
    form = ApprovalDecision.with_initial_data(description=_description(incident, fix, deadline))
    run = FlowRunContext.get()
    in_deployment = bool(run and run.flow_run and run.flow_run.deployment_id)
    via = "prefect"
    if in_deployment:
        decision = suspend_flow_run(wait_for_input=form, key=gate_key(fix))
    else:
        remaining = max(1, int((deadline - utcnow()).total_seconds()))
        try:
            decision = pause_flow_run(
                wait_for_input=form, timeout=remaining, poll_interval=1, key=gate_key(fix)
            )
        except FlowPauseTimeout:
            decision = ApprovalDecision(
                approve=False, approver=TIMEOUT_APPROVER, comment="no decision before the deadline"
            )
    if decision is None:  # pragma: no cover - Prefect returns the input when wait_for_input is set
        decision = ApprovalDecision(approve=False, approver="unknown", comment="no input received")
    approver = decision.approver.strip()
    approved = bool(decision.approve)
    comment = decision.comment
    if approver == TIMEOUT_APPROVER:
        via = "timeout"
        approved = False
    elif approved and not approver:
        approved = False
        comment = f"refused: an approval must name the approver ({comment})".strip()
    elif approved and not playbook.approval.may_approve(approver):
        approved = False
        comment = f"refused: {approver!r} is not in the playbook's approvers {playbook.approval.approvers} ({comment})"
    return ApprovalRecord(
        action=fix.name,
        risk=fix.risk,
        approved=approved,
        by=approver or "anonymous",
        comment=comment,
        requested_at=requested_at,
        decided_at=utcnow(),
        via=via,
        flow_run_id=incident.flow_run_id,
    )
