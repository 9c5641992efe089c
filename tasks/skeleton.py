"""The guide's response process, shared by every anomaly flow.

detect & confirm → assess impact & route → collect evidence → choose a fix → isolate → reproduce →
(approval gate, for risky fixes) → fix → verify → recover, or roll back when verification fails →
archive with a post-mortem. An anomaly flow supplies its own step tasks in a :class:`ResponsePlan`
and calls :func:`respond`; the order, the gate, the compensation and the record are the same for all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import Task
from prefect.client.schemas.objects import State
from prefect.context import FlowRunContext
from prefect.logging import get_run_logger
from prefect.states import Completed, Failed
from pydantic import BaseModel

from llmedic.alerts import Alert
from llmedic.catalog import AnomalyType, Category, anomaly_info
from llmedic.config import Settings, load_environment, settings_from_env
from llmedic.errors import ConfigError, LlmedicError, StepFailed, VerificationFailed
from llmedic.incident import (
    ApprovalRecord,
    Decision,
    Incident,
    IncidentRequest,
    IncidentStore,
    NotificationRecord,
    Outcome,
    Step,
    StepRecord,
    StepResult,
    utcnow,
)
from llmedic.playbook import load_playbook
from llmedic.reconcile import close_escalated
from llmedic.report import KnowledgeBase
from tasks.approve import open_gate, wait_for_decision
from tasks.archive import archive_incident
from tasks.fix import apply_fix, compensate
from tasks.notify import notification_of, notify_team
from tasks.runtime import StepContext, run_step, step_task

__all__ = ["IncidentSummary", "ResponsePlan", "open_incident", "respond", "to_state"]


@dataclass(frozen=True)
class ResponsePlan:
    """The anomaly-specific step tasks a flow hands to :func:`respond`."""

    confirm: Task[..., StepResult]
    assess: Task[..., StepResult]
    evidence: Task[..., StepResult]
    isolate: Task[..., StepResult]
    reproduce: Task[..., StepResult]
    verify: Task[..., StepResult]
    release: Task[..., StepResult]


class IncidentSummary(BaseModel):
    """What a flow run returns (and the demo prints)."""

    incident_id: str
    anomaly: str
    target: str
    outcome: str
    escalated: bool
    escalation_reason: str = ""
    """Why a human must look (empty unless escalated)."""
    diagnosis: str
    fix: str | None
    approval: str | None
    verified: bool | None
    report_path: str | None
    flow_run_id: str
    seconds: float | None


class Opened(BaseModel):
    """Result of :func:`open_incident`."""

    incident: Incident
    ctx: StepContext


@step_task(Step.DETECT, name="open-incident")
def open_incident(
    anomaly: AnomalyType,
    request: IncidentRequest,
    flow_run_id: str,
    home: str,
    config_path: str | None,
    playbooks_dir: str | None,
) -> Opened:
    """Validate the request, find the target in ``llmedic.yaml`` and open the incident record."""
    settings = settings_from_env().model_copy(
        update={
            "home": Path(home),
            "config": Path(config_path) if config_path else None,
            "playbooks_dir": Path(playbooks_dir) if playbooks_dir else None,
        }
    )
    load_playbook(anomaly, settings, request.overrides)  # fail early on a bad playbook/override
    env = load_environment(settings=settings)
    alert = request.alert
    target = (alert.target if alert else "") or request.target
    if not target:
        raise ConfigError("the run has neither an alert nor a target", hint="set `target` for a manual run")
    if alert is None:
        alert = Alert(source="manual", anomaly=anomaly, target=target, alertname="manual", starts_at=utcnow())
    info = anomaly_info(anomaly)
    version: str | None = None
    if info.category == Category.DATA:
        # A data incident is about one version of a declared dataset, pinned now: isolation moves
        # the current pointer, and every later step must still look at the version that was bad.
        cfg = env.dataset(target)
        from llmedic.adapters.datastore import DataStore

        store = DataStore(settings.datasets_dir)
        store.ensure_seeded(target, cfg)
        version = store.version(target, alert.labels.get("version") or "current").id
        found = None
        service = instance = None
    else:
        found = env.find_instance(target)
        if found is None and anomaly == AnomalyType.NETWORK_INTERRUPTION and target in env.network.links:
            # A network incident is about a link (an endpoint the services depend on), not an instance.
            found = None
        elif found is None and info.category == Category.MODEL and target in {s.name for s in env.services}:
            # A model-quality alert names the service; its first instance stands in for steps
            # that need one (reproduce), the others are judged with it.
            svc = env.service(target)
            found = (svc, svc.instances[0])
        service, instance = (found[0].name, found[1].name) if found else (None, None)
    service_level = found is not None and target == found[0].name
    now = utcnow()
    incident_id = f"{anomaly.value.replace('_', '-')}-{now:%Y%m%d-%H%M%S}-{flow_run_id.replace('-', '')[:6]}"
    incident = Incident(
        id=incident_id,
        anomaly=anomaly,
        category=info.category,
        team=info.team,
        title=f"{info.title}: {alert.summary}",
        target=target if service_level else instance or target,
        service=service,
        alert=alert,
        flow_run_id=flow_run_id,
        dry_run=request.dry_run,
        opened_at=now,
    )
    detected = alert.starts_at or now
    incident.timeline.append(
        StepRecord(
            step=Step.DETECT,
            started_at=min(detected, now),
            finished_at=now,
            summary=f"{alert.source} alert {alert.alertname} ({alert.severity}) on {target}"
            + (f" version {version}" if version else ""),
        )
    )
    ctx = StepContext(
        incident_id=incident_id,
        anomaly=anomaly,
        target=target if service_level else instance or target,
        service=service,
        instance=instance,
        version=version,
        dry_run=request.dry_run,
        flow_run_id=flow_run_id,
        home=home,
        config_path=config_path,
        playbooks_dir=playbooks_dir,
        overrides=request.overrides,
    )
    link = anomaly == AnomalyType.NETWORK_INTERRUPTION and target in env.network.links
    if found is None and info.category != Category.DATA and not link:
        raise ConfigError(
            f"target {target!r} is not an instance of any service in the environment file",
            hint="add it under services[].instances in llmedic.yaml, or fix the alert's instance/target label",
        )
    return Opened(incident=incident, ctx=ctx)


def _summary(incident: Incident) -> IncidentSummary:
    fix = next((a for a in incident.actions if a.name not in ("drain_instance", "undrain_instance")), None)
    appr = incident.approvals[-1] if incident.approvals else None
    return IncidentSummary(
        incident_id=incident.id,
        anomaly=incident.anomaly.value,
        target=incident.target,
        outcome=incident.outcome.value,
        escalated=incident.escalated,
        escalation_reason=incident.escalation_reason,
        diagnosis=incident.diagnosis,
        fix=(fix.name + (" (dry run)" if fix.dry_run else "")) if fix else None,
        approval=(f"{'approved' if appr.approved else 'rejected'} by {appr.by}") if appr else None,
        verified=incident.verification.passed if incident.verification else None,
        report_path=incident.report_path,
        flow_run_id=incident.flow_run_id,
        seconds=incident.duration_seconds,
    )


def to_state(summary: IncidentSummary) -> State[Any]:
    """Failed when the incident needs a human (escalated, which includes rolled back and timed-out
    approvals), so it stands out in the Prefect UI; Completed otherwise."""
    # The reason goes in the state's message: it is what the Prefect UI shows beside a Failed run.
    message = f"{summary.incident_id}: {summary.outcome}" + (
        f" (escalated: {summary.escalation_reason})" if summary.escalated else ""
    )
    if summary.escalated or summary.outcome in (Outcome.FAILED_ROLLED_BACK.value, Outcome.ESCALATED.value):
        return Failed(message=message, data=summary.model_dump())
    return Completed(message=message, data=summary.model_dump())


def log_unexpected(reason: str, exc: BaseException | None) -> None:
    """Put an error the response process absorbed, with its traceback, in the flow run's log."""
    logger = get_run_logger() if FlowRunContext.get() else logging.getLogger("llmedic.skeleton")
    logger.error("%s", reason, exc_info=exc)


def _could_not_open(
    anomaly: AnomalyType, request: IncidentRequest, flow_run_id: str, settings: Settings, exc: Exception
) -> IncidentSummary:
    """The incident could not even be opened (a target the environment file does not know for this
    anomaly type, a bad override, a dataset version that does not exist): record a minimal incident
    and close it escalated, so the alert is not lost in a Failed run nobody reads."""
    code = exc.code if isinstance(exc, LlmedicError) else StepFailed.code
    message = exc.message if isinstance(exc, LlmedicError) else f"{type(exc).__name__}: {exc}"
    log_unexpected(f"opening the incident failed: {code}: {message}", exc)
    info = anomaly_info(anomaly)
    alert = request.alert
    target = (alert.target if alert else "") or request.target or "unknown"
    now = utcnow()
    if alert is None:
        alert = Alert(source="manual", anomaly=anomaly, target=target, alertname="manual", starts_at=now)
    suffix = flow_run_id.replace("-", "")[:6]
    incident = Incident(
        id=f"{anomaly.value.replace('_', '-')}-{now:%Y%m%d-%H%M%S}-{suffix}",
        anomaly=anomaly,
        category=info.category,
        team=info.team,
        title=f"{info.title}: {alert.summary}",
        target=target,
        alert=alert,
        flow_run_id=flow_run_id,
        dry_run=request.dry_run,
        opened_at=now,
    )
    store = IncidentStore(settings.incidents_dir)
    store.save(incident)
    closed = close_escalated(
        incident.id,
        code=code,
        reason=f"the incident could not be opened: {message}",
        closed_by="the response process",
        settings=settings,
    )
    return _summary(closed or store.load(incident.id))


def respond(anomaly: AnomalyType, request: IncidentRequest, plan: ResponsePlan) -> IncidentSummary:
    """Run the response process for one incident. Call it from a flow (the gate needs the flow).

    Every way through ends the incident: an llmedic error or any other exception a step raises
    closes it ``escalated`` with the error on its record (Prefect's pause/suspend signals excepted,
    they are not errors); what a run cannot see itself (its process killed, a cancellation) is
    closed by the flows' state hooks and ``llmedic/reconcile.py``.
    """
    run = FlowRunContext.get()
    flow_run_id = str(run.flow_run.id) if run and run.flow_run else "local"
    settings = settings_from_env()
    home = settings.home.resolve()
    config_path = settings.config_path()
    store = IncidentStore(home / "incidents")
    earlier = store.find_by_run(flow_run_id) if flow_run_id != "local" else None
    if earlier is not None and earlier.outcome != Outcome.OPEN:
        # A Failed run retried from the Prefect UI or API re-enters here with its cached steps: the
        # gate would replay the old approval and an uncached fix would run again. A closed incident
        # stays closed; a new alert (or a manual run) starts a new one.
        log_unexpected(
            f"flow run {flow_run_id} already closed incident {earlier.id} ({earlier.outcome.value}); "
            "a retried run does not act again",
            None,
        )
        return _summary(earlier)
    try:
        opened = open_incident(
            anomaly,
            request,
            flow_run_id,
            str(home),
            str(config_path.resolve()) if config_path.exists() or settings.config else None,
            str(settings.playbooks_dir.resolve()) if settings.playbooks_dir else None,
        )
        incident, ctx = opened.incident, opened.ctx
        playbook = load_playbook(anomaly, ctx.settings(), request.overrides)
    except Exception as exc:  # Exception only: Prefect's signals pass through
        return _could_not_open(anomaly, request, flow_run_id, settings.model_copy(update={"home": home}), exc)
    kb = KnowledgeBase(home / "kb")
    policy = playbook.step_policy
    store.save(incident)

    running: list[Step] = []
    """The step under way, so an unexpected error can say where it happened."""

    def step(t: Task[..., StepResult], s: Step, *args: Any, **kwargs: Any) -> StepResult:
        running[:] = [s]
        result = run_step(t, policy(s), ctx, *args, **kwargs)
        running.clear()
        incident.apply(result)
        store.save(incident)
        return result

    def notify(kind: str, message: str) -> None:
        res = notify_team(ctx, kind, message)
        incident.notifications.append(notification_of(res))

    def finish(outcome: Outcome, escalate: str | None = None) -> IncidentSummary:
        if escalate:
            incident.escalate(escalate)
        incident.close(outcome)
        incident.resolved_alerts = store.resolved_notices(flow_run_id)
        if incident.resolved_alerts:
            incident.decisions.append(
                Decision(
                    topic="alert",
                    choice="resolved",
                    reason=f"the alert reported resolved at {incident.resolved_alerts[0]:%H:%M:%S} UTC while the incident was open",
                )
            )
        # Saved closed before anything else is tried: whatever fails from here on, the incident
        # does not stay open (an open incident would hold back every later alert for its target).
        store.save(incident)
        try:
            notify(
                "escalated" if incident.escalated else "closed",
                f"outcome {outcome.value}" + (f": {escalate}" if escalate else ""),
            )
            archived = run_step(archive_incident, policy(Step.ARCHIVE), ctx, incident)
            incident.apply(archived)
            incident.report_path = str(archived.data["report_path"])
            incident.related = list(archived.data.get("related", []))
            kb.write(incident)
        except Exception as exc:  # Exception only: Prefect's signals (BaseException) pass through
            code = exc.code if isinstance(exc, LlmedicError) else StepFailed.code
            reason = f"finishing the incident failed: {type(exc).__name__}: {exc}"
            log_unexpected(reason, exc)
            incident.decisions.append(Decision(topic="error", choice=code, reason=reason))
            incident.escalate(
                f"{incident.escalation_reason}; {code}: {reason}"
                if incident.escalation_reason
                else f"{code}: {reason}"
            )
            try:  # the team hears of the escalation, unless sending is what broke
                notify("escalated", f"outcome {outcome.value}: {incident.escalation_reason}")
            except Exception as again:
                incident.decisions.append(
                    Decision(topic="notify", choice="failed", reason=f"{type(again).__name__}: {again}")
                )
            try:  # the knowledge-base copy without the Prefect artifact, if the disk takes it
                kept = kb.archive(incident)
                incident.report_path, incident.related = kept.report_path, kept.related
            except Exception as again:  # the record below still says the incident ended escalated
                incident.decisions.append(
                    Decision(topic="archive", choice="failed", reason=f"{type(again).__name__}: {again}")
                )
        store.save(incident)
        return _summary(incident)

    try:
        confirmed = step(plan.confirm, Step.CONFIRM)
        if not confirmed.data.get("confirmed"):
            return finish(Outcome.FALSE_POSITIVE)
        assessed = step(plan.assess, Step.ASSESS, confirm=confirmed.data)
        incident.scope = str(assessed.data.get("scope", ""))
        incident.impact = str(assessed.data.get("impact", ""))
        notify("opened", f"{incident.title}; {incident.impact}")
        evidence = step(plan.evidence, Step.EVIDENCE, confirmed.data, assessed.data)
        diagnosis = str(evidence.data.get("diagnosis", "unknown"))
        incident.diagnosis = f"{diagnosis}: {evidence.data.get('reason', '')}"
        fix = playbook.fix_for(diagnosis)
        if fix is None:
            incident.decisions.append(
                Decision(
                    topic="fix", choice="none", reason=f"the playbook has no fix for diagnosis {diagnosis!r}"
                )
            )
            return finish(Outcome.ESCALATED, f"no fix in the playbook for diagnosis {diagnosis!r}")
        incident.decisions.append(
            Decision(
                topic="fix", choice=fix.name, reason=f"first fix for {diagnosis!r}; risk {fix.risk.value}"
            )
        )
        isolated = step(plan.isolate, Step.ISOLATE, evidence.data)
        step(plan.reproduce, Step.REPRODUCE)
        if ctx.dry_run:
            step(apply_fix, Step.FIX, fix, None)
            return finish(Outcome.DRY_RUN)
        approval = None
        if playbook.approval.needs_approval(fix.risk):
            gate = step(open_gate, Step.APPROVE, fix, playbook.approval)
            incident.notifications.extend(
                NotificationRecord.model_validate(n) for n in gate.data.get("code_notifications", [])
            )
            pending: dict[str, Any] = {
                "action": fix.name,
                "risk": fix.risk.value,
                "requested_at": gate.data["requested_at"],
                "deadline": gate.data["deadline"],
                "flow_run_id": flow_run_id,
                "nonce": gate.data["gate"]["nonce"],
                "approvers": list(playbook.approval.approvers),
                "codes_sent_to": sorted(gate.data["gate"]["code_digests"]),
                "refused_attempts": 0,
            }
            incident.pending_approval = dict(pending)
            store.save(incident)
            notify(
                "approval",
                f"approve {fix.name} ({fix.risk.value} risk) before {gate.data['deadline']}: "
                f"llmedic approve {flow_run_id} --by NAME"
                + (
                    " (with your token), or the one-time code sent to you"
                    if playbook.approval.approvers
                    else ""
                ),
            )

            def refused(attempt: ApprovalRecord) -> None:
                # Recorded and shown, never a rejection: anyone can type garbage into the form.
                incident.approvals.append(attempt)
                pending["refused_attempts"] += 1
                pending["last_refused"] = f"{attempt.by}: {attempt.refused}"
                incident.pending_approval = dict(pending)
                store.save(incident)

            approval = wait_for_decision(ctx, playbook, incident, fix, gate.data, refused)
            incident.approvals.append(approval)
            incident.pending_approval = None
            how = f", verified by {approval.identity}" if approval.verified else ", unverified"
            incident.timeline.append(
                StepRecord(
                    step=Step.APPROVE,
                    started_at=approval.requested_at,
                    finished_at=approval.decided_at,
                    status="ok",
                    summary=f"{'approved' if approval.approved else 'rejected'} by {approval.by} via {approval.via}{how}"
                    + (f": {approval.comment}" if approval.comment else ""),
                )
            )
            store.save(incident)
            if not approval.approved:
                reasons = {
                    "timeout": f"no decision on {fix.name} before the deadline",
                    "policy": f"{playbook.approval.max_attempts} refused approval attempts on {fix.name}",
                }
                reason = reasons.get(approval.via)
                if isolated.data.get("isolated"):
                    incident.decisions.append(
                        Decision(
                            topic="isolation",
                            choice="kept",
                            reason=f"{ctx.target} stays drained until a human acts",
                        )
                    )
                return finish(Outcome.REJECTED, reason)
        fixed = step(apply_fix, Step.FIX, fix, approval)
        verified = step(plan.verify, Step.VERIFY, confirm=confirmed.data)
        if not verified.verification or not verified.verification.passed:
            applied = fixed.actions[0]
            undo = step(compensate, Step.ROLLBACK, applied)
            for a in incident.actions:
                if a.name == applied.name and a.at == applied.at:
                    a.compensated = undo.status == "ok"
                    a.compensated_at = undo.finished_at
            return finish(
                Outcome.FAILED_ROLLED_BACK, f"{VerificationFailed.code}: after {fix.name}: {verified.summary}"
            )
        step(plan.release, Step.RECOVER, bool(isolated.data.get("isolated")))
        return finish(Outcome.RESOLVED)
    except LlmedicError as exc:
        incident.decisions.append(Decision(topic="error", choice=exc.code, reason=str(exc)))
        return finish(Outcome.ESCALATED, f"{exc.code}: {exc.message}")
    except Exception as exc:
        # Anything else a step raised (a task past its timeout, a library's exception, a bug) ends
        # the incident the same way. Exception, never BaseException: Prefect's Pause (a suspended
        # gate), Abort, TerminationSignal and its CancelledError must reach the engine untouched.
        where = f"step {running[0].value}" if running else "the response process"
        reason = f"{where} raised {type(exc).__name__}: {exc}"
        log_unexpected(reason, exc)
        incident.decisions.append(Decision(topic="error", choice=StepFailed.code, reason=reason))
        return finish(Outcome.ESCALATED, f"{StepFailed.code}: {reason}")
