"""The approval gate inside the response process: open it for a fix, keep the incident's pending
approval up to date while attempts are refused, record the decision that counts.

Every fix attempt has its own gate: the gate's cache keys and pause keys name the fix
(``open-approval-gate`` is cached by its inputs, ``approve-<fix>-<n>`` keys each pause), and a run
never tries one fix twice, so a run resumed after a suspension replays each attempt's gate exactly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmedic.incident import ApprovalRecord, Step, StepRecord
from llmedic.playbook import FixOption
from tasks.approve import open_gate, wait_for_decision

if TYPE_CHECKING:
    from tasks.respond import Response

__all__ = ["ask_approval"]


def ask_approval(response: Response, fix: FixOption) -> ApprovalRecord:
    """Open the approval gate for ``fix`` and wait for the decision (the flow suspends or pauses)."""
    incident, store, playbook, flow_run_id = (
        response.incident,
        response.store,
        response.playbook,
        response.ctx.flow_run_id,
    )
    gate = response.step(open_gate, Step.APPROVE, fix, playbook.approval)
    incident.notifications.extend(gate.code_notifications)
    pending: dict[str, Any] = {
        "action": fix.name,
        "risk": fix.risk.value,
        "requested_at": gate.requested_at.isoformat(),
        "deadline": gate.deadline.isoformat(),
        "flow_run_id": flow_run_id,
        "nonce": gate.nonce,
        "approvers": list(playbook.approval.approvers),
        "codes_sent_to": gate.codes_sent_to,
        "refused_attempts": 0,
    }
    incident.pending_approval = dict(pending)
    store.save(incident)
    response.notify(
        "approval",
        f"approve {fix.name} ({fix.risk.value} risk) before {gate.deadline.isoformat()}: "
        f"llmedic approve {flow_run_id} --by NAME"
        + (" (with your token), or the one-time code sent to you" if playbook.approval.approvers else ""),
    )

    def refused(attempt: ApprovalRecord) -> None:
        # Recorded and shown, never a rejection: anyone can type garbage into the form.
        incident.approvals.append(attempt)
        pending["refused_attempts"] += 1
        pending["last_refused"] = f"{attempt.by}: {attempt.refused}"
        incident.pending_approval = dict(pending)
        store.save(incident)

    approval = wait_for_decision(response.ctx, playbook, incident, fix, gate, refused)
    incident.approvals.append(approval)
    incident.pending_approval = None
    how = f", verified by {approval.identity}" if approval.verified else ", unverified"
    incident.timeline.append(
        StepRecord(
            step=Step.APPROVE,
            started_at=approval.requested_at,
            finished_at=approval.decided_at,
            status="ok",
            summary=f"{'approved' if approval.approved else 'rejected'} by {approval.by} via {approval.via}{how}"
            + (f": {approval.comment}" if approval.comment else ""),
        )
    )
    store.save(incident)
    return approval
