"""Notifications: route to the team that owns the category, through its configured channel.

A notification that cannot be delivered is recorded on the incident and never stops remediation.
"""

from __future__ import annotations

import httpx

from llmedic.catalog import anomaly_info
from llmedic.incident import Step, StepResult
from tasks.runtime import Runtime, StepContext, StepTimer, step_task

__all__ = ["notify_team"]


@step_task(Step.ASSESS, name="notify-team")
def notify_team(ctx: StepContext, kind: str, message: str) -> StepResult:
    """Send ``message`` to the incident's team (Slack-compatible webhook when configured)."""
    rt = Runtime(ctx)
    t = StepTimer(Step.ASSESS)
    team = anomaly_info(ctx.anomaly).team
    route = rt.env.teams.get(team.value)
    text = f"[llmedic] [{kind}] {ctx.incident_id} ({ctx.anomaly.value} on {ctx.target}): {message}"
    delivered = "recorded (no channel configured for the team)"
    if route is not None and route.webhook_url is not None:
        try:
            resp = httpx.post(str(route.webhook_url), json={"text": text}, timeout=10)
            delivered = f"webhook HTTP {resp.status_code}"
        except httpx.HTTPError as exc:
            delivered = f"webhook failed: {type(exc).__name__}"
    return t.done(
        f"{team.value}: {text} — {delivered}", data={"line": f"{team.value} ← {text} — {delivered}"}
    )
