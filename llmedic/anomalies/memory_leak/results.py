"""What each memory-leak step hands the next: typed figures, no dict read by key."""

from __future__ import annotations

from llmedic.anomalies.base import Assessment, Confirmation, Findings, Reproduction
from llmedic.anomalies.memory_leak.detector import LeakVerdict
from llmedic.anomalies.memory_leak.diagnosis import Diagnosis

__all__ = ["LeakAssessment", "LeakConfirmation", "LeakFindings", "LeakReproduction"]


class LeakConfirmation(Confirmation):
    """The detector's verdict on every in-rotation instance, by name."""

    fleet: dict[str, LeakVerdict]


class LeakAssessment(Assessment):
    """Resident memory of every in-rotation instance now (``None``: unreadable)."""

    rss: dict[str, float | None] = {}


class LeakFindings(Findings):
    """The diagnosis and what isolation needs to know."""

    diagnosis: Diagnosis
    leaking: list[str] = []
    healthy_others: int = 0
    """In-rotation instances other than the target that are healthy and do not leak."""


class LeakReproduction(Reproduction):
    """Memory kept per request sent straight at the instance."""

    per_request_bytes: float = 0.0
