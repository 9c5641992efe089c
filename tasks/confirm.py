"""Step 1 — detect & confirm: is the anomaly real, by an independent signal?"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmedic.anomalies import home_of
from llmedic.anomalies.base import Confirmation
from llmedic.incident import Step, StepResult
from tasks.runtime import Runtime, StepContext, StepTimer, step_task

if TYPE_CHECKING:  # pandas/SciPy: imported where used, not at every flow's start-up
    from llmedic.anomalies.data.findings import DataAudit

__all__ = [
    "audit_summary",
    "confirm",
    "confirm_data",
]


@step_task(Step.CONFIRM)
def confirm(ctx: StepContext) -> Confirmation:
    """Is the anomaly real, by an independent signal? (the anomaly type's home judges)"""
    result: Confirmation = home_of(ctx.anomaly).confirm(Runtime(ctx))
    return result


def audit_summary(audit: DataAudit) -> dict[str, object]:
    """The figures of an audit a report shows side by side (before / after a fix)."""
    return {
        "version": audit.version,
        "rows": audit.rows,
        "missing_cells": audit.missing_cells,
        "rows_with_missing": audit.rows_with_missing,
        "invalid_cells": sum(
            v for c in audit.column_reports for k, v in c.invalid.items() if k != "outliers"
        ),
        "outliers": sum(c.invalid.get("outliers", 0) for c in audit.column_reports),
        "duplicate_rows": audit.duplicate_rows,
        "duplicate_keys": audit.duplicate_keys,
        "drifted_columns": len(audit.drifted_columns),
        "clean_cell_share": round(audit.clean_cell_share, 6),
        "breaches": len(audit.breaches()),
    }


@step_task(Step.CONFIRM)
def confirm_data(ctx: StepContext) -> StepResult:
    """Re-profile the batch (the incident's pinned version) against its schema and the reference:
    confirmed when at least one finding of this anomaly type breaches its threshold."""
    rt = Runtime(ctx)
    t = StepTimer(Step.CONFIRM)
    audit = rt.audit(fresh=True)
    mine = audit.breaches(ctx.anomaly)
    others = sorted({f.anomaly.value for f in audit.breaches()} - {ctx.anomaly.value})
    t.add(
        "profile",
        "datastore",
        f"{ctx.target}@{audit.version}: {audit.rows} rows × {audit.columns} columns, "
        f"{len(audit.breaches())} breaches" + (f" (reference {audit.reference})" if audit.reference else ""),
        audit_summary(audit),
    )
    for f in mine:
        t.add(
            f"breach_{f.kind}" + (f"_{f.column}" if f.column else ""),
            "audit",
            f.message,
            f.model_dump(mode="json"),
        )
    confirmed = bool(mine)
    reason = (
        f"{len(mine)} {ctx.anomaly.value} breach(es): " + "; ".join(f.message for f in mine[:4])
        if confirmed
        else f"no {ctx.anomaly.value} finding over its threshold in {audit.version}"
    )
    if others:
        reason += f"; also breaching: {others} (separate incidents)"
    t.decide("confirmed", "yes" if confirmed else "no", reason)
    return t.done(
        f"{'confirmed' if confirmed else 'not confirmed'}: {reason}",
        data={
            "confirmed": confirmed,
            "version": audit.version,
            "summary": audit_summary(audit),
            "other_anomalies": others,
        },
    )
