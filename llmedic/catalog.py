"""The anomaly catalogue: nine anomaly types in three categories, each owned by a team.

This is the guide's classification (data / model / system anomalies) as data. Flows, playbooks,
routing and reports all key on :class:`AnomalyType`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from llmedic.errors import UnknownAnomalyType

__all__ = [
    "CATALOG",
    "AnomalyInfo",
    "AnomalyType",
    "Category",
    "Risk",
    "Team",
    "anomaly_info",
    "parse_anomaly",
]


class Category(StrEnum):
    """Where an anomaly lives."""

    DATA = "data"
    MODEL = "model"
    SYSTEM = "system"


class Team(StrEnum):
    """Who responds to a category (the guide's response group)."""

    DATA = "data"
    ALGORITHM = "algorithm"
    OPS = "ops"


class Risk(StrEnum):
    """How risky a change to production is; the playbook decides which risks need an approval."""

    NONE = "none"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class AnomalyType(StrEnum):
    """The nine anomaly types of the guide."""

    DATA_MISSING = "data_missing"
    DATA_FORMAT = "data_format"
    DATA_QUALITY = "data_quality"
    ACCURACY_DROP = "accuracy_drop"
    LATENCY = "latency"
    MEMORY_LEAK = "memory_leak"
    GPU_FAULT = "gpu_fault"
    DEPENDENCY_CONFLICT = "dependency_conflict"
    NETWORK_INTERRUPTION = "network_interruption"


TEAM_OF: dict[Category, Team] = {
    Category.DATA: Team.DATA,
    Category.MODEL: Team.ALGORITHM,
    Category.SYSTEM: Team.OPS,
}


@dataclass(frozen=True)
class AnomalyInfo:
    """What the catalogue knows about one anomaly type."""

    type: AnomalyType
    category: Category
    title: str
    signal: str
    default_risk: Risk

    @property
    def team(self) -> Team:
        """The team the guide routes this category to."""
        return TEAM_OF[self.category]

    @property
    def flow_name(self) -> str:
        """Name of the Prefect flow that handles this type."""
        return f"llmedic-{self.type.value.replace('_', '-')}"

    @property
    def deployment_name(self) -> str:
        """``flow/deployment`` name that ``run_deployment`` takes."""
        return f"{self.flow_name}/default"


CATALOG: dict[AnomalyType, AnomalyInfo] = {
    info.type: info
    for info in (
        AnomalyInfo(
            AnomalyType.DATA_MISSING,
            Category.DATA,
            "Missing data",
            "null/blank/undefined fields, missing-ratio jump",
            Risk.MEDIUM,
        ),
        AnomalyInfo(
            AnomalyType.DATA_FORMAT,
            Category.DATA,
            "Format errors",
            "wrong dtypes, mixed date formats, bad encoding",
            Risk.MEDIUM,
        ),
        AnomalyInfo(
            AnomalyType.DATA_QUALITY,
            Category.DATA,
            "Low data quality",
            "outliers, noise, duplicates, drift",
            Risk.MEDIUM,
        ),
        AnomalyInfo(
            AnomalyType.ACCURACY_DROP,
            Category.MODEL,
            "Accuracy drop",
            "golden-set score falls, precision/recall drop",
            Risk.HIGH,
        ),
        AnomalyInfo(
            AnomalyType.LATENCY,
            Category.MODEL,
            "Latency above SLO",
            "p50/p90/p99, queue depth, TTFT above SLO",
            Risk.MEDIUM,
        ),
        AnomalyInfo(
            AnomalyType.MEMORY_LEAK,
            Category.MODEL,
            "Memory leak",
            "RSS / GPU memory grows without bound",
            Risk.MEDIUM,
        ),
        AnomalyInfo(
            AnomalyType.GPU_FAULT,
            Category.SYSTEM,
            "GPU fault",
            "XID, ECC, throttling, temperature, GPU lost",
            Risk.HIGH,
        ),
        AnomalyInfo(
            AnomalyType.DEPENDENCY_CONFLICT,
            Category.SYSTEM,
            "Dependency conflict",
            "import errors, pip check, CUDA/driver/torch mismatch",
            Risk.HIGH,
        ),
        AnomalyInfo(
            AnomalyType.NETWORK_INTERRUPTION,
            Category.SYSTEM,
            "Network interruption",
            "failed transfers, sync errors, unreachable endpoints",
            Risk.MEDIUM,
        ),
    )
}


def parse_anomaly(name: str) -> AnomalyType:
    """Turn a user-supplied name (``latency``, ``gpu-fault``, ``GPU_FAULT``) into an AnomalyType."""
    key = name.strip().lower().replace("-", "_")
    try:
        return AnomalyType(key)
    except ValueError:
        known = ", ".join(t.value for t in AnomalyType)
        raise UnknownAnomalyType(
            f"unknown anomaly type {name!r}",
            hint=f"use one of: {known}",
        ) from None


def anomaly_info(anomaly: AnomalyType | str) -> AnomalyInfo:
    """Catalogue entry for an anomaly type (or its name)."""
    kind = anomaly if isinstance(anomaly, AnomalyType) else parse_anomaly(anomaly)
    return CATALOG[kind]
