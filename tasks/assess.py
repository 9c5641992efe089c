"""Step 2 — assess impact & route: how far does it reach, and who responds."""

from __future__ import annotations

from llmedic.anomalies import home_of
from llmedic.anomalies.base import Assessment, Confirmation
from llmedic.incident import Step
from tasks.runtime import Runtime, StepContext, step_task

__all__ = ["assess"]


@step_task(Step.ASSESS)
def assess(ctx: StepContext, confirmed: Confirmation) -> Assessment:
    """How far does it reach, and who responds? (the anomaly type's home measures)"""
    result: Assessment = home_of(ctx.anomaly).assess(Runtime(ctx), confirmed)
    return result
