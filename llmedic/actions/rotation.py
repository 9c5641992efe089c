"""Rotation: ``drain_instance`` / ``undrain_instance`` and ``scale_out`` / ``scale_in`` (standby
instances brought into rotation and taken out again)."""

from __future__ import annotations

from pydantic import Field

from llmedic.actions.catalogue import SERVICE_ANOMALIES, ActionOutcome, NoParams, Params, action
from llmedic.actions.context import ActionContext
from llmedic.catalog import AnomalyType
from llmedic.errors import ControlError
from llmedic.limits import limit_acts

__all__ = [
    "ScaleInParams",
    "ScaleParams",
    "drain_instance",
    "scale_in",
    "scale_out",
    "undrain_instance",
]


@action(
    "drain_instance",
    params=NoParams,
    compensation="undrain_instance",
    anomalies=SERVICE_ANOMALIES,
    description="take the instance out of rotation",
)
def drain_instance(p: NoParams, rt: ActionContext) -> ActionOutcome:
    """Take the incident's instance out of rotation."""
    limit_acts(rt, [rt.instance], "drain_instance")
    rt.control.drain(rt.instance)
    return ActionOutcome(f"{rt.instance.name} drained")


@action(
    "undrain_instance",
    params=NoParams,
    compensation=None,
    anomalies=(),
    description="put the instance back into rotation",
)
def undrain_instance(p: NoParams, rt: ActionContext) -> ActionOutcome:
    """Put the incident's instance back into rotation."""
    rt.control.undrain(rt.instance)
    return ActionOutcome(f"{rt.instance.name} back in rotation")


class ScaleParams(Params):
    """Bring standby instances into rotation (or take them out)."""

    replicas: int = Field(1, ge=1, le=16)


class ScaleInParams(ScaleParams):
    """What ``scale_out`` passes its compensation: the instances it brought in."""

    instances: list[str] = Field(default_factory=list)


@action(
    "scale_out",
    params=ScaleParams,
    compensation="scale_in",
    anomalies={AnomalyType.LATENCY},
    description="bring standby instances into rotation (rollback takes them out again)",
)
def scale_out(p: ScaleParams, rt: ActionContext) -> ActionOutcome:
    """Undrain up to ``replicas`` drained standby instances."""
    spare = [i for i in rt.service.standby if rt.control.state(i).drained]
    if not spare:
        raise ControlError(f"service {rt.service.name!r} has no drained standby instance to bring in")
    chosen = spare[: p.replicas]
    for inst in chosen:
        rt.control.undrain(inst)
    names = [i.name for i in chosen]
    return ActionOutcome(
        f"brought {names} into rotation", ScaleInParams(replicas=len(chosen), instances=names)
    )


@action(
    "scale_in",
    params=ScaleParams,
    accepts=ScaleInParams,
    compensation=None,
    anomalies=(),
    description="take instances out of rotation (compensation of scale_out)",
)
def scale_in(p: ScaleInParams, rt: ActionContext) -> ActionOutcome:
    """Drain the standby instances ``scale_out`` brought in."""
    for inst in rt.service.standby:
        if inst.name in p.instances:
            rt.control.drain(inst)
    return ActionOutcome(f"took {p.instances} out of rotation")
