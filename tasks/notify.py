"""Notifications as a step task (cached, so a resumed run never notifies twice)."""

from __future__ import annotations

from llmedic.anomalies.base import Notified
from llmedic.incident import NotificationRecord, Step, StepResult
from llmedic.notify import deliver_to_team_of
from tasks.runtime import Runtime, StepContext, StepTimer, step_task

__all__ = ["notification_of", "notify_team"]


@step_task(Step.ASSESS, name="notify-team")
def notify_team(ctx: StepContext, kind: str, message: str) -> Notified:
    """Send ``message`` to the incident's team; ``delivery`` says what reached whom."""
    rt = Runtime(ctx)
    t = StepTimer(Step.ASSESS)
    text = f"[llmedic] [{kind}] {ctx.incident_id} ({ctx.anomaly.value} on {ctx.target}): {message}"
    ui = rt.env.prefect_ui_url
    if ui is not None and ctx.flow_run_id:
        text += f"\nrun: {str(ui).rstrip('/')}/runs/flow-run/{ctx.flow_run_id}"
    record = deliver_to_team_of(rt.env, ctx.anomaly, text, kind=kind, escalate=kind == "escalated")
    return Notified(**t.stamp(record.line()), delivery=record)


def notification_of(result: StepResult) -> NotificationRecord:
    """The delivery record a :func:`notify_team` result carries.

    A result cached by an earlier version is a plain result with the record, or only its line,
    under ``data``; a line becomes a ``legacy`` record rather than being sent again.
    """
    if isinstance(result, Notified):
        return result.delivery
    data: dict[str, object] = getattr(result, "data", None) or {}
    return NotificationRecord.model_validate(data.get("record", data.get("line", result.summary)))
