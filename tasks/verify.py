"""Step 7 — verify & recover: did the fix bring the service back within its criteria?

Each home's criteria poll in their own loop instead of relying on task retries: a retried task
inside a Prefect transaction rolls the transaction back on its first failed attempt (see
``docs/architecture.md``), and a fix must never be undone by a retry artefact.
"""

from __future__ import annotations

from llmedic.anomalies import home_of
from llmedic.anomalies.base import Confirmation, VerificationResult
from llmedic.incident import Step
from tasks.runtime import Runtime, StepContext, step_task

__all__ = ["verify"]


@step_task(Step.VERIFY)
def verify(ctx: StepContext, confirmed: Confirmation) -> VerificationResult:
    """Did the fix bring the service back within its criteria? (the home's criteria)"""
    result: VerificationResult = home_of(ctx.anomaly).verify(Runtime(ctx), confirmed)
    return result
