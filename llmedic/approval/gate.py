"""The approval gate's logic: what a gate is, how a decision submitted to it is judged, and the
records and texts the gate produces. Pure: the caller (``tasks/approve.py``, the Prefect step that
pauses or suspends the flow) reads the files and the clock and hands them in.

A decision that does not count never rejects the fix: the gate records it, shows why in the next
form's description, and waits again, until the deadline or the playbook's ``max_attempts``.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from llmedic.approval.identity import PROOF_PREFIX, TIMEOUT_APPROVER, Identity, code_digest, make_proof
from llmedic.incident import ApprovalRecord, Incident, NotificationRecord, StepResult
from llmedic.playbook import FixOption

__all__ = [
    "Gate",
    "GateOpened",
    "Verdict",
    "closed",
    "code_message",
    "decide",
    "describe",
    "gate_key",
    "judge",
    "plain_name",
    "refusal_line",
]


class Gate(BaseModel):
    """What the flow needs to judge a decision at one gate (no secret in it: codes are digests)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    flow_run_id: str
    action: str
    nonce: str
    """Published with the gate (incident record, form description); part of every token proof."""
    deadline: datetime
    approvers: list[str] = Field(default_factory=list)
    code_digests: dict[str, str] = Field(default_factory=dict)
    """Approver → keyed digest of the one-time code sent to them."""


class GateOpened(StepResult):
    """Step 5b — the gate is open: when it was asked, until when it waits, and who got a code."""

    gate: Gate
    requested_at: datetime
    code_notifications: list[NotificationRecord] = Field(default_factory=list)
    """One record per approver a one-time code was sent to (the codes themselves are not kept)."""

    @property
    def deadline(self) -> datetime:
        """A gate without a decision by then is rejected and escalated."""
        return self.gate.deadline

    @property
    def nonce(self) -> str:
        """Part of every token proof for this gate (published: not a secret)."""
        return self.gate.nonce

    @property
    def codes_sent_to(self) -> list[str]:
        """The approvers a one-time code was made for, sorted."""
        return sorted(self.gate.code_digests)


class Verdict(BaseModel):
    """Does a submitted decision count, and how was its author verified?"""

    model_config = ConfigDict(extra="forbid", frozen=True)

    counts: bool
    identity: Identity
    verified: bool
    refused: str = ""
    """Why it does not count (empty when it does)."""


def _refuse(reason: str, identity: Identity = "none") -> Verdict:
    return Verdict(counts=False, identity=identity, verified=False, refused=reason)


def _judge_timeout(gate: Gate, cred: str, expected: Callable[[], str], now: datetime) -> Verdict:
    """A decision by the sweeper's name: its proof, or the deadline really past."""
    if cred.startswith(PROOF_PREFIX) and hmac.compare_digest(cred, expected()):
        return Verdict(counts=True, identity="system", verified=True)
    if now >= gate.deadline:  # the flow's own clock says the time is up: nobody needs to prove it
        return Verdict(counts=True, identity="system", verified=True)
    return _refuse(
        f"{TIMEOUT_APPROVER!r} is the sweeper's name: without its proof it counts only after the "
        f"deadline ({gate.deadline:%Y-%m-%d %H:%M:%S} UTC)"
    )


def _judge_proof(who: str, cred: str, token: str | None, expected: Callable[[str], str]) -> Verdict:
    """A token proof (CLI, HTTP): recomputed from the approver's token on file."""
    if token is None:
        return _refuse(f"{who!r} has no token on file (`llmedic approvers add {who}`)", "token")
    if not hmac.compare_digest(cred, expected(token)):
        return _refuse(
            f"the token proof for {who!r} does not match (a wrong token, or a proof made for another "
            "run, action, decision or comment)",
            "token",
        )
    return Verdict(counts=True, identity="token", verified=True)


def _judge_code(gate: Gate, who: str, cred: str, key: bytes) -> Verdict:
    """A one-time code (the Prefect UI form): its keyed digest must be the one the gate sent."""
    if not cred:
        return _refuse(
            f"{who!r} gave no approval code (it was sent to their own route when the gate opened)", "code"
        )
    expected = gate.code_digests.get(who)
    given = code_digest(key, run_id=gate.flow_run_id, action=gate.action, approver=who, code=cred)
    # Compare even when no code was sent to them, so the answer takes the same time either way.
    if not hmac.compare_digest(given, expected or "0" * 64) or expected is None:
        return _refuse(
            f"the approval code is not valid for {who!r} at this gate (wrong, or from another gate or run)",
            "code",
        )
    return Verdict(counts=True, identity="code", verified=True)


def judge(
    gate: Gate,
    *,
    approver: str,
    approve: bool,
    comment: str,
    credential: str,
    now: datetime,
    tokens: dict[str, str],
    key: bytes,
) -> Verdict:
    """Judge one decision submitted to ``gate`` (pure: the caller reads files and the clock)."""
    who = approver.strip()
    cred = credential.strip()

    def proof(secret: str | bytes) -> str:
        return make_proof(
            secret,
            run_id=gate.flow_run_id,
            action=gate.action,
            approver=who,
            approve=approve,
            comment=comment,
            nonce=gate.nonce,
        )

    if who == TIMEOUT_APPROVER:
        return _judge_timeout(gate, cred, lambda: proof(key), now)
    if not who:
        return _refuse("the decision names no approver")
    if who.lower().startswith("llmedic"):
        return _refuse(f"approver names starting with 'llmedic' are reserved ({who!r})")
    if not gate.approvers:
        return Verdict(counts=True, identity="none", verified=False)
    if who not in gate.approvers:
        return _refuse(f"{who!r} is not one of the approvers ({', '.join(gate.approvers)})")
    if now >= gate.deadline:
        return _refuse(
            f"the gate's deadline ({gate.deadline:%Y-%m-%d %H:%M:%S} UTC) has passed: the code or proof has expired"
        )
    if cred.startswith(PROOF_PREFIX):
        return _judge_proof(who, cred, tokens.get(who), proof)
    return _judge_code(gate, who, cred, key)


def decide(
    gate: Gate,
    fix: FixOption,
    *,
    approve: bool,
    approver: str,
    comment: str,
    credential: str,
    requested_at: datetime,
    now: datetime,
    tokens: dict[str, str],
    key: bytes,
    unsafe: str = "",
) -> ApprovalRecord:
    """The record of one decision at ``gate``, judged; ``unsafe`` says why the tokens file could not
    be used (added to a refusal: the gate's codes still work)."""
    verdict = judge(
        gate,
        approver=approver,
        approve=approve,
        comment=comment,
        credential=credential,
        now=now,
        tokens=tokens,
        key=key,
    )
    refused = verdict.refused
    if unsafe and refused:
        refused = f"{refused}; {unsafe}"
    system = verdict.counts and verdict.identity == "system"
    return ApprovalRecord(
        action=fix.name,
        risk=fix.risk,
        approved=bool(approve) and verdict.counts and not system,
        by=approver.strip() or "anonymous",
        comment=comment,
        requested_at=requested_at,
        decided_at=now,
        via="timeout" if system else "prefect",
        flow_run_id=gate.flow_run_id,
        verified=verdict.verified,
        identity=verdict.identity,
        refused=refused,
    )


def closed(
    fix: FixOption, gate: Gate, requested_at: datetime, by: str, via: str, comment: str, now: datetime
) -> ApprovalRecord:
    """A rejection llmedic itself decides at ``now`` (deadline passed, too many refused attempts)."""
    return ApprovalRecord(
        action=fix.name,
        risk=fix.risk,
        approved=False,
        by=by,
        comment=comment,
        requested_at=requested_at,
        decided_at=now,
        via="timeout" if via == "timeout" else "policy",
        flow_run_id=gate.flow_run_id,
        verified=True,
        identity="system",
    )


def gate_key(fix: FixOption, attempt: int = 1) -> str:
    """Pause key of one attempt at the gate for a fix (stable across re-runs of the same flow run)."""
    return f"approve-{fix.name.replace('_', '-')}-{attempt}"


def plain_name(name: str) -> str:
    """A typed name as it may be shown in Markdown: letters, digits and ``.-_@`` only, 40 at most."""
    return re.sub(r"[^A-Za-z0-9._@-]", "?", name)[:40]


def refusal_line(record: ApprovalRecord) -> str:
    """A refused attempt as the next form shows it: whoever typed the name controls it, so only a
    plain name is shown (a link or an image there could phish the next approver's code)."""
    shown = plain_name(record.by)
    return f"by {shown!r} at {record.decided_at:%H:%M:%S} UTC: {record.refused.replace(record.by, shown)}"


def code_message(
    incident_id: str, where: str, fix: FixOption, name: str, code: str, deadline: datetime, flow_run_id: str
) -> str:
    """The message that carries approver ``name``'s one-time code (``where``: anomaly on target)."""
    return (
        f"[llmedic] [approval-code] {incident_id} ({where}): "
        f"your one-time code to approve or reject {fix.name} ({fix.risk.value} risk) as {name} is "
        f"{code} — valid until {deadline:%Y-%m-%d %H:%M:%S} UTC, for flow run {flow_run_id} only. "
        "Enter it with your name in the run's Resume form. Do not share it."
    )


def describe(
    incident: Incident, fix: FixOption, gate: Gate, attempt: int, most: int, last_refused: str
) -> str:
    """The Markdown description of the decision form for one attempt at the gate."""
    last = incident.decisions[-3:]
    if gate.approvers:
        coded = [n for n in gate.approvers if n in gate.code_digests]
        who = (
            f"**Who may decide** {', '.join(gate.approvers)}: put your name and the one-time code llmedic "
            f"sent you in the form (codes went to: {', '.join(coded) or 'nobody, no approver has a route'}), "
            "or use the CLI with your token."
        )
    else:
        who = "**Who may decide** anyone (the playbook names no approvers: the decision is recorded unverified)."
    lines = [
        f"## Approve `{fix.name}` on `{incident.target}`?",
        "",
        f"**Incident** `{incident.id}` — {incident.title}",
        f"**Diagnosis** {incident.diagnosis}",
        f"**Fix** {fix.description or fix.action} — risk **{fix.risk.value}**",
        f"**Decide before** {gate.deadline:%Y-%m-%d %H:%M:%S} UTC (then it is rejected and escalated)",
        who,
    ]
    if last_refused:
        lines += [
            "",
            f"**The last attempt was refused** — {last_refused}. It changed nothing; this is attempt "
            f"{attempt} of {most}.",
        ]
    lines += [
        "",
        "Recent decisions:",
        *[f"- {d.topic}: **{d.choice}** — {d.reason}" for d in last],
        "",
        f"CLI: `llmedic approve {incident.flow_run_id} --by NAME` or `llmedic reject {incident.flow_run_id} --by NAME`",
        f"(gate nonce `{gate.nonce}`, for HTTP clients that sign with a token)",
    ]
    return "\n".join(lines)
