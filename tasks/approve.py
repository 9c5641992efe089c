"""The approval gate: a risky fix waits for a human decision (approve / reject, who, why).

In a deployment run the flow is *suspended* — its process exits, the decision can take as long as
the playbook allows, and a restart of ``llmedic up`` loses nothing. Outside a deployment (a direct
call, a test) the flow is *paused* in-process with the playbook's timeout. Either way the decision
form is the same, it can be submitted from the Prefect UI, ``llmedic approve|reject`` or the Prefect
REST API, and the decision lands on the incident.

The flow judges every decision itself (:func:`llmedic.identity.judge`): when the playbook names
approvers, a decision counts only with the decider's token proof or the one-time code sent to them
when the gate opened. One that does not count is recorded, shown in the next form's description, and
the gate waits again under a new pause key (``approve-<fix>-<n>``): on the re-run after a suspension
Prefect hands back each key's submitted input, and each attempt's verdict comes from the task cache,
so the attempts replay exactly as they were judged.

A suspended gate has no Prefect timeout: ``llmedic up`` sweeps approvals past their deadline and
answers them with a rejection by ``llmedic-timeout``, signed with llmedic's own key (so the flow
itself records reject + escalate).
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run, suspend_flow_run

from llmedic.approvals import TIMEOUT_APPROVER, ApprovalDecision
from llmedic.catalog import anomaly_info
from llmedic.errors import ConfigError
from llmedic.identity import PROOF_PREFIX, Gate, code_digest, judge, new_code, read_tokens, system_key
from llmedic.incident import ApprovalRecord, Incident, NotificationRecord, Step, StepResult, utcnow
from llmedic.notify import deliver
from llmedic.playbook import ApprovalPolicy, FixOption, Playbook
from tasks.runtime import Runtime, StepContext, StepTimer, step_task

__all__ = [
    "TIMEOUT_APPROVER",
    "ApprovalDecision",
    "check_decision",
    "gate_key",
    "open_gate",
    "wait_for_decision",
]


def gate_key(fix: FixOption, attempt: int = 1) -> str:
    """Pause key of one attempt at the gate for a fix (stable across re-runs of the same flow run)."""
    return f"approve-{fix.name.replace('_', '-')}-{attempt}"


def _send_code(rt: Runtime, name: str, text: str) -> NotificationRecord:
    """Send ``text`` to approver ``name``'s own route; the record keeps no trace of the code."""
    route = rt.env.approvers[name]
    team = anomaly_info(rt.ctx.anomaly).team
    # `deliver` sends to a team's route; an environment whose team route is the approver's own
    # gives its retries and delivery records without a second sending path.
    alone = rt.env.model_copy(update={"teams": {team.value: route}})
    record = deliver(alone, team, text, kind="approval-code")
    return record.model_copy(
        update={
            "text": f"one-time approval code for {name} (the code itself is not recorded)",
            "team": f"approver {name}",
            "deliveries": [d.model_copy(update={"route": f"approver {name}"}) for d in record.deliveries],
        }
    )


@step_task(Step.APPROVE, name="open-approval-gate")
def open_gate(ctx: StepContext, fix: FixOption, policy: ApprovalPolicy) -> StepResult:
    """Stamp the request time and deadline, and send each approver their one-time code (cached, so a
    re-run keeps the original deadline, nonce and codes and sends nothing again)."""
    t = StepTimer(Step.APPROVE)
    deadline = t.started_at + timedelta(minutes=policy.timeout_minutes)
    digests: dict[str, str] = {}
    sent: list[dict[str, Any]] = []
    if policy.approvers:
        rt = Runtime(ctx)
        key = system_key(Path(ctx.home))
        for name in policy.approvers:
            if name not in rt.env.approvers:
                t.decide(
                    "approval-code",
                    "not sent",
                    f"{name} has no route under approvers: in llmedic.yaml; they decide with the CLI and their token",
                )
                continue
            code = new_code()
            digests[name] = code_digest(
                key, run_id=ctx.flow_run_id, action=fix.name, approver=name, code=code
            )
            text = (
                f"[llmedic] [approval-code] {ctx.incident_id} ({ctx.anomaly.value} on {ctx.target}): "
                f"your one-time code to approve or reject {fix.name} ({fix.risk.value} risk) as {name} is "
                f"{code} — valid until {deadline:%Y-%m-%d %H:%M:%S} UTC, for flow run {ctx.flow_run_id} only. "
                "Enter it with your name in the run's Resume form. Do not share it."
            )
            record = _send_code(rt, name, text)
            sent.append(record.model_dump(mode="json"))
            t.decide("approval-code", "sent" if record.delivered else "failed", record.line())
    gate = Gate(
        flow_run_id=ctx.flow_run_id,
        action=fix.name,
        nonce=secrets.token_hex(16),
        deadline=deadline,
        approvers=list(policy.approvers),
        code_digests=digests,
    )
    return t.done(
        f"waiting for approval of {fix.name} ({fix.risk.value} risk) until {deadline:%Y-%m-%d %H:%M:%S} UTC",
        status="waiting",
        data={
            "requested_at": t.started_at.isoformat(),
            "deadline": deadline.isoformat(),
            "gate": gate.model_dump(mode="json"),
            "code_notifications": sent,
        },
    )


@step_task(Step.APPROVE, name="check-approval")
def check_decision(
    ctx: StepContext,
    gate: Gate,
    fix: FixOption,
    attempt: int,
    decision: dict[str, Any],
    requested_at: datetime,
) -> ApprovalRecord:
    """Judge attempt ``attempt`` at the gate (cached: on a re-run it is judged as it was the first
    time, whatever the clock or the tokens file say by then)."""
    form = ApprovalDecision.model_validate(decision)
    now = utcnow()
    credential = form.code.strip()
    tokens: dict[str, str] = {}
    unsafe = ""
    if gate.approvers and credential.startswith(PROOF_PREFIX):
        try:
            tokens = read_tokens(ctx.settings().approvers_path())
        except ConfigError as exc:  # a refusal, not an escalation: the gate's codes still work
            unsafe = exc.message
    verdict = judge(
        gate,
        approver=form.approver,
        approve=form.approve,
        comment=form.comment,
        credential=credential,
        now=now,
        tokens=tokens,
        key=system_key(Path(ctx.home)),
    )
    refused = verdict.refused
    if unsafe and refused:
        refused = f"{refused}; {unsafe}"
    system = verdict.counts and verdict.identity == "system"
    return ApprovalRecord(
        action=fix.name,
        risk=fix.risk,
        approved=bool(form.approve) and verdict.counts and not system,
        by=form.approver.strip() or "anonymous",
        comment=form.comment,
        requested_at=requested_at,
        decided_at=now,
        via="timeout" if system else "prefect",
        flow_run_id=gate.flow_run_id,
        verified=verdict.verified,
        identity=verdict.identity,
        refused=refused,
    )


def _plain(name: str) -> str:
    """A typed name as it may be shown in Markdown: letters, digits and ``.-_@`` only, 40 at most."""
    return re.sub(r"[^A-Za-z0-9._@-]", "?", name)[:40]


def _description(
    incident: Incident, fix: FixOption, gate: Gate, attempt: int, most: int, last_refused: str
) -> str:
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


def _closed(
    fix: FixOption, gate: Gate, requested_at: datetime, by: str, via: str, comment: str
) -> ApprovalRecord:
    """A rejection llmedic itself decides (deadline passed, too many refused attempts)."""
    return ApprovalRecord(
        action=fix.name,
        risk=fix.risk,
        approved=False,
        by=by,
        comment=comment,
        requested_at=requested_at,
        decided_at=utcnow(),
        via="timeout" if via == "timeout" else "policy",
        flow_run_id=gate.flow_run_id,
        verified=True,
        identity="system",
    )


def wait_for_decision(
    ctx: StepContext,
    playbook: Playbook,
    incident: Incident,
    fix: FixOption,
    requested: dict[str, Any],
    on_refused: Callable[[ApprovalRecord], None] = lambda record: None,
) -> ApprovalRecord:
    """Block (pause) or suspend until a decision that counts arrives; return it as an
    :class:`ApprovalRecord`. Each refused attempt is handed to ``on_refused`` (to be recorded) and
    the gate waits again, until the deadline or ``approval.max_attempts``.

    Must be called from the flow itself (Prefect cannot suspend from inside a task). Never wrap this
    in a broad ``except``: suspension works by raising Prefect's ``Pause`` signal.
    """
    requested_at = datetime.fromisoformat(requested["requested_at"])
    gate = Gate.model_validate(requested["gate"])
    most = playbook.approval.max_attempts
    run = FlowRunContext.get()
    in_deployment = bool(run and run.flow_run and run.flow_run.deployment_id)
    timed_out = "no decision before the deadline"
    last_refused = ""
    for attempt in range(1, most + 1):
        form = ApprovalDecision.with_initial_data(
            description=_description(incident, fix, gate, attempt, most, last_refused)
        )
        if in_deployment:
            decision = suspend_flow_run(wait_for_input=form, key=gate_key(fix, attempt))
        else:
            remaining = (gate.deadline - utcnow()).total_seconds()
            if remaining <= 0:
                return _closed(fix, gate, requested_at, TIMEOUT_APPROVER, "timeout", timed_out)
            try:
                decision = pause_flow_run(
                    wait_for_input=form,
                    timeout=max(1, math.ceil(remaining)),
                    # In-process pauses serve tests and direct calls; a quarter second keeps a
                    # decision's pick-up short. Prefect types it int but sleeps with anyio.
                    poll_interval=cast(int, 0.25),
                    key=gate_key(fix, attempt),
                )
            except FlowPauseTimeout:
                return _closed(fix, gate, requested_at, TIMEOUT_APPROVER, "timeout", timed_out)
        if decision is None:  # pragma: no cover - Prefect returns the input when wait_for_input is set
            decision = ApprovalDecision(approve=False, approver="", comment="no input received")
        record = check_decision(ctx, gate, fix, attempt, decision.model_dump(), requested_at)
        if not record.refused:
            return record
        on_refused(record)
        # Shown as Markdown in the next form: whoever typed the name controls it, so only a plain
        # name is shown (a link or an image there could phish the next approver's code).
        shown = _plain(record.by)
        last_refused = (
            f"by {shown!r} at {record.decided_at:%H:%M:%S} UTC: {record.refused.replace(record.by, shown)}"
        )
        # The verdict's own (cached) time, not the clock now: a re-run must take the same path.
        if record.decided_at >= gate.deadline:
            return _closed(
                fix,
                gate,
                requested_at,
                TIMEOUT_APPROVER,
                "timeout",
                f"no valid decision before the deadline (last refused {last_refused})",
            )
    return _closed(
        fix,
        gate,
        requested_at,
        "llmedic",
        "policy",
        f"{most} refused attempts ({last_refused}); rejected so that a human looks into who tried",
    )
