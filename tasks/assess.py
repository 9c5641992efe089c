"""Step 2 — assess impact & route: how far does it reach, and who responds."""

from __future__ import annotations

from llmedic.catalog import anomaly_info
from llmedic.errors import MetricsSourceError
from llmedic.incident import Step, StepResult
from llmedic.playbook import LatencySettings
from tasks.runtime import Runtime, StepContext, StepTimer, step_task

__all__ = ["assess_latency"]


@step_task(Step.ASSESS)
def assess_latency(ctx: StepContext) -> StepResult:
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
