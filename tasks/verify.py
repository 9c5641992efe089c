"""Step 7 — verify & recover: did the fix bring the service back within its criteria? When not,
re-assess before the next fix; after recovery, watch.

Each home's criteria poll in their own loop instead of relying on task retries: a retried task
inside a Prefect transaction rolls the transaction back on its first failed attempt (see
``docs/architecture.md``), and a fix must never be undone by a retry artefact. Every task here takes
the attempt (or the watch round) as an input, so each one is cached on its own: a run resumed after
a suspended gate replays attempt 1's verification and attempt 2's re-assessment, never reuses one
for the other.
"""

from __future__ import annotations

import time

from llmedic.anomalies import home_of
from llmedic.anomalies.base import Assessment, Confirmation, Findings, VerificationResult
from llmedic.incident import Step
from tasks.runtime import Runtime, StepContext, step_task

__all__ = ["reassess", "verify", "watch"]


@step_task(Step.VERIFY)
def verify(ctx: StepContext, confirmed: Confirmation, attempt: int = 1) -> VerificationResult:
    """Did fix ``attempt`` bring the service back within its criteria? (the home's criteria)"""
    result: VerificationResult = home_of(ctx.anomaly).verify(Runtime(ctx), confirmed)
    return result


@step_task(Step.EVIDENCE, name="re-assess")
def reassess(ctx: StepContext, confirmed: Confirmation, assessed: Assessment, attempt: int) -> Findings:
    """Collect the evidence and diagnose again before fix ``attempt`` (the last one failed)."""
    result: Findings = home_of(ctx.anomaly).evidence(Runtime(ctx), confirmed, assessed)
    return result.model_copy(update={"summary": f"re-assessed before fix {attempt}: {result.summary}"})


@step_task(Step.WATCH)
def watch(
    ctx: StepContext, confirmed: Confirmation, round_: int, rounds: int, wait: float
) -> VerificationResult:
    """Watch round ``round_`` of ``rounds`` after recovery: wait ``wait`` seconds, then re-run the
    verification (cached per round: a replayed run does not wait again)."""
    time.sleep(wait)
    result: VerificationResult = home_of(ctx.anomaly).verify(Runtime(ctx), confirmed)
    verdict = "holds" if result.passed else "RELAPSE"
    return result.model_copy(
        update={"step": Step.WATCH, "summary": f"watch {round_}/{rounds}: {verdict}: {result.summary}"}
    )
