"""The one guard between a risky fix and production (``tasks/fix.py`` calls it before anything)."""

from __future__ import annotations

from llmedic.errors import ApprovalRequired
from llmedic.incident import ApprovalRecord
from llmedic.playbook import FixOption, Playbook

__all__ = ["require_approval"]


def require_approval(playbook: Playbook, fix: FixOption, approval: ApprovalRecord | None) -> None:
    """Raise :class:`ApprovalRequired` unless ``fix`` may run under ``approval``: a fix whose risk the
    playbook gates runs only with a matching, positive, verified approval from an allowed approver."""
    policy = playbook.approval
    if not policy.needs_approval(fix.risk):
        return
    if approval is None:
        raise ApprovalRequired(
            f"fix {fix.name!r} is {fix.risk.value} risk and has no approval; it was not run"
        )
    if approval.action != fix.name:
        raise ApprovalRequired(
            f"the approval is for {approval.action!r}, not {fix.name!r}; the fix was not run"
        )
    if not approval.approved:
        raise ApprovalRequired(f"fix {fix.name!r} was rejected by {approval.by}; it was not run")
    if not policy.may_approve(approval.by):
        raise ApprovalRequired(
            f"{approval.by!r} may not approve {fix.name!r} (approvers: {policy.approvers}); it was not run"
        )
    if policy.approvers and (not approval.verified or approval.refused):
        # The gate verifies who decided; a record that says it did not is never enough.
        raise ApprovalRequired(
            f"the approval of {fix.name!r} by {approval.by!r} was not verified; it was not run"
        )
