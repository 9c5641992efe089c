"""Who is told, and how: team routes, the mail relay, notification retries, the receiver's
throttle and the rules that map unlabelled alerts to an anomaly type."""

from __future__ import annotations

from pydantic import AnyHttpUrl, Field, SecretStr

from llmedic.catalog import AnomalyType
from llmedic.config._base import _Strict

__all__ = ["AlertRule", "NotifyConfig", "ReceiverConfig", "SmtpConfig", "TeamRoute"]


class TeamRoute(_Strict):
    """Where a team is notified."""

    webhook_url: AnyHttpUrl | None = None
    """A Slack-compatible incoming webhook (``{"text": …}`` is posted)."""
    email: list[str] = Field(default_factory=list)
    """Recipients (needs ``smtp:``)."""
    channel: str | None = None
    """Chat channel named in the message (Slack-compatible webhooks ignore it unless they allow overrides)."""


class SmtpConfig(_Strict):
    """The mail relay notifications go through."""

    host: str
    """SMTP server."""
    port: int = Field(25, ge=1, le=65535)
    sender: str = "llmedic@localhost"
    """From address."""
    starttls: bool = False
    """Upgrade the connection with STARTTLS."""
    username: str | None = None
    """Login user, when the server requires authentication."""
    password: SecretStr | None = None
    """Its password (never logged)."""
    timeout_seconds: float = Field(10, gt=0)


class NotifyConfig(_Strict):
    """How hard a notification is tried on each channel (webhook, email) before it is recorded failed."""

    attempts: int = Field(3, ge=1, le=10)
    """Tries per channel; a non-2xx answer, a timeout or a refused connection is retried (a 4xx other
    than 408/429, or a permanent SMTP refusal, is not: it would fail the same way)."""
    backoff_seconds: float = Field(1.0, ge=0, le=60)
    """Wait before the second try; it doubles before each later one (1 s, 2 s, ...)."""
    timeout_seconds: float = Field(10, gt=0, le=120)
    """Longest wait for one webhook answer (email uses ``smtp.timeout_seconds``)."""
    max_seconds: float = Field(20, gt=0, le=600)
    """Bound on the time one channel may take, tries and waits together: no try starts past it."""


class ReceiverConfig(_Strict):
    """How the alert receiver throttles and gives up."""

    max_runs_per_target_per_hour: int = Field(6, ge=1)
    """Past this many remediation runs for one target in an hour, escalate instead of starting more."""
    max_dispatch_attempts: int = Field(20, ge=1)
    """Failed tries to start an alert's run (backing off 1 s, 2 s, … 60 s: about 15 minutes at the
    default) before its outbox row goes ``dead`` and the ops team is told; ``llmedic alerts retry``
    re-queues it."""
    group_window_seconds: float = Field(5.0, ge=0, le=300)
    """One incident per cause: the first firing alert about an instance of a service is held this
    long; alerts of the same anomaly type about other instances of that service arriving meanwhile
    start one service-scope run instead of one run each (the others join its incident). 0 disables
    grouping (every alert is dispatched at once)."""


class AlertRule(_Strict):
    """Maps alerts without an ``anomaly`` label to an anomaly type by label equality."""

    match: dict[str, str] = Field(min_length=1)
    anomaly: AnomalyType
    """The anomaly type (and so the flow) those alerts start."""
