"""Step 4 — isolate: keep the problem from hurting users while it is reproduced and fixed."""

from __future__ import annotations

from typing import Any

from llmedic.catalog import Risk
from llmedic.incident import ActionRecord, Step, StepResult, utcnow
from llmedic.playbook import LatencySettings
from tasks.runtime import Runtime, StepContext, StepTimer, step_task

__all__ = ["isolate_instance", "release_isolation"]


@step_task(Step.ISOLATE)
def isolate_instance(ctx: StepContext, evidence: dict[str, Any]) -> StepResult:
    """Drain a degraded instance when enough healthy instances remain; never drain for load problems."""
    rt = Runtime(ctx)
    s = rt.settings_as(LatencySettings)
    t = StepTimer(Step.ISOLATE)
    diagnosis = evidence.get("diagnosis")
    others = int(evidence.get("healthy_others", 0))
    if not rt.playbook.isolate:
        t.decide("isolate", "no", "the playbook turns isolation off")
        return t.done("isolation off in the playbook", status="skipped", data={"isolated": False})
    if diagnosis != "instance_degraded":
        reason = f"diagnosis {diagnosis}: draining would only push the load onto the other instances"
        t.decide("isolate", "no", reason)
        return t.done(reason, status="skipped", data={"isolated": False})
    if others < max(1, s.min_healthy_instances):
        reason = f"only {others} healthy instance(s) would remain (minimum {s.min_healthy_instances})"
        t.decide("isolate", "no", reason)
        return t.done(reason, status="skipped", data={"isolated": False})
    action = ActionRecord(
        name="drain_instance",
        risk=Risk.LOW,
        target=rt.instance.name,
        compensation="undrain_instance",
        dry_run=ctx.dry_run,
    )
    if ctx.dry_run:
        t.decide("isolate", "would drain", f"{others} healthy instance(s) carry the traffic meanwhile")
        return t.done(f"dry run: would drain {rt.instance.name}", actions=[action], data={"isolated": False})
    rt.control.drain(rt.instance)
    action = action.model_copy(update={"applied": True, "result": "drained", "at": utcnow()})
    t.decide("isolate", "drain", f"{others} healthy instance(s) carry the traffic meanwhile")
    return t.done(f"drained {rt.instance.name}", actions=[action], data={"isolated": True})


@step_task(Step.RECOVER)
def release_isolation(ctx: StepContext, isolated: bool) -> StepResult:
    """Put a drained instance back into rotation once the fix is verified."""
    rt = Runtime(ctx)
    t = StepTimer(Step.RECOVER)
    if not isolated:
        return t.done("nothing was isolated", status="skipped")
    rt.control.undrain(rt.instance)
    action = ActionRecord(
        name="undrain_instance", risk=Risk.LOW, target=rt.instance.name, applied=True, result="undrained"
    )
    return t.done(f"{rt.instance.name} back in rotation", actions=[action])
