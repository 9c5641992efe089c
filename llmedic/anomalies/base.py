"""The contract between the response process (``tasks/respond.py``) and an anomaly type's home.

Every step returns a pydantic model: a :class:`~llmedic.incident.StepResult` (the record part the
incident folds in: timeline, evidence, decisions, actions, verification) plus the typed figures a
later step reads. The response process reads only the fields declared here (``confirmed``,
``scope``, ``impact``, ``diagnosis``, ``isolated``, ...); a home subclasses each result with its own
typed figures and its own steps read those, never a key in a dict.

A home is a :class:`Home`: the anomaly type's ``Diagnosis`` enum and its seven step functions, each
a plain function of a :class:`~llmedic.anomalies.runtime.Runtime` (no Prefect, no ``tasks/``).
``llmedic.anomalies.home_of`` finds the home of an anomaly type; the step tasks in ``tasks/`` call
into it.

Results are persisted by Prefect (pickle) and cached per flow run: a run resumed after a suspended
approval gets these very objects back, so they hold plain data only (no adapters, no handles).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from llmedic.incident import NotificationRecord, StepResult

if TYPE_CHECKING:
    from llmedic.anomalies.runtime import Runtime

__all__ = [
    "Archived",
    "Assessment",
    "Confirmation",
    "Findings",
    "Home",
    "Isolation",
    "Notified",
    "Recovery",
    "Reproduction",
    "VerificationResult",
]


class Confirmation(StepResult):
    """Step 1 — detect & confirm: is the anomaly real, by an independent signal?"""

    confirmed: bool
    """False closes the incident as a false positive."""


class Assessment(StepResult):
    """Step 2 — assess impact & route."""

    scope: str
    """How far it reaches (``instance``, ``fleet``, ``column``, ``dataset``, ...): on the incident."""
    impact: str
    """One line for the incident and the team's notification."""
    team: str = ""
    """The team it is routed to."""


class Findings(StepResult):
    """Step 3 — collect evidence & locate: the diagnosis the playbook maps to a fix."""

    diagnosis: StrEnum
    """A member of the home's ``Diagnosis`` enum (subclasses narrow the type)."""
    reason: str
    """Why: the figures behind the diagnosis, in a sentence."""
    human_action: str = ""
    """What a human must do when llmedic cannot fix it (e.g. ``reboot or replace node gpu-3``),
    said in the escalation; empty: look into the diagnosis."""


class Isolation(StepResult):
    """Step 4 — isolate: keep the problem from hurting users while it is reproduced and fixed."""

    isolated: bool = False
    """True when something was taken out of rotation (recovery puts it back; a rejected fix keeps it)."""


class Reproduction(StepResult):
    """Step 5 — reproduce: the problem shown again before anything changes."""

    reproduced: bool = False


class VerificationResult(StepResult):
    """Step 7 — verify: did the fix bring the service back within its criteria?

    ``verification`` (on :class:`StepResult`) holds the checks; ``passed`` is their verdict."""

    passed: bool


class Recovery(StepResult):
    """Step 7b — recover: what isolation took out of rotation is back (or why it stays out)."""


class Archived(StepResult):
    """Step 8 — archive: where the report went and the earlier incidents it links to."""

    report_path: str
    related: list[str] = []


class Notified(StepResult):
    """A notification to the incident's team: what reached whom."""

    delivery: NotificationRecord


C = TypeVar("C", bound=Confirmation)
A = TypeVar("A", bound=Assessment)
F = TypeVar("F", bound=Findings)


@dataclass(frozen=True)
class Home(Generic[C, A, F]):
    """One anomaly type's behaviour: its diagnoses and the functions behind each response step.

    Generic over the home's own confirmation, assessment and findings, so that its evidence step
    reads its confirmation's typed figures (``Home[LatencyConfirmation, LatencyAssessment,
    LatencyFindings]``). The response process sees only the base classes."""

    diagnosis: type[StrEnum]
    """The closed set of diagnoses its evidence step ends with (the names a playbook's ``when`` may use)."""
    confirm: Callable[[Runtime], C]
    assess: Callable[[Runtime, C], A]
    evidence: Callable[[Runtime, C, A], F]
    isolate: Callable[[Runtime, F], Isolation]
    reproduce: Callable[[Runtime], Reproduction]
    verify: Callable[[Runtime, C], VerificationResult]
    release: Callable[[Runtime, bool], Recovery]
    """Undo the isolation once the fix is verified (called with ``Isolation.isolated``)."""
    contain: Callable[[Runtime, F, str], Isolation] | None = None
    """Containment when no fix can be applied or none worked (refused by a safety rule, failed,
    rejected, verification failed, relapsed): take the failing instance out of rotation whenever
    the others can carry the traffic, whatever the diagnosis (called with the assessed scope; a
    fleet-wide problem is not contained by draining one instance). None: the home's isolation
    step is all the containment there is (a quarantined dataset, a release freeze)."""


AnyHome = Home[Any, Any, Any]
"""What :func:`llmedic.anomalies.home_of` returns: the response process sees the base results."""
