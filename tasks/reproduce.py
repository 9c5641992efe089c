"""Step 5 — reproduce: show the problem again, on the isolated instance, before changing anything."""

from __future__ import annotations

from llmedic.anomalies import home_of
from llmedic.anomalies.base import Reproduction
from llmedic.incident import Step
from tasks.runtime import Runtime, StepContext, step_task

__all__ = ["reproduce"]


@step_task(Step.REPRODUCE)
def reproduce(ctx: StepContext) -> Reproduction:
    """Show the problem again, on the isolated instance, before changing anything (the home knows how)."""
    result: Reproduction = home_of(ctx.anomaly).reproduce(Runtime(ctx))
    return result
