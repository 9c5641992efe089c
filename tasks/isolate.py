"""Step 4 — isolate: keep the problem from hurting users while it is reproduced and fixed."""

from __future__ import annotations

from typing import Any

from llmedic.catalog import Risk
from llmedic.diagnoses import LatencyDiagnosis, MemoryLeakDiagnosis
from llmedic.incident import ActionRecord, Step, StepResult, utcnow
from llmedic.playbook import LatencySettings, MemoryLeakSettings
from tasks.runtime import Runtime, StepContext, StepTimer, step_task

__all__ = [
    "drain_if",
    "isolate_instance",
    "isolate_leaking",
    "quarantine_batch",
    "release_isolation",
    "release_quarantine",
]


def drain_if(
    ctx: StepContext, diagnosis: object, drain_for: str, others: int, min_healthy: int, why_not_load: str
) -> StepResult:
    """Drain the incident's instance when the diagnosis is ``drain_for`` and enough healthy
    instances remain; record why not otherwise (shared by every playbook that drains)."""
    rt = Runtime(ctx)
    t = StepTimer(Step.ISOLATE)
    if not rt.playbook.isolate:
        t.decide("isolate", "no", "the playbook turns isolation off")
        return t.done("isolation off in the playbook", status="skipped", data={"isolated": False})
    if diagnosis != drain_for:
        reason = f"diagnosis {diagnosis}: {why_not_load}"
        t.decide("isolate", "no", reason)
        return t.done(reason, status="skipped", data={"isolated": False})
    if others < max(1, min_healthy):
        reason = f"only {others} healthy instance(s) would remain (minimum {min_healthy})"
        t.decide("isolate", "no", reason)
        return t.done(reason, status="skipped", data={"isolated": False})
    action = ActionRecord(
        name="drain_instance",
        risk=Risk.LOW,
        target=rt.instance.name,
        compensation="undrain_instance",
        dry_run=ctx.dry_run,
    )
    if ctx.dry_run:
        t.decide("isolate", "would drain", f"{others} healthy instance(s) carry the traffic meanwhile")
        return t.done(f"dry run: would drain {rt.instance.name}", actions=[action], data={"isolated": False})
    rt.control.drain(rt.instance)
    action = action.model_copy(update={"applied": True, "result": "drained", "at": utcnow()})
    t.decide("isolate", "drain", f"{others} healthy instance(s) carry the traffic meanwhile")
    return t.done(f"drained {rt.instance.name}", actions=[action], data={"isolated": True})


@step_task(Step.ISOLATE)
def isolate_instance(ctx: StepContext, evidence: dict[str, Any]) -> StepResult:
    """Drain a degraded instance when enough healthy instances remain; never drain for load problems."""
    s = Runtime(ctx).settings_as(LatencySettings)
    return drain_if(
        ctx,
        evidence.get("diagnosis"),
        LatencyDiagnosis.INSTANCE_DEGRADED,
        int(evidence.get("healthy_others", 0)),
        s.min_healthy_instances,
        "draining would only push the load onto the other instances",
    )


@step_task(Step.ISOLATE)
def isolate_leaking(ctx: StepContext, evidence: dict[str, Any]) -> StepResult:
    """Drain the leaking instance (it keeps answering direct requests, for the reproduction) when
    enough healthy instances remain; a fleet-wide leak is not isolated (nowhere to send traffic)."""
    s = Runtime(ctx).settings_as(MemoryLeakSettings)
    return drain_if(
        ctx,
        evidence.get("diagnosis"),
        MemoryLeakDiagnosis.INSTANCE_LEAK,
        int(evidence.get("healthy_others", 0)),
        s.min_healthy_instances,
        "every instance leaks; draining one would only load the others",
    )


@step_task(Step.RECOVER)
def release_isolation(ctx: StepContext, isolated: bool) -> StepResult:
    """Put a drained instance back into rotation once the fix is verified."""
    rt = Runtime(ctx)
    t = StepTimer(Step.RECOVER)
    if not isolated:
        return t.done("nothing was isolated", status="skipped")
    rt.control.undrain(rt.instance)
    action = ActionRecord(
        name="undrain_instance", risk=Risk.LOW, target=rt.instance.name, applied=True, result="undrained"
    )
    return t.done(f"{rt.instance.name} back in rotation", actions=[action])


@step_task(Step.ISOLATE)
def quarantine_batch(ctx: StepContext, evidence: dict[str, Any]) -> StepResult:
    """Quarantine the bad version so it cannot reach the model: if it is current, consumers are
    re-pointed (and ``publish_to`` rewritten) to the newest good version before it."""
    rt = Runtime(ctx)
    t = StepTimer(Step.ISOLATE)
    name, vid = ctx.target, ctx.version or "current"
    if not rt.playbook.isolate:
        t.decide("isolate", "no", "the playbook turns isolation off")
        return t.done("isolation off in the playbook", status="skipped", data={"isolated": False})
    state = rt.store.state(name)
    good = rt.store.last_good(name, before=vid)
    action = ActionRecord(
        name="quarantine_version",
        risk=Risk.LOW,
        params={"version": vid},
        target=name,
        compensation=None,
        dry_run=ctx.dry_run,
    )
    live = state.current == vid
    if ctx.dry_run:
        t.decide(
            "isolate",
            "would quarantine",
            f"{vid}" + (f"; consumers would move to {good.id}" if live and good else ""),
        )
        return t.done(f"dry run: would quarantine {name}@{vid}", actions=[action], data={"isolated": False})
    moved = rt.store.quarantine(
        name, vid, rt.dataset, by="llmedic", why=f"incident {ctx.incident_id}: {evidence.get('diagnosis')}"
    )
    if moved is not None:
        result = f"quarantined {vid}; consumers moved to {moved.id}"
    elif live:
        result = f"quarantined {vid}; no earlier good version, so it stays current until the fix"
    else:
        result = f"quarantined {vid} (it was not current; consumers stay on {state.current})"
    action = action.model_copy(update={"applied": True, "result": result, "at": utcnow()})
    t.decide("isolate", "quarantine", result)
    return t.done(result, actions=[action], data={"isolated": True, "current": rt.store.state(name).current})


@step_task(Step.RECOVER)
def release_quarantine(ctx: StepContext, isolated: bool) -> StepResult:
    """The bad version stays quarantined: it is the evidence, and it must never become current again
    by accident. Recovery is the repaired (or rolled-back) version being current and published."""
    rt = Runtime(ctx)
    t = StepTimer(Step.RECOVER)
    state = rt.store.state(ctx.target)
    return t.done(
        f"{ctx.target} serves {state.current}; {ctx.version} "
        + ("stays quarantined as evidence" if ctx.version in state.quarantined else "was not quarantined"),
        status="ok" if isolated else "skipped",
        data={"current": state.current},
    )
