"""Dataset actions: ``repair_dataset`` (write a repaired version) and ``rollback_dataset`` (point
the consumers at an earlier one). The incident's target is the dataset's name."""

from __future__ import annotations

from pydantic import Field

from llmedic.actions.catalogue import ActionOutcome, Params, action
from llmedic.actions.context import ActionContext
from llmedic.anomalies.data.repair_ops import Operation
from llmedic.catalog import AnomalyType
from llmedic.errors import ControlError

__all__ = ["RepairParams", "RollbackDatasetParams", "repair_dataset", "rollback_dataset"]

DATA = {AnomalyType.DATA_MISSING, AnomalyType.DATA_FORMAT, AnomalyType.DATA_QUALITY}


class RepairParams(Params):
    """Repair the incident's dataset version into a new version that becomes current."""

    operations: list[Operation] = Field(min_length=1)
    """Applied in order; see docs/flows/data.md for each operation's parameters."""
    max_row_loss_share: float = Field(0.05, ge=0, le=1)
    """Refuse to write a version that lost more than this share of rows."""


class RollbackDatasetParams(Params):
    """Point the dataset's consumers at an earlier version."""

    to: str | None = None
    """Version id (or unique prefix); default: the newest good version before the incident's."""
    compensating: bool = False
    """Set by llmedic when undoing a fix: a quarantined target is then skipped instead of refused."""


@action(
    "repair_dataset",
    params=RepairParams,
    compensation="rollback_dataset",
    anomalies=DATA,
    description="write a repaired copy of the bad version as a new version and make it current "
    "(rollback points consumers back at the version they had before)",
)
def repair_dataset(p: RepairParams, rt: ActionContext) -> ActionOutcome:
    """Apply the operations to the incident's version and commit the result (bounded row loss)."""
    # pandas comes with these: imported here so that no other action pays for it.
    from llmedic.adapters.datastore import Producer
    from llmedic.anomalies.data.repair import apply_operations

    name, cfg = rt.ctx.target, rt.dataset
    before = rt.store.current(name)
    source, frame = rt.store.read(name, cfg, rt.ctx.version or "current")
    audit = rt.audit(source.id)
    drifted = [f for f in audit.breaches(AnomalyType.DATA_QUALITY) if f.kind == "drift" and f.column]
    if drifted:
        raise ControlError(
            f"{name}@{source.id} drifted from the reference {audit.reference} in "
            f"{', '.join(str(f.column) for f in drifted)}: a repair only changes broken cells and cannot "
            "make a shifted distribution right, so nothing was written",
            hint="roll back to the last good version (the data_quality playbook's roll_back), or, if the "
            "new distribution is right, make this version the reference: `llmedic data reference`",
        )
    focus = sorted({f.column for f in audit.breaches(rt.ctx.anomaly) if f.column})
    state = rt.store.state(name)
    ref_id = state.reference if state.reference and state.reference != source.id else None
    reference = rt.store.read(name, cfg, ref_id)[1] if ref_id else None
    repaired, log = apply_operations(frame, cfg, list(p.operations), focus=focus, reference=reference)
    lost = 1 - log.rows_after / log.rows_before
    if lost > p.max_row_loss_share:
        raise ControlError(
            f"the repair would drop {log.rows_before - log.rows_after} of {log.rows_before} rows "
            f"({lost:.1%} > {p.max_row_loss_share:.0%}); nothing was written",
            hint="roll back to the last good version, or raise max_row_loss_share in the playbook",
        )
    new = rt.store.commit(
        name,
        repaired,
        cfg,
        by="llmedic",
        why=f"repair of {source.id} for incident {rt.ctx.incident_id}: " + "; ".join(log.steps)[:500],
        parent=source.id,
        producer=Producer(step="llmedic-repair", job=rt.ctx.incident_id, run=rt.ctx.flow_run_id),
    )
    what = "; ".join(log.steps) or "no change was needed"
    return ActionOutcome(
        f"wrote {new.id} from {source.id} ({log.rows_before} → {log.rows_after} rows): {what}",
        RollbackDatasetParams(to=before.id if before else source.id, compensating=True),
    )


@action(
    "rollback_dataset",
    params=RollbackDatasetParams,
    compensation="rollback_dataset",
    anomalies=DATA,
    description="point consumers at an earlier good version (rollback returns to the one before, unless it is quarantined)",
)
def rollback_dataset(p: RollbackDatasetParams, rt: ActionContext) -> ActionOutcome:
    """Make the named (or the last good) version current; never a quarantined one."""
    name = rt.ctx.target
    state = rt.store.state(name)
    if p.to is not None:
        target = rt.store.version(name, p.to)
    else:
        good = rt.store.last_good(name, before=rt.ctx.version or state.current)
        if good is None:
            raise ControlError(
                f"dataset {name!r} has no good version before {rt.ctx.version}",
                hint="repair the batch instead, or name a version with `to:`",
            )
        target = good
    if target.id in state.quarantined:
        if p.compensating:
            return ActionOutcome(f"stayed on {state.current}: {target.id} is quarantined")
        raise ControlError(f"{name}@{target.id} is quarantined and cannot become current")
    back = RollbackDatasetParams(to=state.current, compensating=True)
    if state.current == target.id:
        return ActionOutcome(f"{name} already serves {target.id}", back)
    rt.store.set_current(
        name, target.id, rt.dataset, by="llmedic", why=f"incident {rt.ctx.incident_id}: rollback"
    )
    return ActionOutcome(f"{name}: {state.current} → {target.id}", back)
