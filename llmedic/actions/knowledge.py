"""``rollback_knowledge``: point a service's knowledge datasets back at its baseline's versions."""

from __future__ import annotations

from llmedic.actions.catalogue import ActionOutcome, Params, action
from llmedic.actions.context import ActionContext
from llmedic.catalog import AnomalyType
from llmedic.errors import ControlError

__all__ = ["RollbackKnowledgeParams", "RollbackKnowledgeUndo", "rollback_knowledge"]


class RollbackKnowledgeParams(Params):
    """Point the service's knowledge dataset(s) back at the version its baseline was scored with."""

    dataset: str | None = None
    """Only this dataset; default: every consumed dataset that changed since the baseline."""
    to: str | None = None
    """Version id (needs ``dataset``); default: the version current when the baseline was scored."""


class RollbackKnowledgeUndo(RollbackKnowledgeParams):
    """What the compensation passes: the version each dataset had (set: nothing else is chosen)."""

    targets: dict[str, str] | None = None


def _targets(p: RollbackKnowledgeParams, rt: ActionContext) -> dict[str, str] | str:
    """Dataset → version to serve; or, when someone else already put them back, the summary."""
    name, _ = rt.env.golden_for(rt.service.name)
    base = rt.registry.reference(rt.service.name, name)
    consumed = rt.dataset_versions()
    if p.dataset is not None and p.dataset not in consumed:
        raise ControlError(f"service {rt.service.name!r} does not consume dataset {p.dataset!r}")
    targets: dict[str, str] = {}
    if p.to is not None:
        if p.dataset is None:
            raise ControlError("rollback_knowledge: `to` needs `dataset`")
        targets = {p.dataset: p.to}
    elif base is not None:
        targets = {
            ds: v
            for ds, v in base.datasets.items()
            if ds in consumed and consumed[ds] != v and (p.dataset in (None, ds))
        }
    if not targets and base is not None and p.to is None and base.datasets:
        # Diagnosed as a knowledge change, and since then put back by someone else — typically
        # the data incident this flow handed over, whose isolation moves consumers to the last
        # good version. Nothing left to do here; verification decides whether it is enough.
        restored = {ds: v for ds, v in base.datasets.items() if ds in consumed}
        if restored and all(consumed[ds] == v for ds, v in restored.items()):
            shown = ", ".join(f"{ds}@{v}" for ds, v in sorted(restored.items()))
            return f"already at the baseline's versions ({shown}) since the diagnosis; nothing changed"
    if not targets:
        raise ControlError(
            "no consumed dataset changed since the baseline; nothing to roll back",
            hint="name the dataset and version with `dataset:` and `to:`",
        )
    return targets


@action(
    "rollback_knowledge",
    params=RollbackKnowledgeParams,
    accepts=RollbackKnowledgeUndo,
    compensation="rollback_knowledge",
    anomalies={AnomalyType.ACCURACY_DROP},
    description="point the service's knowledge dataset(s) back at the version its baseline was scored "
    "with (rollback returns each to the version it had)",
)
def rollback_knowledge(p: RollbackKnowledgeUndo, rt: ActionContext) -> ActionOutcome:
    """Make each chosen dataset version current; the compensation gets the versions they had."""
    if p.targets is not None:
        targets = dict(p.targets)
    else:
        chosen = _targets(p, rt)
        if isinstance(chosen, str):
            return ActionOutcome(chosen, RollbackKnowledgeUndo(targets={}))
        targets = chosen
    done: dict[str, str] = {}
    for ds, version in sorted(targets.items()):
        cfg = rt.env.dataset(ds)
        before = rt.store.current(ds)
        target = rt.store.version(ds, version)
        if target.id in rt.store.state(ds).quarantined:
            raise ControlError(f"{ds}@{target.id} is quarantined and cannot become current")
        if before is None or before.id != target.id:
            rt.store.set_current(
                ds, target.id, cfg, by="llmedic", why=f"incident {rt.ctx.incident_id}: knowledge rollback"
            )
        done[ds] = before.id if before else target.id
    shown = ", ".join(f"{ds}: {done[ds]} → {targets[ds]}" for ds in sorted(targets))
    return ActionOutcome(shown, RollbackKnowledgeUndo(targets=done))
