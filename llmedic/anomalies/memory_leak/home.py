"""The memory-leak home's steps: judge every in-rotation instance's memory series, drain the leaking
one, reproduce with requests straight at it, verify memory is back near its baseline and flat, put
it back."""

from __future__ import annotations

from llmedic.anomalies.base import Home, Isolation
from llmedic.anomalies.common import contain_instance, drain_if, release_drain
from llmedic.anomalies.memory_leak.diagnosis import Diagnosis
from llmedic.anomalies.memory_leak.evidence import assess, confirm, evidence
from llmedic.anomalies.memory_leak.results import (
    LeakAssessment,
    LeakConfirmation,
    LeakFindings,
    LeakReproduction,
)
from llmedic.anomalies.memory_leak.verify import verify
from llmedic.anomalies.runtime import Runtime, StepTimer
from llmedic.errors import LlmedicError
from llmedic.incident import Step
from llmedic.playbook import MemoryLeakSettings

__all__ = ["HOME", "contain", "isolate", "reproduce"]


def isolate(rt: Runtime, found: LeakFindings) -> Isolation:
    """Drain the leaking instance (it keeps answering direct requests, for the reproduction) when
    enough healthy instances remain; a fleet-wide leak is not isolated (nowhere to send traffic)."""
    return drain_if(
        rt,
        found.diagnosis,
        Diagnosis.INSTANCE_LEAK,
        found.healthy_others,
        rt.settings_as(MemoryLeakSettings).min_healthy_instances,
        "every instance leaks; draining one would only load the others",
    )


def contain(rt: Runtime, found: LeakFindings, scope: str) -> Isolation:
    """A fix refused, failed or rejected: the leaking instance still leaves rotation when the others
    carry the traffic (it would otherwise run out of memory while the incident waits for a human)."""
    return contain_instance(
        rt, found.healthy_others, rt.settings_as(MemoryLeakSettings).min_healthy_instances, scope
    )


def reproduce(rt: Runtime) -> LeakReproduction:
    """Send requests straight to the (drained) instance and read its memory before and after: a
    process that keeps what each request allocated shows it here, with no other traffic."""
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
    return LeakReproduction(
        **t.stamp(
            f"{'reproduced' if reproduced else 'not reproduced'}: {per_request / 2**20:.2f} MiB per request"
        ),
        reproduced=reproduced,
        per_request_bytes=per_request,
    )


HOME: Home[LeakConfirmation, LeakAssessment, LeakFindings] = Home(
    diagnosis=Diagnosis,
    confirm=confirm,
    assess=assess,
    evidence=evidence,
    isolate=isolate,
    reproduce=reproduce,
    verify=verify,
    release=release_drain,
    contain=contain,
)
