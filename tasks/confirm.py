"""Step 1 — detect & confirm: is the anomaly real, by an independent signal?"""

from __future__ import annotations

import math

from llmedic.adapters.endpoint import ProbeResult, summarise_probes
from llmedic.errors import EndpointError, MetricsSourceError
from llmedic.incident import Step, StepResult
from llmedic.playbook import LatencySettings
from tasks.runtime import Runtime, StepContext, StepTimer, step_task

__all__ = ["confirm_latency"]


def _over(value: float | None, limit: float | None) -> bool:
    return value is not None and limit is not None and not math.isnan(value) and value > limit


@step_task(Step.CONFIRM)
def confirm_latency(ctx: StepContext) -> StepResult:
    """Confirm high latency with the metrics source *and* a synthetic probe burst.

    Both must agree; when the metrics source is unreachable the gap is recorded and the probes
    decide alone. An instance that answers no probe at all is not a latency problem: that raises.
    """
    rt = Runtime(ctx)
    s = rt.settings_as(LatencySettings)
    t = StepTimer(Step.CONFIRM)
    inst = rt.instance
    with rt.endpoint(timeout=s.probe_timeout_seconds) as ep:
        ep.require_up()

        def probes() -> list[ProbeResult]:
            return rt.latency_probes(ep, s.confirm_probes)

        metric_p99: float | None = None
        metric_ttft: float | None = None
        load: dict[str, float | None] = {}
        try:
            figures, results = rt.metrics.observe(
                [inst], engine=rt.service.engine, window_seconds=300, during=probes
            )
            m = figures[inst.name]
            metric_p99, metric_ttft = m.e2e_p99, m.ttft_p99
            # The load the instance carried while the probes ran (evidence reads it for the diagnosis).
            load = {"metric_waiting": m.waiting, "metric_running": m.running, "metric_kv": m.kv_cache_usage}
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
    return t.done(
        f"{'confirmed' if confirmed else 'not confirmed'}: {reason}",
        data={
            "confirmed": confirmed,
            "probe_p99": summary.p99,
            "metric_p99": metric_p99,
            "metric_ttft_p99": metric_ttft,
            **load,
        },
    )
