"""Step 5 — reproduce: show the problem again, on the isolated instance, before changing anything."""

from __future__ import annotations

from llmedic.anomalies import home_of
from llmedic.anomalies.base import Reproduction
from llmedic.incident import Step, StepResult
from tasks.runtime import Runtime, StepContext, StepTimer, step_task

__all__ = ["reproduce", "reproduce_data"]


@step_task(Step.REPRODUCE)
def reproduce(ctx: StepContext) -> Reproduction:
    """Show the problem again, on the isolated instance, before changing anything (the home knows how)."""
    result: Reproduction = home_of(ctx.anomaly).reproduce(Runtime(ctx))
    return result


@step_task(Step.REPRODUCE)
def reproduce_data(ctx: StepContext) -> StepResult:
    """Re-run the validation on the stored (quarantined) copy, from scratch, not from a cache."""
    rt = Runtime(ctx)
    t = StepTimer(Step.REPRODUCE)
    audit = rt.audit(fresh=True)
    found = audit.breaches(ctx.anomaly)
    reproduced = bool(found)
    t.add(
        "revalidation",
        "audit",
        f"{ctx.target}@{audit.version} re-validated: {len(found)} {ctx.anomaly.value} breach(es)",
        {"findings": [f.model_dump(mode="json") for f in found]},
    )
    t.decide(
        "reproduced",
        "yes" if reproduced else "no",
        "; ".join(f.message for f in found[:3]) or "clean on re-validation",
    )
    return t.done(
        f"{'reproduced' if reproduced else 'not reproduced'} on the stored copy of {audit.version}",
        data={"reproduced": reproduced},
    )
