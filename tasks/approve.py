"""The approval gate as a Prefect step: a risky fix waits for a human decision.

In a deployment run the flow is *suspended* — its process exits, the decision can take as long as
the playbook allows, and a restart of ``llmedic up`` loses nothing. Outside a deployment (a direct
call, a test) the flow is *paused* in-process with the playbook's timeout. Either way the decision
form is the same, it can be submitted from the Prefect UI, ``llmedic approve|reject`` or the Prefect
REST API, and the decision lands on the incident.

What a decision must prove, and how it is judged, is :mod:`llmedic.approval` (identity, gate): this
module only opens the gate, pauses or suspends, and hands each decision to the gate. One that does
not count is recorded, shown in the next form's description, and the gate waits again under a new
pause key (``approve-<fix>-<n>``): on the re-run after a suspension Prefect hands back each key's
submitted input, and each attempt's verdict comes from the task cache, so the attempts replay
exactly as they were judged.

A suspended gate has no Prefect timeout: ``llmedic up`` sweeps approvals past their deadline and
answers them with a rejection by ``llmedic-timeout``, signed with llmedic's own key (so the flow
itself records reject + escalate).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run, suspend_flow_run

from llmedic.approval.decisions import ApprovalDecision
from llmedic.approval.gate import (
    Gate,
    GateOpened,
    closed,
    code_message,
    decide,
    describe,
    gate_key,
    refusal_line,
)
from llmedic.approval.identity import (
    PROOF_PREFIX,
    TIMEOUT_APPROVER,
    code_digest,
    new_code,
    read_tokens,
    system_key,
)
from llmedic.catalog import anomaly_info
from llmedic.errors import ConfigError
from llmedic.incident import ApprovalRecord, Incident, NotificationRecord, Step, utcnow
from llmedic.notify import deliver
from llmedic.playbook import ApprovalPolicy, FixOption, Playbook
from tasks.runtime import Runtime, StepContext, StepTimer, step_task

__all__ = ["check_decision", "open_gate", "wait_for_decision"]


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
def open_gate(ctx: StepContext, fix: FixOption, policy: ApprovalPolicy) -> GateOpened:
    """Stamp the request time and deadline, and send each approver their one-time code (cached, so a
    re-run keeps the original deadline, nonce and codes and sends nothing again)."""
    t = StepTimer(Step.APPROVE)
    deadline = t.started_at + timedelta(minutes=policy.timeout_minutes)
    digests: dict[str, str] = {}
    sent: list[NotificationRecord] = []
    if policy.approvers:
        rt = Runtime(ctx)
        key = system_key(Path(ctx.home))
        where = f"{ctx.anomaly.value} on {ctx.target}"
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
            text = code_message(ctx.incident_id, where, fix, name, code, deadline, ctx.flow_run_id)
            record = _send_code(rt, name, text)
            sent.append(record)
            t.decide("approval-code", "sent" if record.delivered else "failed", record.line())
    gate = Gate(
        flow_run_id=ctx.flow_run_id,
        action=fix.name,
        nonce=secrets.token_hex(16),
        deadline=deadline,
        approvers=list(policy.approvers),
        code_digests=digests,
    )
    summary = (
        f"waiting for approval of {fix.name} ({fix.risk.value} risk) until {deadline:%Y-%m-%d %H:%M:%S} UTC"
    )
    return GateOpened(
        **t.stamp(summary, status="waiting"), gate=gate, requested_at=t.started_at, code_notifications=sent
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
    credential = form.code.strip()
    tokens: dict[str, str] = {}
    unsafe = ""
    if gate.approvers and credential.startswith(PROOF_PREFIX):
        try:
            tokens = read_tokens(ctx.settings().approvers_path())
        except ConfigError as exc:  # a refusal, not an escalation: the gate's codes still work
            unsafe = exc.message
    return decide(
        gate,
        fix,
        approve=form.approve,
        approver=form.approver,
        comment=form.comment,
        credential=credential,
        requested_at=requested_at,
        now=utcnow(),
        tokens=tokens,
        key=system_key(Path(ctx.home)),
        unsafe=unsafe,
    )


def _ask(gate: Gate, form: type[ApprovalDecision], key: str, in_deployment: bool) -> ApprovalDecision | None:
    """Suspend (deployment) or pause (in-process) until a decision arrives; None: the deadline passed."""
    if in_deployment:
        decision = suspend_flow_run(wait_for_input=form, key=key)
    else:
        remaining = (gate.deadline - utcnow()).total_seconds()
        if remaining <= 0:
            return None
        try:
            decision = pause_flow_run(
                wait_for_input=form,
                timeout=max(1, math.ceil(remaining)),
                # In-process pauses serve tests and direct calls; a quarter second keeps a
                # decision's pick-up short. Prefect types it int but sleeps with anyio.
                poll_interval=cast(int, 0.25),
                key=key,
            )
        except FlowPauseTimeout:
            return None
    if decision is None:  # pragma: no cover - Prefect returns the input when wait_for_input is set
        decision = ApprovalDecision(approve=False, approver="", comment="no input received")
    return decision


def wait_for_decision(
    ctx: StepContext,
    playbook: Playbook,
    incident: Incident,
    fix: FixOption,
    requested: GateOpened,
    on_refused: Callable[[ApprovalRecord], None] = lambda record: None,
) -> ApprovalRecord:
    """Block (pause) or suspend until a decision that counts arrives; return it as an
    :class:`ApprovalRecord`. Each refused attempt is handed to ``on_refused`` (to be recorded) and
    the gate waits again, until the deadline or ``approval.max_attempts``.

    Must be called from the flow itself (Prefect cannot suspend from inside a task). Never wrap this
    in a broad ``except``: suspension works by raising Prefect's ``Pause`` signal.
    """
    requested_at, gate = requested.requested_at, requested.gate
    most = playbook.approval.max_attempts
    run = FlowRunContext.get()
    in_deployment = bool(run and run.flow_run and run.flow_run.deployment_id)
    timed_out = "no decision before the deadline"
    last_refused = ""
    for attempt in range(1, most + 1):
        form = ApprovalDecision.with_initial_data(
            description=describe(incident, fix, gate, attempt, most, last_refused)
        )
        decision = _ask(gate, form, gate_key(fix, attempt), in_deployment)
        if decision is None:
            return closed(fix, gate, requested_at, TIMEOUT_APPROVER, "timeout", timed_out, utcnow())
        record = check_decision(ctx, gate, fix, attempt, decision.model_dump(), requested_at)
        if not record.refused:
            return record
        on_refused(record)
        last_refused = refusal_line(record)
        # The verdict's own (cached) time, not the clock now: a re-run must take the same path.
        if record.decided_at >= gate.deadline:
            why = f"no valid decision before the deadline (last refused {last_refused})"
            return closed(fix, gate, requested_at, TIMEOUT_APPROVER, "timeout", why, utcnow())
    why = f"{most} refused attempts ({last_refused}); rejected so that a human looks into who tried"
    return closed(fix, gate, requested_at, "llmedic", "policy", why, utcnow())
