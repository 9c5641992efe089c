"""Team notifications: route a message to the team that owns an anomaly's category, through a
Slack-compatible incoming webhook (``{"text": …}``) and SMTP email; escalations also go to the
``escalation`` route.

A delivery is only *delivered* when the channel accepted it (a 2xx answer, an SMTP server that took
the message). Anything else is retried under ``notify:`` (bounded tries, doubling waits, a bound on
the total time) and then recorded *failed*. Nothing is raised: a notification must not stop a
remediation or an escalation. :func:`deliver` returns the :class:`NotificationRecord` the incident
keeps; :func:`notify_team` and :func:`notify_team_of` return its one-line account.
"""

from __future__ import annotations

import smtplib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import urlsplit

import httpx

from llmedic.catalog import AnomalyType, Team, anomaly_info
from llmedic.config import EnvironmentFile, NotifyConfig, TeamRoute
from llmedic.incident import NotificationDelivery, NotificationRecord, utcnow

__all__ = ["deliver", "deliver_to_team_of", "notify_team", "notify_team_of", "redact_webhook"]

# Answers worth another try: the server may accept the same request later.
_RETRYABLE_HTTP = frozenset({408, 425, 429})


@dataclass(frozen=True)
class _Try:
    ok: bool
    retry: bool = False
    http_status: int | None = None
    error: str = ""


def _tried(policy: NotifyConfig, timeout: float, once: Callable[[float], _Try]) -> tuple[_Try, int]:
    """Run ``once(timeout)`` until it succeeds, cannot succeed, or the policy's bounds are spent.

    The waits double (``backoff_seconds``, then twice that ...); no try starts, and no wait is
    begun, that would end past ``max_seconds`` from the first try; a try's own timeout is cut to
    what is left.
    """
    deadline = time.monotonic() + policy.max_seconds
    attempt = 0
    while True:
        attempt += 1
        result = once(max(0.1, min(timeout, deadline - time.monotonic())))
        if result.ok or not result.retry or attempt >= policy.attempts:
            return result, attempt
        wait = policy.backoff_seconds * 2 ** (attempt - 1)
        if time.monotonic() + wait >= deadline:
            return result, attempt
        time.sleep(wait)


def redact_webhook(url: str) -> str:
    """A webhook URL without its path, query or credentials: for Slack the path *is* the secret."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def _webhook(policy: NotifyConfig, name: str, route: TeamRoute, text: str) -> NotificationDelivery:
    url = str(route.webhook_url)
    body: dict[str, str] = {"text": text}
    if route.channel:
        body["channel"] = route.channel

    def once(timeout: float) -> _Try:
        try:
            resp = httpx.post(url, json=body, timeout=timeout)
        except httpx.HTTPError as exc:  # timeouts, refused connections, broken transfers
            return _Try(False, retry=True, error=type(exc).__name__)
        code = resp.status_code
        if 200 <= code < 300:
            return _Try(True, http_status=code)
        return _Try(False, retry=code >= 500 or code in _RETRYABLE_HTTP, http_status=code)

    result, attempts = _tried(policy, policy.timeout_seconds, once)
    return NotificationDelivery(
        route=name,
        channel="webhook",
        destination=redact_webhook(url),
        status="delivered" if result.ok else "failed",
        attempts=attempts,
        http_status=result.http_status,
        error=result.error,
    )


def _email(env: EnvironmentFile, name: str, to: list[str], subject: str, text: str) -> NotificationDelivery:
    destination = ", ".join(to)
    if env.smtp is None:
        return NotificationDelivery(
            route=name,
            channel="email",
            destination=destination,
            status="skipped",
            error="no smtp: configured",
        )
    s = env.smtp
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = s.sender, destination, subject
    msg.set_content(text)
    refused: list[str] = []

    def once(timeout: float) -> _Try:
        try:
            with smtplib.SMTP(s.host, s.port, timeout=timeout) as smtp:
                if s.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if s.username and s.password:
                    smtp.login(s.username, s.password.get_secret_value())
                refused[:] = sorted(smtp.send_message(msg))
            return _Try(True)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            return _Try(
                False, retry=all(400 <= c < 500 for c in codes), error=f"recipients refused ({codes})"
            )
        except smtplib.SMTPResponseException as exc:
            # 4xx is "try again later"; 5xx (a refused sender, a failed login ...) is final.
            return _Try(
                False,
                retry=400 <= exc.smtp_code < 500,
                error=f"{type(exc).__name__} {exc.smtp_code}",
            )
        except (smtplib.SMTPException, OSError) as exc:  # refused, dropped, timed out
            return _Try(False, retry=True, error=type(exc).__name__)

    result, attempts = _tried(env.notify, s.timeout_seconds, once)
    return NotificationDelivery(
        route=name,
        channel="email",
        destination=destination,
        status="delivered" if result.ok else "failed",
        attempts=attempts,
        error=result.error or (f"refused: {', '.join(refused)}" if refused else ""),
    )


def _route(
    env: EnvironmentFile, name: str, route: TeamRoute | None, subject: str, text: str
) -> list[NotificationDelivery]:
    if route is None:
        return [
            NotificationDelivery(route=name, status="skipped", error="no channel configured for the team")
        ]
    out = []
    if route.webhook_url is not None:
        out.append(_webhook(env.notify, name, route, text))
    if route.email:
        out.append(_email(env, name, route.email, subject, text))
    return out or [
        NotificationDelivery(route=name, status="skipped", error="the route has neither webhook nor email")
    ]


def deliver(
    env: EnvironmentFile, team: Team, text: str, *, kind: str = "message", escalate: bool = False
) -> NotificationRecord:
    """Send ``text`` to ``team`` (and to the ``escalation`` route when ``escalate``); return what
    reached whom. Never raises."""
    record = NotificationRecord(kind=kind, text=text, team=team.value, at=utcnow())
    subject = text.splitlines()[0][:150] if text else "[llmedic]"
    targets = [(team.value, env.teams.get(team.value))]
    if escalate and "escalation" in env.teams:
        targets.append(("escalation", env.teams["escalation"]))
    for name, route in targets:
        try:
            record.deliveries.extend(_route(env, name, route, subject, text))
        except Exception as exc:  # a notification must never stop a remediation
            record.deliveries.append(
                NotificationDelivery(route=name, status="failed", error=f"{type(exc).__name__}: {exc}")
            )
    return record


def deliver_to_team_of(
    env: EnvironmentFile, anomaly: AnomalyType, text: str, *, kind: str = "message", escalate: bool = False
) -> NotificationRecord:
    """:func:`deliver` to the team that owns ``anomaly``."""
    return deliver(env, anomaly_info(anomaly).team, text, kind=kind, escalate=escalate)


def notify_team(env: EnvironmentFile, team: Team, text: str, *, escalate: bool = False) -> str:
    """Send ``text`` to ``team`` (and to the ``escalation`` route when ``escalate``); return a line
    saying what happened on every route."""
    return deliver(env, team, text, escalate=escalate).line()


def notify_team_of(env: EnvironmentFile, anomaly: AnomalyType, text: str, *, escalate: bool = False) -> str:
    """Send ``text`` to the team of ``anomaly``; return a line saying what happened."""
    return deliver_to_team_of(env, anomaly, text, escalate=escalate).line()
