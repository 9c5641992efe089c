"""Step 1 — detect & confirm: is the anomaly real, by an independent signal?"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from llmedic.anomalies import home_of
from llmedic.anomalies.base import Confirmation
from llmedic.errors import MetricsSourceError
from llmedic.incident import Step, StepResult
from llmedic.playbook import MemoryLeakSettings
from tasks.runtime import Runtime, StepContext, StepTimer, step_task

if TYPE_CHECKING:  # pandas/SciPy: imported where used, not at every flow's start-up
    from llmedic.analysis.data_audit import DataAudit
    from llmedic.analysis.leak import LeakVerdict

__all__ = ["audit_summary", "confirm", "confirm_data", "confirm_leak", "leak_verdict"]


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


def leak_verdict(s: MemoryLeakSettings, series: dict[str, object]) -> LeakVerdict:
    """The detector on one instance's series, with the playbook's thresholds."""
    from llmedic.analysis.leak import detect_leak

    return detect_leak(
        np.asarray(series["t"], dtype=float),
        np.asarray(series["y"], dtype=float),
        limit=s.limit_bytes,
        warmup_seconds=s.warmup_seconds,
        min_samples=s.min_samples,
        p_value=s.p_value,
        horizon_hours=s.horizon_hours,
        min_growth_share=s.min_growth_share,
    )


@step_task(Step.CONFIRM)
def confirm_leak(ctx: StepContext) -> StepResult:
    """Read the resident memory of every in-rotation instance of the service over the window and
    judge each series (Theil–Sen + Hamed–Rao Mann–Kendall + projected time to the limit).

    Confirmed when the incident's instance leaks. A series too short to judge is not a verdict of
    health: that raises (``metrics-unavailable``) and the incident is escalated, not closed."""
    rt = Runtime(ctx)
    s = rt.settings_as(MemoryLeakSettings)
    t = StepTimer(Step.CONFIRM)
    fleet = rt.in_rotation()
    series = rt.memory(fleet, s.window_seconds, s.sample_interval_seconds)
    verdicts = {name: leak_verdict(s, ser) for name, ser in series.items()}
    mine = verdicts[rt.instance.name]
    source = series[rt.instance.name]["source"]
    t.add(
        "memory_series",
        str(source),
        f"{rt.instance.name}: {mine.samples} samples over {s.window_seconds:g}s; {mine.reason}",
        {"verdict": mine.as_dict(), "t": series[rt.instance.name]["t"], "y": series[rt.instance.name]["y"]},
    )
    if not mine.judged:
        raise MetricsSourceError(
            f"{rt.instance.name}: cannot judge memory growth: {mine.reason}",
            hint="lengthen window_seconds or shorten sample_interval_seconds in the memory_leak playbook",
        )
    t.decide("confirmed", "yes" if mine.leaking else "no", mine.reason)
    return t.done(
        f"{'confirmed' if mine.leaking else 'not confirmed'}: {mine.reason}",
        data={"confirmed": mine.leaking, "fleet": {n: v.as_dict() for n, v in verdicts.items()}},
    )
