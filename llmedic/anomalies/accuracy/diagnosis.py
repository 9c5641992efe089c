"""Which change since the baseline explains an accuracy drop: the pure decision.

The evidence step lines up what changed since the reference baseline was scored (the model release,
each knowledge dataset the service reads, the prompts users send) and this module names the one
that explains the newly wrong items. A knowledge dataset explains them when at least half of the
newly wrong items are rows that changed in it (or when the model did not change at all); corrupted
when its audit finds breaches (each breach kind is handed to a data incident). Pure: no adapter,
no I/O, no Prefect.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel

from llmedic.catalog import AnomalyType

__all__ = [
    "DatasetChange",
    "Diagnosis",
    "DriftColumn",
    "Finding",
    "ModelChange",
    "PromptDrift",
    "diagnose_accuracy",
]


class Diagnosis(StrEnum):
    """The change that explains the newly wrong items (``diagnose_accuracy``)."""

    KNOWLEDGE_CORRUPTED = "knowledge_corrupted"
    KNOWLEDGE_CHANGED = "knowledge_changed"
    MODEL_REGRESSION = "model_regression"
    PROMPT_DRIFT = "prompt_drift"
    """Users ask other things than the golden set: a human decides (no rollback cures it)."""
    UNEXPLAINED = "unexplained"


class DatasetChange(BaseModel):
    """A consumed knowledge dataset that moved since the baseline was scored."""

    dataset: str
    baseline_version: str
    current: str
    breach_anomalies: list[AnomalyType] = []
    """The anomaly type of each breach its audit finds now (one entry per breach)."""
    newly_wrong_in_changed_rows: int = 0
    """How many newly wrong golden items are rows that changed between the two versions."""


class ModelChange(BaseModel):
    """The model release moved since the baseline was scored."""

    service: str
    version: str
    since: datetime
    baseline_version: str
    config_keys: list[str] = []
    """Configuration keys that differ between the two releases."""


class DriftColumn(BaseModel):
    """One feature of the prompts, tested against the golden questions."""

    column: str
    method: str
    statistic: float
    drifted: bool


class PromptDrift(BaseModel):
    """Recent user prompts against the golden questions (length, share of in-domain words)."""

    prompts: int
    drifted: bool
    columns: list[DriftColumn] = []
    note: str | None = None
    """Why nothing was judged (too few prompts)."""
    mean_domain_share: float | None = None
    reference_domain_share: float | None = None


class Finding(BaseModel):
    """The diagnosis, its reason, and the dataset behind it when data explains the drop."""

    diagnosis: Diagnosis
    reason: str
    dataset: DatasetChange | None = None

    def handoffs(self) -> list[tuple[AnomalyType, int]]:
        """Each breach kind of a corrupted dataset with its count, in anomaly order: one data
        incident each."""
        if self.diagnosis != Diagnosis.KNOWLEDGE_CORRUPTED or self.dataset is None:
            return []
        kinds: dict[AnomalyType, int] = {}
        for a in self.dataset.breach_anomalies:
            kinds[a] = kinds.get(a, 0) + 1
        return sorted(kinds.items())


def diagnose_accuracy(
    newly_wrong: int,
    changed: list[DatasetChange],
    model: ModelChange | None,
    drift: PromptDrift | None,
) -> Finding:
    """Name the change that explains ``newly_wrong`` items: the dataset whose changed rows hold the
    most of them (when they are at least half, or the model did not change), else the model
    release, else drifted prompts, else nothing."""
    best = max(changed, key=lambda c: c.newly_wrong_in_changed_rows, default=None)
    share = best.newly_wrong_in_changed_rows / newly_wrong if best and newly_wrong else 0.0
    if best is not None and (share >= 0.5 or model is None):
        corrupted = bool(best.breach_anomalies)
        reason = (
            f"{best.dataset} moved {best.baseline_version} → {best.current} since the baseline; "
            f"{best.newly_wrong_in_changed_rows} of {newly_wrong} newly wrong items are rows that changed"
            + (f"; its audit finds {len(best.breach_anomalies)} breach(es)" if corrupted else "")
        )
        diagnosis = Diagnosis.KNOWLEDGE_CORRUPTED if corrupted else Diagnosis.KNOWLEDGE_CHANGED
        return Finding(diagnosis=diagnosis, reason=reason, dataset=best)
    if model is not None:
        reason = (
            f"{model.service} serves {model.version} since {model.since:%Y-%m-%d %H:%M} UTC; the baseline "
            f"of {model.baseline_version} answered these items right"
            + (f"; configuration changed ({', '.join(model.config_keys)})" if model.config_keys else "")
        )
        return Finding(diagnosis=Diagnosis.MODEL_REGRESSION, reason=reason)
    if drift is not None and drift.drifted:
        reason = (
            f"no model or data change since the baseline, but user prompts drifted (in-domain words "
            f"{drift.mean_domain_share or 0:.0%} vs {drift.reference_domain_share or 0:.0%} in the golden set)"
        )
        return Finding(diagnosis=Diagnosis.PROMPT_DRIFT, reason=reason)
    return Finding(
        diagnosis=Diagnosis.UNEXPLAINED,
        reason="no model release, data version or prompt drift since the baseline explains the drop",
    )
