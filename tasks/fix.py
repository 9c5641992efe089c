"""Step 6 — apply the fix, and its compensation when verification fails.

The actions themselves live in the catalogue (``llmedic/actions/``): this step looks the fix's
action up there and runs it with its params model. :func:`require_approval` is the single guard
between a risky fix and production: ``apply_fix`` refuses to act on a fix whose risk the playbook
gates unless it is handed a matching, positive approval from an allowed approver.
"""

from __future__ import annotations

from llmedic.actions import get_action
from llmedic.catalog import Risk
from llmedic.errors import ApprovalRequired
from llmedic.incident import ActionRecord, ApprovalRecord, Step, StepResult, utcnow
from llmedic.playbook import FixOption, Playbook
from tasks.runtime import Runtime, StepContext, StepTimer, step_task

__all__ = ["FixApplied", "apply_fix", "compensate", "require_approval"]


class FixApplied(StepResult):
    """Step 6 — the fix: what was done (``actions[0]``; recorded only, in a dry run)."""

    @property
    def action(self) -> ActionRecord:
        """The action the fix performed (or, in a dry run, would have)."""
        return self.actions[0]


def require_approval(playbook: Playbook, fix: FixOption, approval: ApprovalRecord | None) -> None:
    """Raise :class:`ApprovalRequired` unless ``fix`` may run under ``approval``."""
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


@step_task(Step.FIX)
def apply_fix(ctx: StepContext, fix: FixOption, approval: ApprovalRecord | None) -> FixApplied:
    """Carry out ``fix`` (guarded by :func:`require_approval`); in a dry run only record it."""
    rt = Runtime(ctx)
    t = StepTimer(Step.FIX)
    if not ctx.dry_run:
        # The guard comes first: nothing about production is even read before it passes.
        require_approval(rt.playbook, fix, approval)
    spec = get_action(fix.action)
    record = ActionRecord(
        name=fix.action,
        risk=fix.risk,
        params=fix.params,
        target=ctx.instance or ctx.target,
        compensation=spec.compensation,
        dry_run=ctx.dry_run,
    )
    if ctx.dry_run:
        t.decide("fix", f"would {fix.name}", spec.description)
        return FixApplied(**t.stamp(f"dry run: would {fix.name} ({spec.description})", actions=[record]))
    outcome = spec(fix.params, rt)  # params checked against the catalogue when the playbook loaded
    record = record.model_copy(
        update={
            "applied": True,
            "result": outcome.summary,
            "compensation_params": outcome.undo_params(),
            "at": utcnow(),
        }
    )
    return FixApplied(**t.stamp(f"{fix.name}: {outcome.summary}", actions=[record]))


@step_task(Step.ROLLBACK)
def compensate(ctx: StepContext, action: ActionRecord) -> StepResult:
    """Run the action that undoes ``action`` (idempotent: draining twice is still drained)."""
    rt = Runtime(ctx)
    t = StepTimer(Step.ROLLBACK)
    if not action.applied or action.compensation is None:
        return t.done(f"nothing to undo for {action.name}", status="skipped")
    outcome = get_action(action.compensation)(action.compensation_params, rt)
    undo = ActionRecord(
        name=action.compensation,
        risk=Risk.LOW,
        params=action.compensation_params,
        target=action.target,
        applied=True,
        result=outcome.summary,
    )
    return t.done(f"compensated {action.name} with {action.compensation}: {outcome.summary}", actions=[undo])
