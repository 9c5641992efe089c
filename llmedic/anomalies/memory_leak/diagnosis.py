"""One leaking process, or the release: the memory-leak diagnosis. Pure: no adapter, no I/O, no
Prefect."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from llmedic.anomalies.memory_leak.detector import LeakVerdict

__all__ = ["Diagnosis", "diagnose_leak"]


class Diagnosis(StrEnum):
    """Where the leak is (``diagnose_leak``); the names the memory-leak playbook's ``when`` may use."""

    INSTANCE_LEAK = "instance_leak"
    FLEET_LEAK = "fleet_leak"


def diagnose_leak(
    target: str, fleet: Mapping[str, LeakVerdict], versions: list[str], fleet_share_threshold: float
) -> tuple[Diagnosis, str]:
    """The release leaks when at least ``fleet_share_threshold`` of several instances leak
    (``versions``: the model versions they serve, for the reason); otherwise the target's process."""
    leaking = sorted(n for n, v in fleet.items() if v.leaking)
    share = len(leaking) / len(fleet) if fleet else 0.0
    if len(fleet) > 1 and share >= fleet_share_threshold:
        return (
            Diagnosis.FLEET_LEAK,
            f"{len(leaking)} of {len(fleet)} instances leak (model versions {versions}): "
            "the release leaks, not one process",
        )
    mine = fleet.get(target)
    slope = mine.slope_per_hour if mine else 0.0
    hours = mine.hours_to_limit if mine else None
    return (
        Diagnosis.INSTANCE_LEAK,
        f"{target} grows {float(slope) / 2**20:.0f} MiB/h"
        + (f", limit in {float(hours):.1f} h" if hours is not None else "")
        + f"; {len(fleet) - len(leaking)} other instance(s) flat",
    )
