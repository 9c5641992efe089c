"""The guide's response process, shared by every anomaly flow.

detect & confirm → assess impact & route → collect evidence → choose a fix → isolate → reproduce →
(approval gate, for risky fixes) → fix → verify → recover, or roll back when verification fails →
archive with a post-mortem. A flow only wires: it calls ``respond(AnomalyType.X, request)``; each
step task (``tasks/confirm.py`` ...) calls into the anomaly type's home (``llmedic.anomalies``), and
this module reads the steps' typed results (``llmedic.anomalies.base``), never a key in a dict. The
order, the gate, the compensation and the record are the same for every anomaly type.
"""

from __future__ import annotations

from typing import Any, TypeVar

from prefect import Task
from prefect.client.schemas.objects import State
from prefect.context import FlowRunContext
from prefect.states import Completed, Failed
from pydantic import BaseModel

from llmedic.anomalies.base import (
    Assessment,
    Confirmation,
    Findings,
    Isolation,
    Recovery,
    Reproduction,
    VerificationResult,
)
from llmedic.catalog import AnomalyType
from llmedic.config import settings_from_env
from llmedic.errors import LlmedicError, StepFailed, VerificationFailed
from llmedic.incident import (
    ApprovalRecord,
    Decision,
    Incident,
    IncidentRequest,
    Outcome,
    Step,
    StepRecord,
    StepResult,
)
from llmedic.playbook import FixOption, Playbook, load_playbook
from llmedic.store.incidents import IncidentStore
from llmedic.store.knowledge import KnowledgeBase
from tasks.approve import open_gate, wait_for_decision
from tasks.archive import archive_incident
from tasks.assess import assess
from tasks.confirm import confirm
from tasks.detect import log_unexpected, open_incident, record_unopened
from tasks.evidence import evidence
from tasks.fix import apply_fix, compensate
from tasks.isolate import isolate, release
from tasks.notify import notification_of, notify_team
from tasks.reproduce import reproduce
from tasks.runtime import StepContext, run_step
from tasks.verify import verify

__all__ = ["IncidentSummary", "Response", "respond", "summary_of", "to_state"]

R = TypeVar("R", bound=StepResult)


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


def summary_of(incident: Incident) -> IncidentSummary:
    """The summary of an incident."""
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


class Response:
    """One incident's way through the response process: the steps in order, each result folded into
    the incident and saved before the next step runs."""

    def __init__(
        self,
        incident: Incident,
        ctx: StepContext,
        playbook: Playbook,
        store: IncidentStore,
        kb: KnowledgeBase,
    ) -> None:
        self.incident, self.ctx, self.playbook, self.store, self.kb = incident, ctx, playbook, store, kb
        self.running: list[Step] = []
        """The step under way, so an unexpected error can say where it happened."""

    # --- the steps (each a task calling into the anomaly type's home) ----------------------------

    def confirm(self) -> Confirmation:
        return self.step(confirm, Step.CONFIRM)

    def assess(self, confirmed: Confirmation) -> Assessment:
        return self.step(assess, Step.ASSESS, confirmed)

    def evidence(self, confirmed: Confirmation, assessed: Assessment) -> Findings:
        return self.step(evidence, Step.EVIDENCE, confirmed, assessed)

    def isolate(self, found: Findings) -> Isolation:
        return self.step(isolate, Step.ISOLATE, found)

    def reproduce(self) -> Reproduction:
        return self.step(reproduce, Step.REPRODUCE)

    def verify(self, confirmed: Confirmation) -> VerificationResult:
        return self.step(verify, Step.VERIFY, confirmed)

    def release(self, isolated: bool) -> StepResult:
        result: Recovery = self.step(release, Step.RECOVER, isolated)
        return result

    # --- the process -----------------------------------------------------------------------------

    def step(self, t: Task[..., R], s: Step, *args: Any, **kwargs: Any) -> R:
        """Run a step task with the playbook's policy, fold its result in and save the incident."""
        self.running[:] = [s]
        result = run_step(t, self.playbook.step_policy(s), self.ctx, *args, **kwargs)
        self.running.clear()
        self.incident.apply(result)
        self.store.save(self.incident)
        return result

    def notify(self, kind: str, message: str) -> None:
        """Tell the incident's team; the delivery is recorded on the incident."""
        res = notify_team(self.ctx, kind, message)
        self.incident.notifications.append(notification_of(res))

    def run(self) -> IncidentSummary:
        """Every way through ends the incident (see :func:`respond`)."""
        try:
            return self._steps()
        except LlmedicError as exc:
            self.incident.decisions.append(Decision(topic="error", choice=exc.code, reason=str(exc)))
            return self.finish(Outcome.ESCALATED, f"{exc.code}: {exc.message}")
        except Exception as exc:
            # Anything else a step raised (a task past its timeout, a library's exception, a bug)
            # ends the incident the same way. Exception, never BaseException: Prefect's Pause (a
            # suspended gate), Abort, TerminationSignal and its CancelledError must reach the engine.
            where = f"step {self.running[0].value}" if self.running else "the response process"
            reason = f"{where} raised {type(exc).__name__}: {exc}"
            log_unexpected(reason, exc)
            self.incident.decisions.append(Decision(topic="error", choice=StepFailed.code, reason=reason))
            return self.finish(Outcome.ESCALATED, f"{StepFailed.code}: {reason}")

    def _choose(self, found: Findings) -> FixOption | None:
        """The playbook's first fix for the diagnosis (recorded either way)."""
        incident = self.incident
        diagnosis = str(found.diagnosis.value)
        incident.diagnosis = f"{diagnosis}: {found.reason}"
        fix = self.playbook.fix_for(diagnosis)
        if fix is None:
            incident.decisions.append(
                Decision(
                    topic="fix", choice="none", reason=f"the playbook has no fix for diagnosis {diagnosis!r}"
                )
            )
            return None
        incident.decisions.append(
            Decision(
                topic="fix", choice=fix.name, reason=f"first fix for {diagnosis!r}; risk {fix.risk.value}"
            )
        )
        return fix

    def _steps(self) -> IncidentSummary:
        incident, ctx = self.incident, self.ctx
        confirmed = self.confirm()
        if not confirmed.confirmed:
            return self.finish(Outcome.FALSE_POSITIVE)
        assessed = self.assess(confirmed)
        incident.scope, incident.impact = assessed.scope, assessed.impact
        self.notify("opened", f"{incident.title}; {incident.impact}")
        found = self.evidence(confirmed, assessed)
        fix = self._choose(found)
        if fix is None:
            return self.finish(
                Outcome.ESCALATED, f"no fix in the playbook for diagnosis {found.diagnosis.value!r}"
            )
        isolated = self.isolate(found)
        self.reproduce()
        if ctx.dry_run:
            self.step(apply_fix, Step.FIX, fix, None)
            return self.finish(Outcome.DRY_RUN)
        approval = None
        if self.playbook.approval.needs_approval(fix.risk):
            approval = self._approval(fix)
            if not approval.approved:
                return self._rejected(fix, approval, isolated)
        fixed = self.step(apply_fix, Step.FIX, fix, approval)
        verified = self.verify(confirmed)
        if not verified.passed:
            applied = fixed.action
            undo = self.step(compensate, Step.ROLLBACK, applied)
            for a in incident.actions:
                if a.name == applied.name and a.at == applied.at:
                    a.compensated = undo.status == "ok"
                    a.compensated_at = undo.finished_at
            return self.finish(
                Outcome.FAILED_ROLLED_BACK, f"{VerificationFailed.code}: after {fix.name}: {verified.summary}"
            )
        self.release(isolated.isolated)
        return self.finish(Outcome.RESOLVED)

    def _approval(self, fix: FixOption) -> ApprovalRecord:
        """Open the approval gate for ``fix`` and wait for the decision (the flow suspends or pauses)."""
        incident, store, playbook, flow_run_id = (
            self.incident,
            self.store,
            self.playbook,
            self.ctx.flow_run_id,
        )
        gate = self.step(open_gate, Step.APPROVE, fix, playbook.approval)
        incident.notifications.extend(gate.code_notifications)
        pending: dict[str, Any] = {
            "action": fix.name,
            "risk": fix.risk.value,
            "requested_at": gate.requested_at.isoformat(),
            "deadline": gate.deadline.isoformat(),
            "flow_run_id": flow_run_id,
            "nonce": gate.nonce,
            "approvers": list(playbook.approval.approvers),
            "codes_sent_to": gate.codes_sent_to,
            "refused_attempts": 0,
        }
        incident.pending_approval = dict(pending)
        store.save(incident)
        self.notify(
            "approval",
            f"approve {fix.name} ({fix.risk.value} risk) before {gate.deadline.isoformat()}: "
            f"llmedic approve {flow_run_id} --by NAME"
            + (" (with your token), or the one-time code sent to you" if playbook.approval.approvers else ""),
        )

        def refused(attempt: ApprovalRecord) -> None:
            # Recorded and shown, never a rejection: anyone can type garbage into the form.
            incident.approvals.append(attempt)
            pending["refused_attempts"] += 1
            pending["last_refused"] = f"{attempt.by}: {attempt.refused}"
            incident.pending_approval = dict(pending)
            store.save(incident)

        approval = wait_for_decision(self.ctx, playbook, incident, fix, gate, refused)
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
        return approval

    def _rejected(self, fix: FixOption, approval: ApprovalRecord, isolated: Isolation) -> IncidentSummary:
        """A rejected (or timed-out, or refused too often) fix: the incident ends rejected."""
        reasons = {
            "timeout": f"no decision on {fix.name} before the deadline",
            "policy": f"{self.playbook.approval.max_attempts} refused approval attempts on {fix.name}",
        }
        if isolated.isolated:
            self.incident.decisions.append(
                Decision(
                    topic="isolation",
                    choice="kept",
                    reason=f"{self.ctx.target} stays drained until a human acts",
                )
            )
        return self.finish(Outcome.REJECTED, reasons.get(approval.via))

    def finish(self, outcome: Outcome, escalate: str | None = None) -> IncidentSummary:
        """Close the incident with ``outcome``, tell the team, archive the report."""
        incident, store = self.incident, self.store
        if escalate:
            incident.escalate(escalate)
        incident.close(outcome)
        incident.resolved_alerts = store.resolved_notices(self.ctx.flow_run_id)
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
            self.notify(
                "escalated" if incident.escalated else "closed",
                f"outcome {outcome.value}" + (f": {escalate}" if escalate else ""),
            )
            archived = run_step(archive_incident, self.playbook.step_policy(Step.ARCHIVE), self.ctx, incident)
            incident.apply(archived)
            incident.report_path, incident.related = archived.report_path, list(archived.related)
            self.kb.write(incident)
        except Exception as exc:  # Exception only: Prefect's signals (BaseException) pass through
            self._finishing_failed(outcome, exc)
        store.save(incident)
        return summary_of(incident)

    def _finishing_failed(self, outcome: Outcome, exc: Exception) -> None:
        """Telling the team or archiving failed: escalate, and keep what can still be kept."""
        incident = self.incident
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
            self.notify("escalated", f"outcome {outcome.value}: {incident.escalation_reason}")
        except Exception as again:
            incident.decisions.append(
                Decision(topic="notify", choice="failed", reason=f"{type(again).__name__}: {again}")
            )
        try:  # the knowledge-base copy without the Prefect artifact, if the disk takes it
            kept = self.kb.archive(incident)
            incident.report_path, incident.related = kept.report_path, kept.related
        except Exception as again:  # the record below still says the incident ended escalated
            incident.decisions.append(
                Decision(topic="archive", choice="failed", reason=f"{type(again).__name__}: {again}")
            )


def respond(anomaly: AnomalyType, request: IncidentRequest) -> IncidentSummary:
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
    store = IncidentStore(home)
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
        return summary_of(earlier)
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
        unopened = record_unopened(
            anomaly, request, flow_run_id, settings.model_copy(update={"home": home}), exc
        )
        return summary_of(unopened)
    store.save(incident)
    return Response(incident, ctx, playbook, store, KnowledgeBase(home)).run()
