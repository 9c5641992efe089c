"""Step 5 — reproduce: show the problem again, on the isolated instance, before changing anything."""

from __future__ import annotations

from llmedic.adapters.endpoint import summarise_probes
from llmedic.errors import LlmedicError
from llmedic.incident import Step, StepResult
from llmedic.playbook import LatencySettings, MemoryLeakSettings
from tasks.runtime import Runtime, StepContext, StepTimer, step_task

__all__ = ["reproduce_data", "reproduce_latency", "reproduce_leak"]


@step_task(Step.REPRODUCE)
def reproduce_latency(ctx: StepContext) -> StepResult:
    """A probe burst straight at the instance (it still answers direct requests while drained)."""
    rt = Runtime(ctx)
    s = rt.settings_as(LatencySettings)
    t = StepTimer(Step.REPRODUCE)
    with rt.endpoint(timeout=s.probe_timeout_seconds) as ep:
        results = rt.latency_probes(ep, s.reproduce_probes)
    summary = summarise_probes(results)
    reproduced = summary.p99 > s.slo_p99_seconds or summary.failures > 0
    t.add(
        "reproduce_probes",
        "probe",
        f"{summary.count} probes: p99 {summary.p99:.3f}s (SLO {s.slo_p99_seconds:g}s), {summary.failures} failed",
        summary.as_dict(),
    )
    t.decide(
        "reproduced",
        "yes" if reproduced else "no",
        "the burst shows the slowness"
        if reproduced
        else "the burst stayed within the SLO: the problem may be transient",
    )
    return t.done(
        f"{'reproduced' if reproduced else 'not reproduced'}: probe p99 {summary.p99:.3f}s",
        data={"reproduced": reproduced, "p99": summary.p99},
    )


@step_task(Step.REPRODUCE)
def reproduce_data(ctx: StepContext) -> StepResult:
    """Re-run the validation on the stored (quarantined) copy, from scratch, not from a cache."""
    rt = Runtime(ctx)
    t = StepTimer(Step.REPRODUCE)
    audit = rt.audit(fresh=True)
    found = audit.breaches(ctx.anomaly)
    reproduced = bool(found)
    t.add(
        "revalidation",
        "audit",
        f"{ctx.target}@{audit.version} re-validated: {len(found)} {ctx.anomaly.value} breach(es)",
        {"findings": [f.model_dump(mode="json") for f in found]},
    )
    t.decide(
        "reproduced",
        "yes" if reproduced else "no",
        "; ".join(f.message for f in found[:3]) or "clean on re-validation",
    )
    return t.done(
        f"{'reproduced' if reproduced else 'not reproduced'} on the stored copy of {audit.version}",
        data={"reproduced": reproduced},
    )


@step_task(Step.REPRODUCE)
def reproduce_leak(ctx: StepContext) -> StepResult:
    """Send requests straight to the (drained) instance and read its memory before and after: a
    process that keeps what each request allocated shows it here, with no other traffic."""
    rt = Runtime(ctx)
    s = rt.settings_as(MemoryLeakSettings)
    t = StepTimer(Step.REPRODUCE)
    before = rt.memory([rt.instance], 0, 1)[rt.instance.name]["y"]
    with rt.endpoint(timeout=30) as ep:
        results = ep.burst(
            s.reproduce_requests,
            prompt=s.probe_prompt,
            concurrency=4,
            max_tokens=16,
        )
    after = rt.memory([rt.instance], 0, 1)[rt.instance.name]["y"]
    grew = (after[-1] - before[-1]) if before and after else 0.0
    per_request = grew / max(1, len(results))
    reproduced = grew > 0
    t.add(
        "reproduce_memory",
        "probe",
        f"{len(results)} requests: memory {before[-1] / 2**20 if before else float('nan'):.0f} → {after[-1] / 2**20 if after else float('nan'):.0f} MiB "
        f"({per_request / 2**20:.2f} MiB kept per request)",
        {
            "before": before[-1] if before else None,
            "after": after[-1] if after else None,
            "requests": len(results),
        },
    )
    try:
        heap = rt.control.heap_profile(rt.instance)
        top = heap.get("top") or []
        t.add(
            "heap_profile",
            str(heap.get("kind", "profile")),
            "top allocation sites: " + ", ".join(f"{x['site']} {x['bytes'] / 2**20:.1f} MiB" for x in top[:3])
            if top
            else "profile taken (see data)",
            heap,
        )
    except LlmedicError as exc:
        t.add("heap_profile", "control", f"no heap profile: {exc.message}", gap=True)
    t.decide(
        "reproduced",
        "yes" if reproduced else "no",
        "memory grew with the requests"
        if reproduced
        else "memory did not grow with requests: the leak may be time-driven",
    )
    return t.done(
        f"{'reproduced' if reproduced else 'not reproduced'}: {per_request / 2**20:.2f} MiB per request",
        data={"reproduced": reproduced, "per_request_bytes": per_request},
    )
