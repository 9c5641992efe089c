"""Step 4 — isolate: keep the problem from hurting users while it is reproduced and fixed; and its
undoing once the fix is verified."""

from __future__ import annotations

from llmedic.anomalies import home_of
from llmedic.anomalies.base import Findings, Isolation, Recovery
from llmedic.incident import Step
from tasks.runtime import Runtime, StepContext, step_task

__all__ = ["isolate", "release"]


@step_task(Step.ISOLATE)
def isolate(ctx: StepContext, found: Findings) -> Isolation:
    """Keep the problem from hurting users while it is reproduced and fixed (the home decides how)."""
    result: Isolation = home_of(ctx.anomaly).isolate(Runtime(ctx), found)
    return result


@step_task(Step.RECOVER)
def release(ctx: StepContext, isolated: bool) -> Recovery:
    """Undo the isolation once the fix is verified (the home decides how)."""
    result: Recovery = home_of(ctx.anomaly).release(Runtime(ctx), isolated)
    return result
