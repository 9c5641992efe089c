"""Step 3 — collect evidence & locate: the figures behind a diagnosis."""

from __future__ import annotations

from llmedic.anomalies import home_of
from llmedic.anomalies.base import Assessment, Confirmation, Findings
from llmedic.incident import Step
from tasks.runtime import Runtime, StepContext, step_task

__all__ = ["evidence"]


@step_task(Step.EVIDENCE)
def evidence(ctx: StepContext, confirmed: Confirmation, assessed: Assessment) -> Findings:
    """Collect the figures behind a diagnosis and diagnose (the anomaly type's home decides)."""
    result: Findings = home_of(ctx.anomaly).evidence(Runtime(ctx), confirmed, assessed)
    return result
