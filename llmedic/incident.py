"""The incident record: everything that happened from the alert to the post-mortem.

An :class:`Incident` is plain data (JSON round-trips exactly). Flows build it from the results of
their step tasks, save the working copy after each step (:class:`llmedic.store.incidents.IncidentStore`), and archive it
at the end. Timestamps come from the tasks, so a flow that re-runs after a suspended approval
rebuilds the same record from cached task results.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from llmedic.alerts import Alert
from llmedic.catalog import AnomalyType, Category, Risk, Team

__all__ = [
    "ActionRecord",
    "ApprovalRecord",
    "Decision",
    "EvidenceItem",
    "FixAttempt",
    "Incident",
    "IncidentRequest",
    "JoinedAlert",
    "NotificationDelivery",
    "NotificationRecord",
    "Outcome",
    "Step",
    "StepRecord",
    "StepResult",
    "Verification",
    "VerificationCheck",
    "utcnow",
]


def utcnow() -> datetime:
    """Aware UTC now (the one clock every record uses)."""
    return datetime.now(UTC)


class Step(StrEnum):
    """The guide's response process, in order."""

    DETECT = "detect"
    CONFIRM = "confirm"
    ASSESS = "assess"
    EVIDENCE = "evidence"
    ISOLATE = "isolate"
    REPRODUCE = "reproduce"
    APPROVE = "approve"
    FIX = "fix"
    VERIFY = "verify"
    ROLLBACK = "rollback"
    RECOVER = "recover"
    WATCH = "watch"
    """Re-verification after recovery (the playbook's ``remediation.watch_seconds``)."""
    ARCHIVE = "archive"


class Outcome(StrEnum):
    """How an incident ended."""

    OPEN = "open"
    FALSE_POSITIVE = "false_positive"
    RESOLVED = "resolved"
    DRY_RUN = "dry_run"
    REJECTED = "rejected"
    FAILED_ROLLED_BACK = "failed_rolled_back"
    ESCALATED = "escalated"


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StepRecord(_Record):
    """One step of the timeline."""

    step: Step
    started_at: datetime
    finished_at: datetime
    status: Literal["ok", "skipped", "failed", "waiting"] = "ok"
    summary: str = ""

    @property
    def seconds(self) -> float:
        """Duration of the step."""
        return (self.finished_at - self.started_at).total_seconds()


class EvidenceItem(_Record):
    """One piece of evidence: where it came from, what it says, the raw figures."""

    name: str
    source: str
    """Which adapter produced it (``scrape``, ``prometheus``, ``probe``, ``sandbox-admin`` ...)."""
    summary: str
    data: dict[str, Any] = Field(default_factory=dict)
    collected_at: datetime = Field(default_factory=utcnow)
    gap: bool = False
    """True when the evidence could not be collected (the summary says why)."""


class Decision(_Record):
    """A choice llmedic made (diagnosis, fix chosen, scope) and why."""

    topic: str
    choice: str
    reason: str
    at: datetime = Field(default_factory=utcnow)


class ApprovalRecord(_Record):
    """A decision at an approval gate: the one that counted, or an attempt that was refused."""

    action: str
    risk: Risk
    approved: bool
    by: str
    comment: str = ""
    requested_at: datetime
    decided_at: datetime
    via: Literal["prefect", "timeout", "policy"] = "prefect"
    flow_run_id: str = ""
    verified: bool = False
    """The decider's identity was checked; False when the playbook names no approvers."""
    identity: Literal["token", "code", "none", "system"] = "none"
    """How: a token proof (CLI, HTTP), a one-time code (Prefect UI form), nothing (no approvers
    configured), or llmedic itself (deadline, too many refused attempts)."""
    refused: str = ""
    """Why this attempt did not count (it is kept as a record; the gate went on waiting); empty for
    the decision that did."""


class ActionRecord(_Record):
    """A change made (or, in a dry run, that would have been made) and its compensation."""

    name: str
    risk: Risk
    params: dict[str, Any] = Field(default_factory=dict)
    target: str
    compensation: str | None = None
    """Name of the action that undoes this one (None when nothing needs undoing)."""
    compensation_params: dict[str, Any] = Field(default_factory=dict)
    applied: bool = False
    dry_run: bool = False
    at: datetime = Field(default_factory=utcnow)
    result: str = ""
    compensated: bool = False
    compensated_at: datetime | None = None


class VerificationCheck(_Record):
    """One verification criterion and whether it held."""

    name: str
    passed: bool
    observed: float | str | None = None
    expected: str = ""


class Verification(_Record):
    """Result of the verify step."""

    passed: bool
    checks: list[VerificationCheck] = Field(default_factory=list)
    at: datetime = Field(default_factory=utcnow)


class NotificationDelivery(_Record):
    """What happened to one message on one channel of one route."""

    route: str
    """The team route (``data``, ``ops``, ``escalation`` ...)."""
    channel: Literal["webhook", "email"] | None = None
    """None when the route has no channel (the message is only recorded)."""
    destination: str = ""
    """Where it went, secrets left out: a webhook's scheme and host (its path is the secret), the
    email recipients."""
    status: Literal["delivered", "failed", "skipped"]
    attempts: int = 0
    http_status: int | None = None
    """The webhook's last HTTP status, when it answered."""
    error: str = ""
    """Why the last attempt failed or the channel was skipped."""
    at: datetime = Field(default_factory=utcnow)
    """When the last attempt ended."""

    def describe(self) -> str:
        """One phrase, e.g. ``webhook failed after 3 attempts (HTTP 500)``."""
        if self.channel is None:  # nothing to send through, or sending broke before a channel
            return f"{'recorded' if self.status == 'skipped' else 'failed'} ({self.error})"
        tries = f"{self.attempts} attempt{'s' if self.attempts != 1 else ''}"
        detail = self.error or (f"HTTP {self.http_status}" if self.http_status is not None else "")
        if self.status == "delivered":
            what = f"{self.channel} delivered to {self.destination} ({tries})"
            return what + (f"; {detail}" if self.error else "")
        if self.status == "skipped":
            return f"{self.channel} skipped ({detail})"
        return f"{self.channel} to {self.destination} failed after {tries} ({detail})"


class NotificationRecord(_Record):
    """One message llmedic sent about an incident, and what reached whom."""

    kind: str
    """``opened``, ``approval``, ``closed``, ``escalated``, ``throttled`` ...; ``legacy`` for a line
    recorded before deliveries were tracked."""
    text: str
    """The message as sent (for ``legacy``, the old one-line summary)."""
    team: str = ""
    deliveries: list[NotificationDelivery] = Field(default_factory=list)
    at: datetime | None = None
    """When sending started (unknown for ``legacy`` records)."""

    @model_validator(mode="before")
    @classmethod
    def _from_legacy_line(cls, data: Any) -> Any:
        # Incident files written before delivery records hold one summary string per message.
        if isinstance(data, str):
            return {"kind": "legacy", "text": data}
        return data

    @property
    def delivered(self) -> bool:
        """Did the message reach at least one channel?"""
        return any(d.status == "delivered" for d in self.deliveries)

    def line(self) -> str:
        """A one-line account: ``ops ← TEXT — ops: webhook delivered to … | escalation: …``."""
        if self.kind == "legacy":
            return self.text
        routes: dict[str, list[str]] = {}
        for d in self.deliveries:
            routes.setdefault(d.route, []).append(d.describe())
        said = " | ".join(f"{route}: " + "; ".join(parts) for route, parts in routes.items())
        return f"{self.team} ← {self.text} — {said}"


class FixAttempt(_Record):
    """One fix tried on the incident: the diagnosis it answered, its gate, how it ended."""

    number: int
    """1 for the first fix, 2 for the one tried after it failed verification, ..."""
    fix: str
    action: str
    risk: Risk
    diagnosis: str
    """The diagnosis (``name: reason``) the fix was chosen for."""
    approval: str = "not needed"
    """``approved by NAME``, ``rejected by NAME`` or ``not needed``."""
    result: Literal["resolved", "verification_failed", "fix_failed", "rejected", "relapsed"]
    summary: str = ""
    compensated: bool = False
    """Its compensation ran (after a failed verification)."""
    at: datetime = Field(default_factory=utcnow)


class JoinedAlert(_Record):
    """An alert that joined an open incident instead of starting a run of its own (one incident per
    cause: another instance of a service the incident is keyed to, or one grouped by the receiver)."""

    at: datetime
    key: str
    """The alert's notification key in the receiver's outbox."""
    target: str
    """The instance the alert is about."""
    alertname: str = ""
    why: str = ""


class Incident(_Record):
    """Everything llmedic knows about one incident."""

    id: str
    anomaly: AnomalyType
    category: Category
    team: Team
    title: str
    target: str
    service: str | None = None
    alert: Alert
    flow_run_id: str = ""
    dry_run: bool = False
    opened_at: datetime
    closed_at: datetime | None = None
    outcome: Outcome = Outcome.OPEN
    escalated: bool = False
    escalation_reason: str = ""
    scope: str = ""
    impact: str = ""
    diagnosis: str = ""
    timeline: list[StepRecord] = Field(default_factory=list)
    evidence: list[EvidenceItem] = Field(default_factory=list)
    decisions: list[Decision] = Field(default_factory=list)
    approvals: list[ApprovalRecord] = Field(default_factory=list)
    actions: list[ActionRecord] = Field(default_factory=list)
    verification: Verification | None = None
    attempts: list[FixAttempt] = Field(default_factory=list)
    """Every fix tried, in order (``remediation.max_attempts``); the report shows one row each."""
    pending_approval: dict[str, Any] | None = None
    """While waiting at a gate: action, risk, deadline, flow_run_id, the gate's nonce, approvers,
    who was sent a code, refused attempts so far and why the last one was refused."""
    notifications: list[NotificationRecord] = Field(default_factory=list)
    """Every message sent about the incident and what reached whom (older records hold one line each)."""
    report_path: str | None = None
    related: list[str] = Field(default_factory=list)
    resolved_alerts: list[datetime] = Field(default_factory=list)
    joined_alerts: list[JoinedAlert] = Field(default_factory=list)
    """Alerts about other instances that joined this incident (kept by the state store, like
    ``resolved_alerts``: the receiver records them while the run holds the incident)."""

    def apply(self, result: StepResult) -> None:
        """Fold a step's result into the record."""
        self.timeline.append(result.record())
        self.evidence.extend(result.evidence)
        self.decisions.extend(result.decisions)
        self.actions.extend(result.actions)
        if result.verification is not None:
            self.verification = result.verification

    def step(self, step: Step) -> StepRecord | None:
        """The last timeline entry for ``step``."""
        for rec in reversed(self.timeline):
            if rec.step == step:
                return rec
        return None

    @property
    def duration_seconds(self) -> float | None:
        """Open → closed."""
        return (self.closed_at - self.opened_at).total_seconds() if self.closed_at else None

    def close(self, outcome: Outcome, at: datetime | None = None) -> None:
        """Set the final outcome."""
        self.outcome = outcome
        self.closed_at = at or utcnow()
        self.pending_approval = None

    def escalate(self, reason: str) -> None:
        """Mark the incident for human follow-up."""
        self.escalated = True
        self.escalation_reason = reason


class StepResult(_Record):
    """The record part of what one step task returns (each step returns a typed subclass, with the
    figures a later step reads: ``llmedic.anomalies.base``); the flow folds it into the incident
    with :meth:`Incident.apply`."""

    step: Step
    started_at: datetime
    finished_at: datetime
    status: Literal["ok", "skipped", "failed", "waiting"] = "ok"
    summary: str = ""
    evidence: list[EvidenceItem] = Field(default_factory=list)
    decisions: list[Decision] = Field(default_factory=list)
    actions: list[ActionRecord] = Field(default_factory=list)
    verification: Verification | None = None

    def record(self) -> StepRecord:
        """The timeline entry."""
        return StepRecord(
            step=self.step,
            started_at=self.started_at,
            finished_at=self.finished_at,
            status=self.status,
            summary=self.summary,
        )


class IncidentRequest(BaseModel):
    """Parameters of every anomaly flow run (the Prefect UI renders this as a form)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)  # descriptions in the UI form

    alert: Alert | None = None
    """The alert that started the run; leave empty for a manual run and set ``target``."""
    target: str = Field("", pattern=r"^[A-Za-z0-9._:/@\[\]%+=-]{0,256}$")
    """Instance / service / dataset to look at (manual runs)."""
    dry_run: bool = False
    """Run confirm, assess, evidence and reproduce for real; record what the fix would do, change nothing."""
    overrides: dict[str, Any] = Field(default_factory=dict)
    """Playbook overrides for this run only, e.g. ``{"settings": {"slo_p99_seconds": 1.5}}``."""
