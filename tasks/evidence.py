"""Step 3 — collect evidence & locate: the figures behind a diagnosis."""

from __future__ import annotations

from typing import Any

from llmedic.analysis.latency import InstanceLatency, diagnose_latency
from llmedic.incident import Step, StepResult
from llmedic.playbook import LatencySettings
from tasks.runtime import Runtime, StepContext, StepTimer, step_task

__all__ = ["evidence_latency"]


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


@step_task(Step.EVIDENCE)
def evidence_latency(ctx: StepContext, confirm: dict[str, Any], assess: dict[str, Any]) -> StepResult:
    """Percentiles, queue, KV cache and instance state of the fleet → a diagnosis."""
    rt = Runtime(ctx)
    s = rt.settings_as(LatencySettings)
    t = StepTimer(Step.EVIDENCE)
    fleet_fig: dict[str, dict[str, Any]] = assess.get("fleet", {})
    fleet: dict[str, InstanceLatency] = {}
    for name, f in fleet_fig.items():
        p99 = f.get("p99")
        if name == rt.instance.name:
            # The target's own figures: the worst of the metrics and the confirmation probes, so a
            # metrics gap falls back to what the probes measured.
            known = [
                float(v)
                for v in (p99, confirm.get("metric_p99"), confirm.get("probe_p99"))
                if isinstance(v, int | float) and v == v
            ]
            p99 = max(known) if known else None
        mine = name == rt.instance.name
        fleet[name] = InstanceLatency(
            name=name,
            p99_seconds=float(p99) if isinstance(p99, int | float) else None,
            # For the target, the heavier of the two windows: assess (background traffic only) and
            # confirm (while the probe burst ran).
            waiting=max(_num(f.get("waiting")), _num(confirm.get("metric_waiting")) if mine else 0.0),
            running=max(_num(f.get("running")), _num(confirm.get("metric_running")) if mine else 0.0),
            kv_cache_usage=max(
                _num(f.get("kv_cache_usage")), _num(confirm.get("metric_kv")) if mine else 0.0
            ),
            healthy=bool(f.get("healthy", True)),
            drained=bool(f.get("drained", False)),
        )
    if rt.instance.name not in fleet:
        fleet[rt.instance.name] = InstanceLatency(rt.instance.name, confirm.get("probe_p99"))
    state = rt.control.state(rt.instance)
    t.add(
        "instance_state",
        rt.service.control.kind,
        f"{rt.instance.name}: healthy={state.healthy} drained={state.drained} "
        f"limit={state.concurrency_limit} model={state.model_version} restarts={state.restarts}",
        {k: v for k, v in state.as_dict().items() if k != "faults"},
    )
    me = fleet[rt.instance.name]
    t.add(
        "target_load",
        "metrics",
        f"{me.name}: p99 {me.p99_seconds}s, waiting {me.waiting:.1f}, running {me.running:.1f}, "
        f"KV cache {me.kv_cache_usage:.0%}",
        {
            "p99": me.p99_seconds,
            "waiting": me.waiting,
            "running": me.running,
            "kv_cache_usage": me.kv_cache_usage,
        },
    )
    d = diagnose_latency(
        rt.instance.name,
        fleet,
        slo_p99_seconds=s.slo_p99_seconds,
        queue_threshold=s.queue_threshold,
        kv_cache_threshold=s.kv_cache_threshold,
        fleet_share_threshold=s.fleet_share_threshold,
    )
    t.decide("diagnosis", d.diagnosis, d.reason)
    return t.done(
        f"diagnosis {d.diagnosis}: {d.reason}",
        data={
            "diagnosis": d.diagnosis,
            "reason": d.reason,
            "scope": d.scope,
            "healthy_others": d.healthy_others,
            "over_slo": d.over_slo,
            "concurrency_limit": state.concurrency_limit,
        },
    )
