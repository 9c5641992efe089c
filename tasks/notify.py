"""Notifications as a step task (cached, so a resumed run never notifies twice)."""

from __future__ import annotations

from llmedic.incident import Step, StepResult
from llmedic.notify import notify_team_of
from tasks.runtime import Runtime, StepContext, StepTimer, step_task

__all__ = ["notify_team"]


@step_task(Step.ASSESS, name="notify-team")
def notify_team(ctx: StepContext, kind: str, message: str) -> StepResult:
    """Send ``message`` to the incident's team."""
    rt = Runtime(ctx)
    t = StepTimer(Step.ASSESS)
    text = f"[llmedic] [{kind}] {ctx.incident_id} ({ctx.anomaly.value} on {ctx.target}): {message}"
    ui = rt.env.prefect_ui_url
    if ui is not None and ctx.flow_run_id:
        text += f"\nrun: {str(ui).rstrip('/')}/runs/flow-run/{ctx.flow_run_id}"
    line = notify_team_of(rt.env, ctx.anomaly, text, escalate=kind == "escalated")
    return t.done(line, data={"line": line})
