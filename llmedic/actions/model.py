"""Which model version the service serves: ``switch_model`` and ``rollback_model``.

Both switch every in-rotation instance one at a time and hand their compensation the version each
instance served before, so undoing puts every instance back as it was.
"""

from __future__ import annotations

from pydantic import Field

from llmedic.actions.catalogue import ActionOutcome, Params, action, completes_fleet
from llmedic.actions.context import ActionContext
from llmedic.catalog import AnomalyType
from llmedic.errors import ControlError

__all__ = [
    "RollbackModelParams",
    "RollbackModelUndo",
    "SwitchModelParams",
    "SwitchModelUndo",
    "rollback_model",
    "switch_model",
]

VERSION = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$"


class SwitchModelParams(Params):
    """Serve another model version on every in-rotation instance (one at a time)."""

    variant: str = Field(pattern=VERSION)
    """The version to serve, e.g. a quantised build ``pharma-qa-1.0-awq``."""


class SwitchModelUndo(SwitchModelParams):
    """What the compensation passes: the version each instance served before."""

    previous: dict[str, str] = Field(default_factory=dict)


def _switch(rt: ActionContext, variant: str, previous: dict[str, str]) -> tuple[str, dict[str, str]]:
    """Serve ``variant`` (or each instance's ``previous`` version) everywhere; (summary, before)."""
    before: dict[str, str] = {}
    for inst in rt.in_rotation():
        was = rt.control.state(inst).model_version or ""
        target = previous.get(inst.name, variant) if previous else variant
        if was != target:
            rt.control.set_model(inst, target)
        before[inst.name] = was
    shown = sorted(set(before.values()))
    to = variant if not previous else "their previous versions"
    return f"{sorted(before)} switched from {shown} to {to}", before


@action(
    "switch_model",
    params=SwitchModelParams,
    accepts=SwitchModelUndo,
    compensation="switch_model",
    anomalies={AnomalyType.LATENCY},
    fleet=True,
    description="serve another model version (e.g. quantised) on every in-rotation instance, one at a time "
    "(rollback switches each back to the version it served)",
)
def switch_model(p: SwitchModelUndo, rt: ActionContext) -> ActionOutcome:
    """Switch the service's instances to ``variant`` (or back to their ``previous`` versions)."""
    summary, before = _switch(rt, p.variant, p.previous)
    return ActionOutcome(summary, SwitchModelUndo(variant=p.variant, previous=before))


class RollbackModelParams(Params):
    """Serve an earlier model version again (recorded in the model registry)."""

    to: str | None = Field(None, pattern=VERSION)
    """Version to serve; default: the newest release before the current one never judged bad."""


class RollbackModelUndo(RollbackModelParams):
    """What the compensation passes: the bad version, what each instance served, and that it undoes."""

    previous: dict[str, str] = Field(default_factory=dict)
    compensating: bool = False


@action(
    "rollback_model",
    params=RollbackModelParams,
    accepts=RollbackModelUndo,
    compensation="rollback_model",
    anomalies={AnomalyType.ACCURACY_DROP},
    fleet=True,
    description="serve the last good model version on every in-rotation instance, one at a time, record "
    "the release and mark the bad version (rollback switches each instance back)",
)
def rollback_model(p: RollbackModelUndo, rt: ActionContext) -> ActionOutcome:
    """Serve the last good (or the named) version, record the release, judge the one it replaces."""
    svc, reg = rt.service.name, rt.registry
    current = reg.current(svc)
    if p.to is not None:
        target = reg.release_of(svc, p.to)
    else:
        good = reg.last_good(svc)
        if good is None:
            raise ControlError(
                f"service {svc!r} has no earlier good model version to roll back to",
                hint="record releases with `llmedic model release`, or name a version with `to:`",
            )
        target = good
    why, before = _switch(rt, target.version, p.previous)
    incident = rt.ctx.incident_id
    was = current.version if current else "unknown"
    undo = RollbackModelUndo(to=was, previous=before, compensating=True)
    if not completes_fleet(rt):  # the canary only: the release is recorded once all serve it
        return ActionOutcome(f"{svc}: {was} → {target.version} on the canary ({why})", undo)
    reg.record_release(
        svc,
        target.version,
        config=target.config,
        by="llmedic",
        note=f"{'rollback undone' if p.compensating else 'rollback'} by incident {incident}",
        incident=incident,
    )
    if current is not None and current.version != target.version:
        reg.mark(
            svc,
            current.version,
            good=p.compensating,
            by="llmedic",
            note=(
                f"rollback undone by incident {incident}: verdict withdrawn"
                if p.compensating
                else f"rolled back by incident {incident}"
            ),
            incident=incident,
        )
    return ActionOutcome(f"{svc}: {was} → {target.version} ({why})", undo)
