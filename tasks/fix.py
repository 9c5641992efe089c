"""Step 6 — apply the fix, and its compensation when verification fails.

The actions themselves live in the catalogue (``llmedic/actions/``): this step looks the fix's
action up there and runs it with its params model. ``llmedic.approval.require_approval`` is the
single guard between a risky fix and production: ``apply_fix`` refuses to act on a fix whose risk
the playbook gates unless it is handed a matching, positive approval from an allowed approver.
"""

from __future__ import annotations

from llmedic.actions import get_action
from llmedic.approval.guard import require_approval
from llmedic.catalog import Risk
from llmedic.incident import ActionRecord, ApprovalRecord, Step, StepResult, utcnow
from llmedic.playbook import FixOption
from tasks.runtime import Runtime, StepContext, StepTimer, step_task

__all__ = ["FixApplied", "apply_fix", "compensate"]


class FixApplied(StepResult):
    """Step 6 — the fix: what was done (``actions[0]``; recorded only, in a dry run)."""

    @property
    def action(self) -> ActionRecord:
        """The action the fix performed (or, in a dry run, would have)."""
        return self.actions[0]


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
