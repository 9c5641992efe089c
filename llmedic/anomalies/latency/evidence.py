"""What the latency steps read: the instance's probes and metrics (confirm), the fleet's figures
(assess), and everything behind a diagnosis (evidence)."""

from __future__ import annotations

import math

from llmedic.adapters.endpoint import ProbeResult, summarise_probes
from llmedic.anomalies.common import release_evidence, system_evidence
from llmedic.anomalies.latency.diagnosis import InstanceLatency, diagnose_latency
from llmedic.anomalies.latency.results import (
    InstanceFigures,
    LatencyAssessment,
    LatencyConfirmation,
    LatencyFindings,
)
from llmedic.anomalies.runtime import Runtime, StepTimer
from llmedic.catalog import anomaly_info
from llmedic.errors import EndpointError, MetricsSourceError
from llmedic.incident import Step
from llmedic.playbook import LatencySettings

__all__ = ["assess", "confirm", "evidence"]


def _over(value: float | None, limit: float | None) -> bool:
    return value is not None and limit is not None and not math.isnan(value) and value > limit


def confirm(rt: Runtime) -> LatencyConfirmation:
    """Confirm high latency with the metrics source *and* a synthetic probe burst.

    Both must agree; when the metrics source is unreachable the gap is recorded and the probes
    decide alone. An instance that answers no probe at all is not a latency problem: that raises.
    """
    s = rt.settings_as(LatencySettings)
    t = StepTimer(Step.CONFIRM)
    inst = rt.instance
    with rt.endpoint(timeout=s.probe_timeout_seconds) as ep:
        ep.require_up()

        def probes() -> list[ProbeResult]:
            return rt.latency_probes(ep, s.confirm_probes)

        metric_p99: float | None = None
        metric_ttft: float | None = None
        waiting = running = kv = None
        try:
            figures, results = rt.metrics.observe(
                [inst], engine=rt.service.engine, window_seconds=300, during=probes
            )
            m = figures[inst.name]
            metric_p99, metric_ttft = m.e2e_p99, m.ttft_p99
            # The load the instance carried while the probes ran (evidence reads it for the diagnosis).
            waiting, running, kv = m.waiting, m.running, m.kv_cache_usage
            t.add(
                "target_metrics",
                m.source,
                f"{inst.name}: e2e p99 {m.e2e_p99}s, TTFT p99 {m.ttft_p99}s over {m.window}",
                m.as_dict(),
            )
        except MetricsSourceError as exc:
            results = probes()
            t.add("target_metrics", rt.env.metrics.kind, f"metrics unavailable: {exc.message}", gap=True)
    summary = summarise_probes(results or [])
    t.add(
        "confirm_probes",
        "probe",
        f"{summary.count} probes to {inst.name}: p99 {summary.p99:.3f}s, {summary.failures} failed",
        summary.as_dict(),
    )
    if summary.count and summary.failures == summary.count:
        raise EndpointError(
            f"{inst.name}: all {summary.count} confirmation probes failed ({', '.join(summary.errors)})",
            hint="the service is failing, not slow; check the instance and its logs",
        )
    probe_over = _over(summary.p99, s.slo_p99_seconds)
    metrics_known = metric_p99 is not None and not math.isnan(metric_p99)
    metric_over = _over(metric_p99, s.slo_p99_seconds) or _over(metric_ttft, s.slo_ttft_p99_seconds)
    confirmed = probe_over and (metric_over or not metrics_known)
    basis = "probes and metrics agree" if metrics_known else "probes only (no metrics in the window)"
    reason = f"probe p99 {summary.p99:.3f}s vs SLO {s.slo_p99_seconds:g}s; metrics p99 {metric_p99}; {basis}"
    t.decide("confirmed", "yes" if confirmed else "no", reason)
    return LatencyConfirmation(
        **t.stamp(f"{'confirmed' if confirmed else 'not confirmed'}: {reason}"),
        confirmed=confirmed,
        probe_p99=summary.p99,
        metric_p99=metric_p99,
        metric_ttft_p99=metric_ttft,
        metric_waiting=waiting,
        metric_running=running,
        metric_kv=kv,
    )


def assess(rt: Runtime, confirmed: LatencyConfirmation) -> LatencyAssessment:
    """Read every in-rotation instance of the service: one slow instance, or the fleet?"""
    s = rt.settings_as(LatencySettings)
    t = StepTimer(Step.ASSESS)
    states = {i.name: rt.control.state(i) for i in rt.service.instances + rt.service.standby}
    active = [i for i in rt.service.instances + rt.service.standby if not states[i.name].drained]
    fleet: dict[str, InstanceFigures] = {}
    try:
        figures, _ = rt.metrics.observe(active, engine=rt.service.engine, window_seconds=300)
    except MetricsSourceError as exc:
        figures = {}
        t.add("fleet_metrics", rt.env.metrics.kind, f"metrics unavailable: {exc.message}", gap=True)
    for inst in active:
        m = figures.get(inst.name)
        st = states[inst.name]
        fleet[inst.name] = InstanceFigures(
            p99=m.e2e_p99 if m else None,
            waiting=m.waiting if m else None,
            running=m.running if m else None,
            kv_cache_usage=m.kv_cache_usage if m else None,
            ttft_p99=m.ttft_p99 if m else None,
            itl_p99=m.itl_p99 if m else None,
            error_ratio=m.error_ratio if m else None,
            healthy=st.healthy,
            drained=st.drained,
        )
    over = sorted(n for n, f in fleet.items() if f.p99 is not None and f.p99 > s.slo_p99_seconds)
    if figures:
        any_m = next(iter(figures.values()))
        t.add(
            "fleet_metrics",
            any_m.source,
            f"{len(over)} of {len(active)} in-rotation instances over the {s.slo_p99_seconds:g}s SLO: {over}",
            {"fleet": {n: f.model_dump() for n, f in fleet.items()}, "window": any_m.window},
        )
    share = len(over) / len(active) if active else 0.0
    scope = "fleet" if len(active) > 1 and share >= s.fleet_share_threshold else "instance"
    info = anomaly_info(rt.ctx.anomaly)
    impact = (
        f"{len(over)}/{len(active)} instances of {rt.service.name} over SLO; "
        f"about {share:.0%} of traffic sees p99 above {s.slo_p99_seconds:g}s"
    )
    t.decide("scope", scope, impact)
    t.decide("route", info.team.value, f"{info.category.value} anomalies go to the {info.team.value} team")
    return LatencyAssessment(
        **t.stamp(f"scope {scope}; {impact}; routed to {info.team.value}"),
        scope=scope,
        impact=impact,
        team=info.team.value,
        fleet=fleet,
    )


def _figures(
    rt: Runtime, confirmed: LatencyConfirmation, assessed: LatencyAssessment
) -> dict[str, InstanceLatency]:
    """Each instance's latency and load; for the target, the worst of what assess and confirm saw."""
    fleet: dict[str, InstanceLatency] = {}
    target = rt.instance.name
    for name, f in assessed.fleet.items():
        p99 = f.p99
        mine = name == target
        if mine:
            # The target's own figures: the worst of the metrics and the confirmation probes, so a
            # metrics gap falls back to what the probes measured.
            known = [v for v in (p99, confirmed.metric_p99, confirmed.probe_p99) if v is not None and v == v]
            p99 = max(known) if known else None
        fleet[name] = InstanceLatency(
            name=name,
            p99_seconds=p99,
            # For the target, the heavier of the two windows: assess (background traffic only) and
            # confirm (while the probe burst ran).
            waiting=max(f.waiting or 0.0, (confirmed.metric_waiting or 0.0) if mine else 0.0),
            running=max(f.running or 0.0, (confirmed.metric_running or 0.0) if mine else 0.0),
            kv_cache_usage=max(f.kv_cache_usage or 0.0, (confirmed.metric_kv or 0.0) if mine else 0.0),
            healthy=f.healthy,
            drained=f.drained,
            ttft_p99=f.ttft_p99,
            itl_p99=f.itl_p99,
        )
    if target not in fleet:
        fleet[target] = InstanceLatency(target, confirmed.probe_p99)
    return fleet


def evidence(rt: Runtime, confirmed: LatencyConfirmation, assessed: LatencyAssessment) -> LatencyFindings:
    """Percentiles, queue, KV cache and instance state of the fleet → a diagnosis."""
    s = rt.settings_as(LatencySettings)
    t = StepTimer(Step.EVIDENCE)
    fleet = _figures(rt, confirmed, assessed)
    state = rt.control.state(rt.instance)
    t.add(
        "instance_state",
        rt.service.control.kind,
        f"{rt.instance.name}: healthy={state.healthy} drained={state.drained} "
        f"limit={state.concurrency_limit} model={state.model_version} restarts={state.restarts}",
        state.as_dict(),
    )
    me = fleet[rt.instance.name]
    t.add(
        "target_load",
        "metrics",
        f"{me.name}: p99 {me.p99_seconds}s (TTFT p99 {me.ttft_p99}s, inter-token p99 {me.itl_p99}s), "
        f"waiting {me.waiting:.1f}, running {me.running:.1f}, KV cache {me.kv_cache_usage:.0%}",
        {
            "p99": me.p99_seconds,
            "waiting": me.waiting,
            "running": me.running,
            "kv_cache_usage": me.kv_cache_usage,
            "ttft_p99": me.ttft_p99,
            "itl_p99": me.itl_p99,
        },
    )
    release_evidence(rt, t)
    d = diagnose_latency(
        rt.instance.name,
        fleet,
        slo_p99_seconds=s.slo_p99_seconds,
        queue_threshold=s.queue_threshold,
        kv_cache_threshold=s.kv_cache_threshold,
        fleet_share_threshold=s.fleet_share_threshold,
        itl_p99_threshold=s.itl_p99_threshold_seconds,
    )
    system_evidence(rt, t)
    t.decide("diagnosis", d.diagnosis, d.reason)
    return LatencyFindings(
        **t.stamp(f"diagnosis {d.diagnosis}: {d.reason}"),
        diagnosis=d.diagnosis,
        reason=d.reason,
        scope=d.scope,
        healthy_others=d.healthy_others,
        over_slo=d.over_slo,
        concurrency_limit=state.concurrency_limit,
    )
