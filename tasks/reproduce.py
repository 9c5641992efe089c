"""Step 5 — reproduce: show the problem again, on the isolated instance, before changing anything."""

from __future__ import annotations

from llmedic.anomalies import home_of
from llmedic.anomalies.base import Reproduction
from llmedic.errors import LlmedicError
from llmedic.incident import Step, StepResult
from llmedic.playbook import MemoryLeakSettings
from tasks.runtime import Runtime, StepContext, StepTimer, step_task

__all__ = ["reproduce", "reproduce_data", "reproduce_leak"]


@step_task(Step.REPRODUCE)
def reproduce(ctx: StepContext) -> Reproduction:
    """Show the problem again, on the isolated instance, before changing anything (the home knows how)."""
    result: Reproduction = home_of(ctx.anomaly).reproduce(Runtime(ctx))
    return result


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
