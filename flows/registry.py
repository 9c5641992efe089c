"""Every flow llmedic deploys, and how it is served (one process, ``serve()``)."""

from __future__ import annotations

import os
from typing import Any

from prefect import Flow, serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.schedules import Cron

from flows.accuracy_drop import accuracy_drop
from flows.backup_verify import backup_verify
from flows.capacity_review import capacity_review
from flows.data import data_format, data_missing, data_quality
from flows.data_audit import data_audit
from flows.dependency_conflict import dependency_conflict
from flows.golden_sample import golden_sample
from flows.gpu_fault import gpu_fault
from flows.latency import latency
from flows.memory_leak import memory_leak
from flows.network_interruption import network_interruption
from flows.release_gate import release_gate
from llmedic.config import ScheduleConfig, load_environment, settings_from_env

__all__ = ["ANOMALY_FLOWS", "MANUAL_FLOWS", "SCHEDULED_FLOWS", "deployments", "serve_all"]

ANOMALY_FLOWS: list[Flow[..., Any]] = [
    data_missing,
    data_format,
    data_quality,
    accuracy_drop,
    latency,
    memory_leak,
    gpu_fault,
    dependency_conflict,
    network_interruption,
]
SCHEDULED_FLOWS: dict[str, Flow[..., Any]] = {
    "data_audit": data_audit,
    "golden_sample": golden_sample,
    "capacity_review": capacity_review,
    "backup_verify": backup_verify,
}
"""``schedules:`` key in llmedic.yaml → the flow it runs."""
MANUAL_FLOWS: list[Flow[..., Any]] = [release_gate]
"""Flows an operator starts from the Prefect UI (no alert, no schedule)."""


def deployments(schedules: ScheduleConfig | None = None) -> list[object]:
    """One ``default`` deployment per flow, with a parameter form in the Prefect UI; scheduled flows
    carry the cron of ``schedules:`` in llmedic.yaml (a ``null`` cron deploys them unscheduled)."""
    if schedules is None:
        schedules = load_environment(settings=settings_from_env()).schedules
    out: list[object] = []
    for fl in ANOMALY_FLOWS:
        out.append(
            fl.to_deployment(
                name="default",
                tags=["llmedic"],
                description=fl.description,
                # A remediation storm never runs the same playbook more than 4 times at once.
                concurrency_limit=ConcurrencyLimitConfig(
                    limit=4, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE
                ),
            )
        )
    for fl in MANUAL_FLOWS:
        out.append(
            fl.to_deployment(
                name="default",
                tags=["llmedic", "manual"],
                description=fl.description,
                concurrency_limit=ConcurrencyLimitConfig(
                    limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE
                ),
            )
        )
    for key, fl in SCHEDULED_FLOWS.items():
        cron = getattr(schedules, key)
        out.append(
            fl.to_deployment(
                name="default",
                tags=["llmedic", "scheduled"],
                description=fl.description,
                schedules=[Cron(cron, timezone=schedules.timezone)] if cron else [],
                concurrency_limit=ConcurrencyLimitConfig(
                    limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE
                ),
            )
        )
    return out


def serve_all() -> None:
    """Serve every deployment until SIGINT/SIGTERM (paused gates stay suspended meanwhile)."""
    limit = int(os.environ.get("LLMEDIC_RUN_LIMIT", "8"))
    serve(*deployments(), limit=limit, print_starting_message=True)  # type: ignore[arg-type]
