"""Step 6 — apply the fix, and its compensation when verification fails.

:func:`require_approval` is the single guard between a risky fix and production: ``apply_fix``
refuses to act on a fix whose risk the playbook gates unless it is handed a matching, positive
approval from an allowed approver.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmedic.actions import ACTIONS, RestartParams, ScaleParams, SetConcurrencyParams
from llmedic.catalog import Risk
from llmedic.errors import ApprovalRequired, ControlError
from llmedic.incident import ActionRecord, ApprovalRecord, Step, StepResult, utcnow
from llmedic.playbook import FixOption, Playbook
from tasks.runtime import Runtime, StepContext, StepTimer, step_task

__all__ = ["EXECUTORS", "apply_fix", "compensate", "require_approval"]

Executor = Callable[[Runtime, dict[str, Any]], tuple[str, dict[str, Any]]]
"""(runtime, params) → (what happened, parameters of the compensating action)."""


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


def _set_concurrency(rt: Runtime, raw: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    p = SetConcurrencyParams.model_validate(raw)
    before = rt.control.state(rt.instance).concurrency_limit
    if p.limit is not None:
        new = p.limit
    elif before is None:
        raise ControlError(f"{rt.instance.name}: current concurrency limit unknown; set an absolute `limit`")
    else:
        new = max(p.min_limit, int(before * p.factor))
    rt.control.set_concurrency(rt.instance, new)
    return f"concurrency limit {before} → {new}", ({"limit": before} if before else {})


def _restart(rt: Runtime, raw: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    p = RestartParams.model_validate(raw)
    rt.control.restart(rt.instance, ready_timeout=p.ready_timeout_seconds)
    return f"{rt.instance.name} restarted and healthy", {}


def _scale_out(rt: Runtime, raw: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    p = ScaleParams.model_validate(raw)
    spare = [i for i in rt.service.standby if rt.control.state(i).drained]
    if not spare:
        raise ControlError(f"service {rt.service.name!r} has no drained standby instance to bring in")
    chosen = spare[: p.replicas]
    for inst in chosen:
        rt.control.undrain(inst)
    names = [i.name for i in chosen]
    return f"brought {names} into rotation", {"replicas": len(chosen), "instances": names}


def _scale_in(rt: Runtime, raw: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    names = raw.get("instances") or []
    for inst in rt.service.standby:
        if inst.name in names:
            rt.control.drain(inst)
    return f"took {names} out of rotation", {}


def _drain(rt: Runtime, raw: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    rt.control.drain(rt.instance)
    return f"{rt.instance.name} drained", {}


def _undrain(rt: Runtime, raw: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    rt.control.undrain(rt.instance)
    return f"{rt.instance.name} back in rotation", {}


EXECUTORS: dict[str, Executor] = {
    "set_concurrency": _set_concurrency,
    "restart_instance": _restart,
    "scale_out": _scale_out,
    "scale_in": _scale_in,
    "drain_instance": _drain,
    "undrain_instance": _undrain,
}


@step_task(Step.FIX)
def apply_fix(ctx: StepContext, fix: FixOption, approval: ApprovalRecord | None) -> StepResult:
    """Carry out ``fix`` (guarded by :func:`require_approval`); in a dry run only record it."""
    rt = Runtime(ctx)
    t = StepTimer(Step.FIX)
    if not ctx.dry_run:
        # The guard comes first: nothing about production is even read before it passes.
        require_approval(rt.playbook, fix, approval)
    spec = ACTIONS[fix.action]
    record = ActionRecord(
        name=fix.action,
        risk=fix.risk,
        params=fix.params,
        target=rt.instance.name,
        compensation=spec.compensation,
        dry_run=ctx.dry_run,
    )
    if ctx.dry_run:
        t.decide("fix", f"would {fix.name}", spec.description)
        return t.done(f"dry run: would {fix.name} ({spec.description})", actions=[record])
    result, comp_params = EXECUTORS[fix.action](rt, fix.params)
    record = record.model_copy(
        update={"applied": True, "result": result, "compensation_params": comp_params, "at": utcnow()}
    )
    return t.done(f"{fix.name}: {result}", actions=[record], data={"action": record.model_dump(mode="json")})


@step_task(Step.ROLLBACK)
def compensate(ctx: StepContext, action: ActionRecord) -> StepResult:
    """Run the action that undoes ``action`` (idempotent: draining twice is still drained)."""
    rt = Runtime(ctx)
    t = StepTimer(Step.ROLLBACK)
    if not action.applied or action.compensation is None:
        return t.done(f"nothing to undo for {action.name}", status="skipped")
    result, _ = EXECUTORS[action.compensation](rt, action.compensation_params)
    undo = ActionRecord(
        name=action.compensation,
        risk=Risk.LOW,
        params=action.compensation_params,
        target=action.target,
        applied=True,
        result=result,
    )
    return t.done(f"compensated {action.name} with {action.compensation}: {result}", actions=[undo])
