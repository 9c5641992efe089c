"""Step 2 — assess impact & route: how far does it reach, and who responds."""

from __future__ import annotations

from typing import Any

from llmedic.anomalies import home_of
from llmedic.anomalies.base import Assessment, Confirmation
from llmedic.catalog import anomaly_info
from llmedic.incident import Step, StepResult
from tasks.runtime import Runtime, StepContext, StepTimer, step_task

__all__ = ["assess", "assess_data"]


@step_task(Step.ASSESS)
def assess(ctx: StepContext, confirmed: Confirmation) -> Assessment:
    """How far does it reach, and who responds? (the anomaly type's home measures)"""
    result: Assessment = home_of(ctx.anomaly).assess(Runtime(ctx), confirmed)
    return result


@step_task(Step.ASSESS)
def assess_data(ctx: StepContext, confirm: dict[str, Any] | None = None) -> StepResult:
    """Share of rows and columns hit, who consumes the dataset, and who responds."""
    # Imported here: the data analysis pulls in pandas and SciPy, and every other flow imports this
    # module — at module level it added ~2.5 s to the start of every latency or GPU run.
    from llmedic.anomalies.data.diagnosis import rows_hit

    rt = Runtime(ctx)
    t = StepTimer(Step.ASSESS)
    audit = rt.audit()
    breaches = audit.breaches(ctx.anomaly)
    columns = sorted({f.column for f in breaches if f.column})
    share = rows_hit(audit, ctx.anomaly)
    consumers = list(rt.dataset.consumers)
    state = rt.store.state(ctx.target)
    live = state.current == ctx.version
    info = anomaly_info(ctx.anomaly)
    impact = (
        f"{ctx.target}@{ctx.version}: {len(columns)} of {audit.columns} columns and about {share:.1%} of "
        f"{audit.rows} rows hit; {'the version is live' if live else 'not the current version'}"
        + (f"; consumers: {', '.join(consumers)}" if consumers else "")
    )
    scope = "dataset" if len(columns) > 1 or share > 0.5 else ("column" if columns else "dataset")
    t.add(
        "impact",
        "audit",
        impact,
        {"columns": columns, "row_share": share, "consumers": consumers, "live": live},
    )
    t.decide("scope", scope, impact)
    t.decide("route", info.team.value, f"{info.category.value} anomalies go to the {info.team.value} team")
    return t.done(
        f"scope {scope}; {impact}; routed to {info.team.value}",
        data={
            "scope": scope,
            "impact": impact,
            "columns": columns,
            "row_share": share,
            "team": info.team.value,
        },
    )
