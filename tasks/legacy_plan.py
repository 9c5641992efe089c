"""Transitional (issue 15): the response process for an anomaly type whose step tasks have not yet
moved into a home. Its flow hands its own tasks over in a :class:`ResponsePlan`; their results carry
their figures in ``StepResult.data``, read here once, by key, into the typed results
:mod:`tasks.respond` reads. Deleted when the last anomaly type has a home.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from prefect import Task

from llmedic.anomalies import diagnosis_of
from llmedic.anomalies.base import (
    Assessment,
    Confirmation,
    Findings,
    Isolation,
    Reproduction,
    VerificationResult,
)
from llmedic.incident import Step, StepResult
from llmedic.playbook import Playbook
from llmedic.store.incidents import IncidentStore
from llmedic.store.knowledge import KnowledgeBase
from tasks.respond import Response
from tasks.runtime import StepContext

__all__ = ["LegacyResponse", "ResponsePlan"]

T = TypeVar("T", bound=StepResult)


@dataclass(frozen=True)
class ResponsePlan:
    """The anomaly-specific step tasks a flow not yet moved onto a home hands to ``respond``."""

    confirm: Task[..., StepResult]
    assess: Task[..., StepResult]
    evidence: Task[..., StepResult]
    isolate: Task[..., StepResult]
    reproduce: Task[..., StepResult]
    verify: Task[..., StepResult]
    release: Task[..., StepResult]


def _typed(result: StepResult, cls: type[T], **fields: Any) -> T:
    """``result`` as ``cls`` (already one: as it is)."""
    if isinstance(result, cls):
        return result
    record = {k: getattr(result, k) for k in StepResult.model_fields if k != "data"}
    return cls.model_validate({**record, **fields})


class LegacyResponse(Response):
    """The response process over a :class:`ResponsePlan`'s tasks (they read each other's ``data``)."""

    def __init__(
        self,
        incident: Any,
        ctx: StepContext,
        playbook: Playbook,
        store: IncidentStore,
        kb: KnowledgeBase,
        plan: ResponsePlan,
    ) -> None:
        super().__init__(incident, ctx, playbook, store, kb)
        self.plan = plan
        self.raw: dict[Step, dict[str, Any]] = {}

    def _run(self, t: Task[..., StepResult], s: Step, *args: Any, **kwargs: Any) -> StepResult:
        result = self.step(t, s, *args, **kwargs)
        self.raw[s] = dict(getattr(result, "data", {}) or {})
        return result

    def confirm(self) -> Confirmation:
        r = self._run(self.plan.confirm, Step.CONFIRM)
        return _typed(r, Confirmation, confirmed=bool(self.raw[Step.CONFIRM].get("confirmed")))

    def assess(self, confirmed: Confirmation) -> Assessment:
        r = self._run(self.plan.assess, Step.ASSESS, confirm=self.raw[Step.CONFIRM])
        d = self.raw[Step.ASSESS]
        return _typed(r, Assessment, scope=str(d.get("scope", "")), impact=str(d.get("impact", "")))

    def evidence(self, confirmed: Confirmation, assessed: Assessment) -> Findings:
        r = self._run(self.plan.evidence, Step.EVIDENCE, self.raw[Step.CONFIRM], self.raw[Step.ASSESS])
        d = self.raw[Step.EVIDENCE]
        diagnosis = diagnosis_of(self.ctx.anomaly)(str(d.get("diagnosis", "unknown")))
        return _typed(r, Findings, diagnosis=diagnosis, reason=str(d.get("reason", "")))

    def isolate(self, found: Findings) -> Isolation:
        r = self._run(self.plan.isolate, Step.ISOLATE, self.raw[Step.EVIDENCE])
        return _typed(r, Isolation, isolated=bool(self.raw[Step.ISOLATE].get("isolated")))

    def reproduce(self) -> Reproduction:
        r = self._run(self.plan.reproduce, Step.REPRODUCE)
        return _typed(r, Reproduction, reproduced=bool(self.raw[Step.REPRODUCE].get("reproduced")))

    def verify(self, confirmed: Confirmation) -> VerificationResult:
        r = self._run(self.plan.verify, Step.VERIFY, confirm=self.raw[Step.CONFIRM])
        passed = r.verification is not None and r.verification.passed
        return _typed(r, VerificationResult, passed=passed)

    def release(self, isolated: bool) -> StepResult:
        return self._run(self.plan.release, Step.RECOVER, isolated)
