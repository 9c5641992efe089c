"""Step 2 — assess impact & route: how far does it reach, and who responds."""

from __future__ import annotations

from typing import Any

from llmedic.catalog import anomaly_info
from llmedic.errors import MetricsSourceError
from llmedic.incident import Step, StepResult
from llmedic.playbook import LatencySettings
from tasks.runtime import Runtime, StepContext, StepTimer, step_task

__all__ = ["assess_data", "assess_latency", "assess_leak"]


@step_task(Step.ASSESS)
def assess_latency(ctx: StepContext, confirm: dict[str, Any] | None = None) -> StepResult:
    """Read every in-rotation instance of the service: one slow instance, or the fleet?"""
    rt = Runtime(ctx)
    s = rt.settings_as(LatencySettings)
    t = StepTimer(Step.ASSESS)
    states = {i.name: rt.control.state(i) for i in rt.service.instances + rt.service.standby}
    active = [i for i in rt.service.instances + rt.service.standby if not states[i.name].drained]
    fleet: dict[str, dict[str, object]] = {}
    try:
        figures, _ = rt.metrics.observe(active, engine=rt.service.engine, window_seconds=300)
    except MetricsSourceError as exc:
        figures = {}
        t.add("fleet_metrics", rt.env.metrics.kind, f"metrics unavailable: {exc.message}", gap=True)
    for inst in active:
        m = figures.get(inst.name)
        st = states[inst.name]
        fleet[inst.name] = {
            "p99": m.e2e_p99 if m else None,
            "waiting": m.waiting if m else None,
            "running": m.running if m else None,
            "kv_cache_usage": m.kv_cache_usage if m else None,
            "ttft_p99": m.ttft_p99 if m else None,
            "itl_p99": m.itl_p99 if m else None,
            "error_ratio": m.error_ratio if m else None,
            "healthy": st.healthy,
            "drained": st.drained,
        }
    over = sorted(n for n, f in fleet.items() if isinstance(f["p99"], float) and f["p99"] > s.slo_p99_seconds)
    if figures:
        any_m = next(iter(figures.values()))
        t.add(
            "fleet_metrics",
            any_m.source,
            f"{len(over)} of {len(active)} in-rotation instances over the {s.slo_p99_seconds:g}s SLO: {over}",
            {"fleet": fleet, "window": any_m.window},
        )
    share = len(over) / len(active) if active else 0.0
    scope = "fleet" if len(active) > 1 and share >= s.fleet_share_threshold else "instance"
    info = anomaly_info(ctx.anomaly)
    impact = (
        f"{len(over)}/{len(active)} instances of {rt.service.name} over SLO; "
        f"about {share:.0%} of traffic sees p99 above {s.slo_p99_seconds:g}s"
    )
    t.decide("scope", scope, impact)
    t.decide("route", info.team.value, f"{info.category.value} anomalies go to the {info.team.value} team")
    return t.done(
        f"scope {scope}; {impact}; routed to {info.team.value}",
        data={"scope": scope, "impact": impact, "fleet": fleet, "team": info.team.value},
    )


@step_task(Step.ASSESS)
def assess_data(ctx: StepContext, confirm: dict[str, Any] | None = None) -> StepResult:
    """Share of rows and columns hit, who consumes the dataset, and who responds."""
    # Imported here: the data analysis pulls in pandas and SciPy, and every other flow imports this
    # module — at module level it added ~2.5 s to the start of every latency or GPU run.
    from llmedic.analysis.data_diagnosis import rows_hit

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


@step_task(Step.ASSESS)
def assess_leak(ctx: StepContext, confirm: dict[str, Any] | None = None) -> StepResult:
    """Where memory stands now on every in-rotation instance, and who responds."""
    rt = Runtime(ctx)
    t = StepTimer(Step.ASSESS)
    fleet = rt.in_rotation()
    now = rt.memory(fleet, 0, 1)
    rss = {name: (ser["y"][-1] if ser["y"] else None) for name, ser in now.items()}
    info = anomaly_info(ctx.anomaly)
    known = {n: v for n, v in rss.items() if v is not None}
    impact = (
        f"{rt.instance.name} holds {known.get(rt.instance.name, float('nan')) / 2**20:.0f} MiB; "
        f"{len(fleet)} instance(s) of {rt.service.name} in rotation"
    )
    t.add(
        "memory_now",
        str(next(iter(now.values()))["source"]) if now else "metrics",
        impact,
        {"rss_bytes": rss},
    )
    t.decide("route", info.team.value, f"{info.category.value} anomalies go to the {info.team.value} team")
    return t.done(
        f"{impact}; routed to {info.team.value}", data={"scope": "instance", "impact": impact, "rss": rss}
    )
