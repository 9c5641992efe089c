"""What each accuracy-drop step hands the next: typed figures, no dict read by key."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from llmedic.anomalies.accuracy.diagnosis import Diagnosis
from llmedic.anomalies.accuracy.stats import DropVerdict
from llmedic.anomalies.base import Assessment, Confirmation, Findings, Reproduction
from llmedic.golden import Scorecard
from llmedic.registry import Baseline

__all__ = [
    "AccuracyAssessment",
    "AccuracyConfirmation",
    "AccuracyFindings",
    "AccuracyReproduction",
    "BaselineRef",
    "InstanceFigure",
    "TagFigure",
]


class BaselineRef(BaseModel):
    """The reference baseline the drop is judged against (from the model registry)."""

    version: str
    at: datetime
    accuracy: float
    datasets: dict[str, str]
    """Dataset → the version the service read when the baseline was scored."""

    @classmethod
    def of(cls, ref: Baseline) -> BaselineRef:
        """The figures of a registry baseline a later step shows."""
        return cls(version=ref.version, at=ref.at, accuracy=round(ref.accuracy, 4), datasets=ref.datasets)


class AccuracyConfirmation(Confirmation):
    """The golden set re-scored against the in-rotation instances, and the drop test."""

    golden: str
    """The golden set's name."""
    sample: list[str]
    """The item ids scored (the whole set, or a stratified sample)."""
    verdict: DropVerdict | None = None
    """Against the reference baseline; None without one (``min_accuracy`` decided)."""
    reference: BaselineRef | None = None
    card: Scorecard


class TagFigure(BaseModel):
    """Accuracy of one tag now and in the baseline (same items)."""

    tag: str
    items: int
    now: float
    baseline: float | None
    drop: float | None


class InstanceFigure(BaseModel):
    """Accuracy of one instance's share of the golden requests."""

    correct: int
    answered: int
    accuracy: float
    version: str | None


class AccuracyAssessment(Assessment):
    """Which tags and instances lost how much."""

    tags: list[TagFigure] = []
    """Worst drop first."""
    instances: dict[str, InstanceFigure] = {}
    versions: list[str] = []
    """The model versions the instances served while scored."""


class AccuracyFindings(Findings):
    """The change that explains the newly wrong items."""

    diagnosis: Diagnosis
    changed: list[str] = []
    """The consumed datasets whose version moved since the baseline."""


class AccuracyReproduction(Reproduction):
    """The baseline-correct items the incident's instance now gets wrong, asked again."""

    wrong_items: int = 0
    repeat_wrong_share: float = 0.0
    canary: str | None = None
    """What the baseline's version answered on a drained standby (when the release changed)."""
