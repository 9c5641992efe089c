"""``restart_instance`` and ``rolling_restart``: restart instances, waiting for each to be healthy."""

from __future__ import annotations

import time

from pydantic import Field

from llmedic.actions.catalogue import SERVICE_ANOMALIES, ActionOutcome, Params, action
from llmedic.actions.context import ActionContext
from llmedic.catalog import AnomalyType
from llmedic.limits import limit_acts

__all__ = ["RestartParams", "RollingRestartParams", "restart_instance", "rolling_restart"]


class RestartParams(Params):
    """Restart an instance and wait until it is healthy."""

    ready_timeout_seconds: float = Field(60, gt=0)


@action(
    "restart_instance",
    params=RestartParams,
    compensation="drain_instance",
    anomalies=SERVICE_ANOMALIES,
    description="restart the instance and wait for /health (rollback keeps it out of rotation)",
)
def restart_instance(p: RestartParams, rt: ActionContext) -> ActionOutcome:
    """Restart the incident's instance."""
    limit_acts(rt, [rt.instance], "restart_instance")
    rt.control.restart(rt.instance, ready_timeout=p.ready_timeout_seconds)
    return ActionOutcome(f"{rt.instance.name} restarted and healthy")


class RollingRestartParams(Params):
    """Restart every in-rotation instance of the service, one at a time."""

    ready_timeout_seconds: float = Field(60, gt=0)
    pause_seconds: float = Field(2, ge=0)
    """Wait between two restarts (traffic settles on the restarted instance first)."""


@action(
    "rolling_restart",
    params=RollingRestartParams,
    compensation=None,
    anomalies={AnomalyType.MEMORY_LEAK},
    fleet=True,
    description="restart every in-rotation instance one at a time, each drained first and back only once "
    "healthy; never more than one out at once (a restart cannot be undone; verification decides)",
)
def rolling_restart(p: RollingRestartParams, rt: ActionContext) -> ActionOutcome:
    """Restart the service's instances one after the other."""
    done: list[str] = []
    targets = rt.in_rotation()
    limit_acts(rt, targets, "rolling_restart", fleet=True)
    for inst in targets:
        # One at a time, each out of rotation while it restarts; the incident's own instance may
        # already be drained by the isolation step and stays so until recovery.
        was_drained = rt.control.state(inst).drained
        if not was_drained:
            rt.control.drain(inst)
        rt.control.restart(inst, ready_timeout=p.ready_timeout_seconds)
        if not was_drained:
            rt.control.undrain(inst)
        done.append(inst.name)
        time.sleep(p.pause_seconds)
    return ActionOutcome(f"restarted {done} one at a time")
