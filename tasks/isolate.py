"""Step 4 — isolate: keep the problem from hurting users while it is reproduced and fixed; its
undoing once the fix is verified; and containment when no fix worked."""

from __future__ import annotations

from llmedic.anomalies import home_of
from llmedic.anomalies.base import Findings, Isolation, Recovery
from llmedic.incident import Step
from tasks.runtime import Runtime, StepContext, StepTimer, step_task

__all__ = ["contain", "isolate", "release"]


@step_task(Step.ISOLATE)
def isolate(ctx: StepContext, found: Findings) -> Isolation:
    """Keep the problem from hurting users while it is reproduced and fixed (the home decides how)."""
    result: Isolation = home_of(ctx.anomaly).isolate(Runtime(ctx), found)
    return result


@step_task(Step.ISOLATE)
def contain(ctx: StepContext, found: Findings, scope: str, why: str) -> Isolation:
    """No fix can be applied or none worked (``why``): take the failing instance out of rotation
    when the others carry the traffic, so it does not serve while a human is awaited (the home
    decides how; ``why`` is in the cache key: each reason is its own containment)."""
    home = home_of(ctx.anomaly)
    if home.contain is None:
        t = StepTimer(Step.ISOLATE)
        t.decide("contain", "no", f"{ctx.anomaly.value} contains by its isolation step only")
        return Isolation(**t.stamp("nothing to contain beyond isolation", status="skipped"))
    result: Isolation = home.contain(Runtime(ctx), found, scope)
    return result


@step_task(Step.RECOVER)
def release(ctx: StepContext, isolated: bool) -> Recovery:
    """Undo the isolation once the fix is verified (the home decides how)."""
    result: Recovery = home_of(ctx.anomaly).release(Runtime(ctx), isolated)
    return result
