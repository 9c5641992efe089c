"""Step 1 — detect & confirm: is the anomaly real, by an independent signal?"""

from __future__ import annotations

from llmedic.anomalies import home_of
from llmedic.anomalies.base import Confirmation
from llmedic.incident import Step
from tasks.runtime import Runtime, StepContext, step_task

__all__ = ["confirm"]


@step_task(Step.CONFIRM)
def confirm(ctx: StepContext) -> Confirmation:
    """Is the anomaly real, by an independent signal? (the anomaly type's home judges)"""
    result: Confirmation = home_of(ctx.anomaly).confirm(Runtime(ctx))
    return result
