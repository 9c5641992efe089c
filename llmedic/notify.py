"""Team notifications: route a message to the team that owns an anomaly's category.

A Slack-compatible incoming webhook gets ``{"text": ...}``. Delivery failures are reported, never
raised: a notification must not stop a remediation or an escalation.
"""

from __future__ import annotations

import httpx

from llmedic.catalog import AnomalyType, Team, anomaly_info
from llmedic.config import EnvironmentFile

__all__ = ["notify_team", "notify_team_of"]


def notify_team_of(env: EnvironmentFile, anomaly: AnomalyType, text: str) -> str:
    """Send ``text`` to the team of ``anomaly``; return a line saying what happened."""
    return notify_team(env, anomaly_info(anomaly).team, text)


def notify_team(env: EnvironmentFile, team: Team, text: str) -> str:
    """Send ``text`` to ``team``; return a line saying what happened."""
    route = env.teams.get(team.value)
    delivered = "recorded (no channel configured for the team)"
    if route is not None and route.webhook_url is not None:
        try:
            resp = httpx.post(str(route.webhook_url), json={"text": text}, timeout=10)
            delivered = f"webhook HTTP {resp.status_code}"
        except httpx.HTTPError as exc:
            delivered = f"webhook failed: {type(exc).__name__}"
    return f"{team.value} ← {text} — {delivered}"
