"""Step 4 — isolate: keep the problem from hurting users while it is reproduced and fixed."""

from __future__ import annotations

from typing import Any

from llmedic.anomalies import common, home_of
from llmedic.anomalies.base import Findings, Isolation, Recovery
from llmedic.catalog import Risk
from llmedic.incident import ActionRecord, Step, StepResult, utcnow
from tasks.runtime import Runtime, StepContext, StepTimer, step_task

__all__ = [
    "drain_if",
    "isolate",
    "quarantine_batch",
    "release",
    "release_isolation",
    "release_quarantine",
]


def drain_if(
    ctx: StepContext, diagnosis: object, drain_for: str, others: int, min_healthy: int, why_not_load: str
) -> StepResult:
    """Transitional, for the step tasks not yet moved into a home: see ``llmedic.anomalies.common.drain_if``."""
    return common.drain_if(Runtime(ctx), diagnosis, drain_for, others, min_healthy, why_not_load)


@step_task(Step.ISOLATE)
def isolate(ctx: StepContext, found: Findings) -> Isolation:
    """Keep the problem from hurting users while it is reproduced and fixed (the home decides how)."""
    result: Isolation = home_of(ctx.anomaly).isolate(Runtime(ctx), found)
    return result


@step_task(Step.RECOVER)
def release(ctx: StepContext, isolated: bool) -> Recovery:
    """Undo the isolation once the fix is verified (the home decides how)."""
    result: Recovery = home_of(ctx.anomaly).release(Runtime(ctx), isolated)
    return result


@step_task(Step.RECOVER)
def release_isolation(ctx: StepContext, isolated: bool) -> StepResult:
    """Put a drained instance back into rotation once the fix is verified."""
    return common.release_drain(Runtime(ctx), isolated)


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
