"""The guide's response process, shared by every anomaly flow.

detect & confirm → assess impact & route → collect evidence → choose a fix → isolate → reproduce →
(approval gate, for risky fixes) → fix → verify → recover and watch; when verification fails: roll
back, re-assess and try the next fix (``remediation.max_attempts``); when no fix can be applied or
none worked: contain (the failing instance out of rotation when the others carry the traffic) and
escalate saying what a human must do → archive with a post-mortem. A flow only wires: it calls ``respond(AnomalyType.X, request)``; each
step task (``tasks/confirm.py`` ...) calls into the anomaly type's home (``llmedic.anomalies``), and
this module reads the steps' typed results (``llmedic.anomalies.base``), never a key in a dict. The
order, the gate, the compensation and the record are the same for every anomaly type.
"""

from __future__ import annotations

from typing import Any, TypeVar

from prefect import Task
from prefect.context import FlowRunContext

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
    FixAttempt,
    Incident,
    IncidentRequest,
    Outcome,
    Step,
    StepResult,
)
from llmedic.playbook import FixOption, Playbook, load_playbook
from llmedic.store.incidents import IncidentStore
from llmedic.store.knowledge import KnowledgeBase
from tasks.archive import archive_incident
from tasks.assess import assess
from tasks.confirm import confirm
from tasks.detect import log_unexpected, open_incident, record_unopened
from tasks.evidence import evidence
from tasks.fix import apply_fix, compensate
from tasks.gating import ask_approval
from tasks.isolate import contain, isolate, release
from tasks.notify import notification_of, notify_team
from tasks.reproduce import reproduce
from tasks.runtime import StepContext, run_step
from tasks.summary import IncidentSummary, summary_of, to_state
from tasks.verify import reassess, verify, watch

__all__ = ["IncidentSummary", "Response", "respond", "summary_of", "to_state"]

R = TypeVar("R", bound=StepResult)


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
        self.found: tuple[Findings, str] | None = None
        """The latest diagnosis and the assessed scope: what containment acts on."""

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

    def verify(self, confirmed: Confirmation, attempt: int) -> VerificationResult:
        return self.step(verify, Step.VERIFY, confirmed, attempt)

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
            return self.finish(Outcome.ESCALATED, self._contained(f"{exc.code}: {exc.message}"))
        except Exception as exc:
            # Anything else a step raised (a task past its timeout, a library's exception, a bug)
            # ends the incident the same way. Exception, never BaseException: Prefect's Pause (a
            # suspended gate), Abort, TerminationSignal and its CancelledError must reach the engine.
            where = f"step {self.running[0].value}" if self.running else "the response process"
            reason = f"{where} raised {type(exc).__name__}: {exc}"
            log_unexpected(reason, exc)
            self.incident.decisions.append(Decision(topic="error", choice=StepFailed.code, reason=reason))
            return self.finish(Outcome.ESCALATED, self._contained(f"{StepFailed.code}: {reason}"))

    def _choose(self, found: Findings, tried: frozenset[str] = frozenset()) -> FixOption | None:
        """The playbook's first fix for the diagnosis not tried yet (recorded either way)."""
        incident = self.incident
        diagnosis = str(found.diagnosis.value)
        incident.diagnosis = f"{diagnosis}: {found.reason}"
        fix = self.playbook.fix_for(diagnosis, tried)
        untried = f" not tried yet (tried: {', '.join(sorted(tried))})" if tried else ""
        if fix is None:
            incident.decisions.append(
                Decision(
                    topic="fix",
                    choice="none",
                    reason=f"the playbook has no fix for diagnosis {diagnosis!r}{untried}",
                )
            )
            return None
        incident.decisions.append(
            Decision(
                topic="fix",
                choice=fix.name,
                reason=f"first fix for {diagnosis!r}{untried}; risk {fix.risk.value}",
            )
        )
        return fix

    def _contained(self, reason: str, why: str = "") -> str:
        """Containment before an escalation: ``reason`` plus what was contained and what a human
        must do. Never raises (it runs on the error path too): a containment that fails is said."""
        if self.found is None:  # nothing diagnosed yet: nothing known to contain
            return reason
        found, scope = self.found
        human = found.human_action or f"look into the diagnosis {found.diagnosis.value!r}"
        try:
            held = self.step(contain, Step.ISOLATE, found, scope, why or reason)
        except Exception as exc:  # Exception only: Prefect's signals (BaseException) pass through
            log_unexpected(f"containment failed: {type(exc).__name__}: {exc}", exc)
            return f"{reason}; containment failed ({type(exc).__name__}: {exc}); a human must {human}"
        if held.isolated:
            return f"{reason}; {held.summary}; a human must {human}"
        if held.status == "skipped" and held.summary.startswith("not contained"):
            return f"{reason}; {held.summary}; a human must {human}"
        return f"{reason}; a human must {human}"

    def _steps(self) -> IncidentSummary:
        incident, ctx = self.incident, self.ctx
        confirmed = self.confirm()
        if not confirmed.confirmed:
            return self.finish(Outcome.FALSE_POSITIVE)
        assessed = self.assess(confirmed)
        incident.scope, incident.impact = assessed.scope, assessed.impact
        from llmedic.receiver.grouping import after_assess  # one incident per cause

        after_assess(incident, self.store, settings_from_env())
        self.notify("opened", f"{incident.title}; {incident.impact}")
        found = self.evidence(confirmed, assessed)
        self.found = (found, assessed.scope)
        fix = self._choose(found)
        if fix is None:
            why = f"no fix in the playbook for diagnosis {found.diagnosis.value!r}"
            return self.finish(Outcome.ESCALATED, self._contained(why))
        isolated = self.isolate(found)
        self.reproduce()
        if ctx.dry_run:
            self.step(apply_fix, Step.FIX, fix, None)
            return self.finish(Outcome.DRY_RUN)
        return self._remediate(confirmed, assessed, fix, isolated.isolated)

    def _remediate(
        self, confirmed: Confirmation, assessed: Assessment, fix: FixOption, isolated: bool
    ) -> IncidentSummary:
        """Try fixes until one is verified, up to ``remediation.max_attempts``: after a failed
        verification, compensate, re-assess and take the next untried fix for the new diagnosis."""
        most = self.playbook.remediation.max_attempts
        tried: list[str] = []
        for number in range(1, most + 1):
            attempt, approval = self._attempt(number, fix, confirmed)
            tried.append(fix.name)
            if attempt.result == "resolved":
                self.release(isolated)
                return self._watch(confirmed)
            if attempt.result == "rejected" and approval is not None:
                return self._rejected(fix, approval, isolated)
            if attempt.result == "fix_failed":
                return self.finish(Outcome.ESCALATED, self._contained(attempt.summary))
            last = f"{VerificationFailed.code}: after {fix.name}: {attempt.summary}"
            if len(tried) > 1:
                last += f" (fixes tried: {', '.join(tried)})"
            if number == most:
                self.incident.decisions.append(
                    Decision(
                        topic="fix", choice="stop", reason=f"{most} fix(es) tried (remediation.max_attempts)"
                    )
                )
                return self.finish(Outcome.FAILED_ROLLED_BACK, self._contained(last))
            found = self.step(reassess, Step.EVIDENCE, confirmed, assessed, number + 1)
            self.found = (found, assessed.scope)
            nxt = self._choose(found, frozenset(tried))
            if nxt is None:
                return self.finish(Outcome.FAILED_ROLLED_BACK, self._contained(last))
            if not isolated:  # the new diagnosis may call for a drain the first one did not
                isolated = self.isolate(found).isolated
            fix = nxt
        raise AssertionError("unreachable: the loop returns on its last attempt")  # pragma: no cover

    def _attempt(
        self, number: int, fix: FixOption, confirmed: Confirmation
    ) -> tuple[FixAttempt, ApprovalRecord | None]:
        """One fix: its gate (its own: the gate's keys name the fix), the fix, its verification,
        its compensation when verification fails; recorded on the incident."""
        incident = self.incident
        record = FixAttempt(
            number=number,
            fix=fix.name,
            action=fix.action,
            risk=fix.risk,
            diagnosis=incident.diagnosis,
            result="resolved",
        )
        approval = None
        if self.playbook.approval.needs_approval(fix.risk):
            approval = self._approval(fix)
            verdict = "approved" if approval.approved else "rejected"
            record = record.model_copy(update={"approval": f"{verdict} by {approval.by}"})
            if not approval.approved:
                return self._record(
                    record, "rejected", f"{verdict} by {approval.by} via {approval.via}"
                ), approval
        try:
            fixed = self.step(apply_fix, Step.FIX, fix, approval, confirmed)
        except LlmedicError as exc:  # refused by a safety rule, or failed: nothing to undo is known
            incident.decisions.append(Decision(topic="error", choice=exc.code, reason=str(exc)))
            return self._record(record, "fix_failed", f"{exc.code}: {exc.message}"), approval
        # A fleet fix whose canary failed: the canary's verification is the fix's (canary undone).
        verified = fixed.canary_failed or self.verify(confirmed, number)
        if verified.passed:
            return self._record(record, "resolved", verified.summary), approval
        applied = fixed.action
        undo = self.step(compensate, Step.ROLLBACK, applied)
        for a in incident.actions:
            if a.name == applied.name and a.at == applied.at:
                a.compensated = undo.status == "ok"
                a.compensated_at = undo.finished_at
        record = record.model_copy(update={"compensated": undo.status == "ok"})
        return self._record(record, "verification_failed", verified.summary), approval

    def _record(self, attempt: FixAttempt, result: str, summary: str) -> FixAttempt:
        """Put ``attempt`` with its result on the incident (saved)."""
        done = attempt.model_copy(update={"result": result, "summary": summary})
        self.incident.attempts.append(done)
        self.store.save(self.incident)
        return done

    def _watch(self, confirmed: Confirmation) -> IncidentSummary:
        """After recovery, re-run the verification for ``remediation.watch_seconds``; the incident
        stays open meanwhile (an alert on its target joins it). A relapse continues the timeline,
        is contained and escalates; a clean watch resolves."""
        policy, incident = self.playbook.remediation, self.incident
        rounds = policy.watch_rounds
        if not rounds:
            return self.finish(Outcome.RESOLVED)
        incident.decisions.append(
            Decision(
                topic="watch",
                choice=f"{rounds} round(s)",
                reason=f"re-verify every {policy.watch_interval_seconds:g}s for {policy.watch_seconds:g}s after recovery",
            )
        )
        verify_policy = self.playbook.step_policy(Step.VERIFY)  # a round: the pause + a verification
        timeout = {"timeout_seconds": verify_policy.timeout_seconds + policy.watch_interval_seconds}
        step_policy = self.playbook.steps.get(Step.WATCH) or verify_policy.model_copy(update=timeout)
        for k in range(1, rounds + 1):
            self.running[:] = [Step.WATCH]
            held = run_step(watch, step_policy, self.ctx, confirmed, k, rounds, policy.watch_interval_seconds)
            self.running.clear()
            incident.apply(held)
            self.store.save(incident)
            if not held.passed:
                last = incident.attempts[-1]
                incident.attempts[-1] = last.model_copy(
                    update={"result": "relapsed", "summary": f"{last.summary}; relapsed: {held.summary}"}
                )
                incident.decisions.append(
                    Decision(topic="watch", choice="relapse", reason=f"after {last.fix}: {held.summary}")
                )
                why = f"{VerificationFailed.code}: relapsed after {last.fix} (watch {k}/{rounds}): {held.summary}"
                return self.finish(Outcome.ESCALATED, self._contained(why, why="relapse"))
        return self.finish(Outcome.RESOLVED)

    def _approval(self, fix: FixOption) -> ApprovalRecord:
        """Open the approval gate for ``fix`` and wait for the decision (``tasks/gating.py``)."""
        return ask_approval(self, fix)

    def _rejected(self, fix: FixOption, approval: ApprovalRecord, isolated: bool) -> IncidentSummary:
        """A rejected (or timed-out, or refused too often) fix: the incident ends rejected."""
        reasons = {
            "timeout": f"no decision on {fix.name} before the deadline",
            "policy": f"{self.playbook.approval.max_attempts} refused approval attempts on {fix.name}",
        }
        if isolated:
            self.incident.decisions.append(
                Decision(
                    topic="isolation",
                    choice="kept",
                    reason=f"{self.ctx.target} stays drained until a human acts",
                )
            )
        else:  # the fix will not run: the broken instance must not serve while a human is awaited
            line = self._contained(f"{fix.name} {'timed out' if approval.via == 'timeout' else 'rejected'}")
            self.incident.decisions.append(Decision(topic="containment", choice="on rejection", reason=line))
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
