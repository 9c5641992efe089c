"""Team notifications: route a message to the team that owns an anomaly's category, through a
Slack-compatible incoming webhook (``{"text": …}``) and SMTP email; escalations also go to the
``escalation`` route.

Delivery failures are reported in the returned line, never raised: a notification must not stop a
remediation or an escalation.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

import httpx

from llmedic.catalog import AnomalyType, Team, anomaly_info
from llmedic.config import EnvironmentFile, TeamRoute

__all__ = ["notify_team", "notify_team_of"]


def notify_team_of(env: EnvironmentFile, anomaly: AnomalyType, text: str, *, escalate: bool = False) -> str:
    """Send ``text`` to the team of ``anomaly``; return a line saying what happened."""
    return notify_team(env, anomaly_info(anomaly).team, text, escalate=escalate)


def _webhook(route: TeamRoute, text: str) -> str:
    body: dict[str, str] = {"text": text}
    if route.channel:
        body["channel"] = route.channel
    try:
        resp = httpx.post(str(route.webhook_url), json=body, timeout=10)
        return f"webhook HTTP {resp.status_code}"
    except httpx.HTTPError as exc:
        return f"webhook failed: {type(exc).__name__}"


def _email(env: EnvironmentFile, to: list[str], subject: str, text: str) -> str:
    if env.smtp is None:
        return "email skipped (no smtp: configured)"
    s = env.smtp
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = s.sender, ", ".join(to), subject
    msg.set_content(text)
    try:
        with smtplib.SMTP(s.host, s.port, timeout=s.timeout_seconds) as smtp:
            if s.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if s.username and s.password:
                smtp.login(s.username, s.password.get_secret_value())
            smtp.send_message(msg)
        return f"email to {len(to)} recipient(s)"
    except (smtplib.SMTPException, OSError) as exc:
        return f"email failed: {type(exc).__name__}"


def notify_team(env: EnvironmentFile, team: Team, text: str, *, escalate: bool = False) -> str:
    """Send ``text`` to ``team`` (and to the ``escalation`` route when ``escalate``); return a line
    saying what happened on every route."""
    subject = text.splitlines()[0][:150] if text else "[llmedic]"
    targets = [(team.value, env.teams.get(team.value))]
    if escalate and "escalation" in env.teams:
        targets.append(("escalation", env.teams["escalation"]))
    said = []
    for name, route in targets:
        if route is None:
            said.append(f"{name}: recorded (no channel configured for the team)")
            continue
        parts = []
        if route.webhook_url is not None:
            parts.append(_webhook(route, text))
        if route.email:
            parts.append(_email(env, route.email, subject, text))
        said.append(f"{name}: " + ("; ".join(parts) or "recorded (the route has neither webhook nor email)"))
    return f"{team.value} ← {text} — " + " | ".join(said)
