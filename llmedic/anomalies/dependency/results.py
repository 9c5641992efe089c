"""What each dependency-conflict step hands the next: typed figures, no dict read by key."""

from __future__ import annotations

from llmedic.anomalies.base import Assessment, Confirmation, Findings, Reproduction
from llmedic.anomalies.dependency.diagnosis import Diagnosis, EnvironmentReport

__all__ = [
    "DependencyAssessment",
    "DependencyConfirmation",
    "DependencyFindings",
    "LockReproduction",
]


class DependencyConfirmation(Confirmation):
    """The live environment described with the service's own interpreter."""

    report: EnvironmentReport


class DependencyAssessment(Assessment):
    """Whether the instance serves, and which others do."""

    serving: list[str] = []


class DependencyFindings(Findings):
    """The diagnosis and what isolation needs to know."""

    diagnosis: Diagnosis
    healthy_others: int = 0


class LockReproduction(Reproduction):
    """A scratch environment built from the lock and import-tested (the live one untouched)."""

    lock_ok: bool = False
    """The lock builds and imports cleanly where the live environment does not: re-pinning fixes it."""
