"""Step 6 — apply the fix, and its compensation when verification fails.

The actions themselves live in the catalogue (``llmedic/actions/``): this step looks the fix's
action up there and runs it with its params model. ``llmedic.approval.require_approval`` is the
single guard between a risky fix and production: ``apply_fix`` refuses to act on a fix whose risk
the playbook gates unless it is handed a matching, positive approval from an allowed approver.

**Canary first.** An action that acts on every in-rotation instance (``fleet=True`` in the
catalogue: ``switch_model``, ``rollback_model``, ``rolling_restart``) is applied to one instance
first — the incident's own when it is in rotation — and verified there with the anomaly type's own
criteria, measured on that instance only (its probes, its memory, its golden-set score). Passed:
the rest get it. Failed: only the canary is compensated, the rest are never touched, and the fix
counts as failed (``FixApplied.canary_failed`` takes the place of the verify step's result).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmedic.actions import Action, ActionOutcome, get_action
from llmedic.anomalies import home_of
from llmedic.anomalies.base import Confirmation, VerificationResult
from llmedic.approval.guard import require_approval
from llmedic.catalog import Risk
from llmedic.config import InstanceConfig
from llmedic.incident import ActionRecord, ApprovalRecord, Step, StepResult, utcnow
from llmedic.playbook import FixOption
from tasks.runtime import Runtime, StepContext, StepTimer, step_task

__all__ = ["FixApplied", "ScopedRuntime", "apply_fix", "compensate", "merge_undo"]


class FixApplied(StepResult):
    """Step 6 — the fix: what was done (recorded only, in a dry run)."""

    undo_index: int = 0
    """Which of ``actions`` undoes the whole fix (the last, after a canary)."""
    canary_failed: VerificationResult | None = None
    """The canary's failed verification: the fix failed there, only the canary was compensated
    (the rest never touched); the response reads it as the fix's verification."""

    @property
    def action(self) -> ActionRecord:
        """The action the fix performed (or, in a dry run, would have); its compensation undoes it."""
        return self.actions[self.undo_index]


@dataclass
class ScopedRuntime(Runtime):
    """A runtime whose in-rotation instances are ``scope`` only (a canary, or the rest after it)."""

    scope: tuple[str, ...] = ()
    completes_fleet: bool = True
    """False on the canary: what an action records for the whole service waits for the rest."""

    def in_rotation(self) -> list[InstanceConfig]:
        return [i for i in [*self.service.instances, *self.service.standby] if i.name in self.scope]


def merge_undo(first: dict[str, Any], then: dict[str, Any]) -> dict[str, Any]:
    """One compensation for a fix applied in two parts: per-instance maps joined, the rest from ``then``."""
    out = dict(first)
    for key, value in then.items():
        before = out.get(key)
        out[key] = {**before, **value} if isinstance(before, dict) and isinstance(value, dict) else value
    return out


@step_task(Step.FIX)
def apply_fix(
    ctx: StepContext, fix: FixOption, approval: ApprovalRecord | None, confirmed: Confirmation | None = None
) -> FixApplied:
    """Carry out ``fix`` (guarded by :func:`require_approval`); in a dry run only record it. A fleet
    action with ``confirmed`` at hand and more than one instance in rotation goes canary first."""
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
        t.decide("fix", f"would {fix.name}", spec.description + (" (canary first)" if spec.fleet else ""))
        return FixApplied(**t.stamp(f"dry run: would {fix.name} ({spec.description})", actions=[record]))
    if spec.fleet and confirmed is not None:
        fleet = rt.in_rotation()
        if len(fleet) > 1:
            return _canary_first(rt, t, fix, spec, record, fleet, confirmed)
        t.decide("canary", "none", f"only {len(fleet)} instance in rotation: nothing to try it on first")
    outcome = spec(fix.params, rt)  # params checked against the catalogue when the playbook loaded
    record = _applied(record, outcome)
    return FixApplied(**t.stamp(f"{fix.name}: {outcome.summary}", actions=[record]))


def _applied(record: ActionRecord, outcome: ActionOutcome, **update: Any) -> ActionRecord:
    return record.model_copy(
        update={
            "applied": True,
            "result": outcome.summary,
            "compensation_params": outcome.undo_params(),
            "at": utcnow(),
            **update,
        }
    )


def _canary_first(
    rt: Runtime,
    t: StepTimer,
    fix: FixOption,
    spec: Action,
    record: ActionRecord,
    fleet: list[InstanceConfig],
    confirmed: Confirmation,
) -> FixApplied:
    """Apply ``spec`` to one canary, verify it there, then to the rest (or undo the canary only)."""
    ctx = rt.ctx
    canary = next((i for i in fleet if i.name == ctx.instance), fleet[0])
    rest = [i for i in fleet if i.name != canary.name]
    t.decide(
        "canary",
        canary.name,
        f"{fix.action} acts on every instance: tried on {canary.name} first, verified there, then "
        f"{[i.name for i in rest]}",
    )
    on_canary = ScopedRuntime(ctx.model_copy(update={"instance": canary.name}), (canary.name,), False)
    first = spec(fix.params, on_canary)
    tried = _applied(record, first, target=canary.name, result=f"canary {canary.name}: {first.summary}")
    checked: VerificationResult = home_of(ctx.anomaly).verify(on_canary, confirmed)
    for item in checked.evidence:
        t.evidence.append(item.model_copy(update={"name": f"canary_{item.name}"}))
    if not checked.passed:
        failed = [
            c.name for c in (checked.verification.checks if checked.verification else []) if not c.passed
        ]
        t.decide("canary", "failed", f"{canary.name} after {fix.action}: {checked.summary}")
        actions = [tried]
        if spec.compensation is not None:
            undo = get_action(spec.compensation)(tried.compensation_params, on_canary)
            actions[0] = tried.model_copy(update={"compensated": True, "compensated_at": utcnow()})
            actions.append(
                ActionRecord(
                    name=spec.compensation,
                    risk=Risk.LOW,
                    params=tried.compensation_params,
                    target=canary.name,
                    applied=True,
                    result=f"canary {canary.name} compensated: {undo.summary}",
                )
            )
        summary = (
            f"{fix.name}: canary {canary.name} failed verification {failed}; only the canary was "
            f"{'compensated' if spec.compensation else 'touched (the action cannot be undone)'}, "
            f"{[i.name for i in rest]} never touched"
        )
        return FixApplied(
            **t.stamp(summary, status="failed", actions=actions, verification=checked.verification),
            canary_failed=checked.model_copy(update={"summary": f"canary {canary.name}: {checked.summary}"}),
        )
    t.decide("canary", "verified", f"{canary.name}: {checked.summary}; applying to the rest")
    on_rest = ScopedRuntime(ctx, tuple(i.name for i in rest), True)
    then = spec(fix.params, on_rest)
    whole = _applied(
        record,
        then,
        target=", ".join(i.name for i in fleet),
        result=f"rest {[i.name for i in rest]}: {then.summary}",
        compensation_params=merge_undo(tried.compensation_params, then.undo_params()),
    )
    return FixApplied(
        **t.stamp(
            f"{fix.name}: canary {canary.name} verified, then the rest: {then.summary}",
            actions=[tried, whole],
        ),
        undo_index=1,
    )


@step_task(Step.ROLLBACK)
def compensate(ctx: StepContext, action: ActionRecord) -> StepResult:
    """Run the action that undoes ``action`` (idempotent: draining twice is still drained)."""
    rt = Runtime(ctx)
    t = StepTimer(Step.ROLLBACK)
    if not action.applied or action.compensation is None:
        return t.done(f"nothing to undo for {action.name}", status="skipped")
    if action.compensated:  # a canary that failed was compensated by the fix step itself
        return t.done(f"{action.name} on {action.target} was already compensated by the fix step")
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
