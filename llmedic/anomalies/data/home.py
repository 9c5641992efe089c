"""The data home's steps, shared by ``data_missing``, ``data_format`` and ``data_quality``: re-profile
the pinned version, measure how much of it is hit, find the diagnosis and the first bad version,
quarantine the version (consumers move to the last good one), re-validate the stored copy, verify by
re-auditing what consumers now see. The bad version is never modified."""

from __future__ import annotations

from enum import StrEnum

from llmedic.anomalies.base import Home, Isolation, Recovery, Reproduction
from llmedic.anomalies.data.diagnosis import FormatDiagnosis, MissingDiagnosis, QualityDiagnosis
from llmedic.anomalies.data.evidence import assess, confirm, evidence
from llmedic.anomalies.data.results import DataAssessment, DataConfirmation, DataFindings
from llmedic.anomalies.data.verify import verify
from llmedic.anomalies.runtime import Runtime, StepTimer
from llmedic.catalog import Risk
from llmedic.incident import ActionRecord, Step, utcnow

__all__ = ["FORMAT", "MISSING", "QUALITY", "isolate", "release", "reproduce"]


def isolate(rt: Runtime, found: DataFindings) -> Isolation:
    """Quarantine the bad version so it cannot reach the model: if it is current, consumers are
    re-pointed (and ``publish_to`` rewritten) to the newest good version before it."""
    ctx = rt.ctx
    t = StepTimer(Step.ISOLATE)
    name, vid = ctx.target, ctx.version or "current"
    if not rt.playbook.isolate:
        t.decide("isolate", "no", "the playbook turns isolation off")
        return Isolation(**t.stamp("isolation off in the playbook", status="skipped"), isolated=False)
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
        return Isolation(
            **t.stamp(f"dry run: would quarantine {name}@{vid}", actions=[action]), isolated=False
        )
    moved = rt.store.quarantine(
        name, vid, rt.dataset, by="llmedic", why=f"incident {ctx.incident_id}: {found.diagnosis}"
    )
    if moved is not None:
        result = f"quarantined {vid}; consumers moved to {moved.id}"
    elif live:
        result = f"quarantined {vid}; no earlier good version, so it stays current until the fix"
    else:
        result = f"quarantined {vid} (it was not current; consumers stay on {state.current})"
    action = action.model_copy(update={"applied": True, "result": result, "at": utcnow()})
    t.decide("isolate", "quarantine", result)
    return Isolation(**t.stamp(result, actions=[action]), isolated=True)


def reproduce(rt: Runtime) -> Reproduction:
    """Re-run the validation on the stored (quarantined) copy, from scratch, not from a cache."""
    ctx = rt.ctx
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
    return Reproduction(
        **t.stamp(
            f"{'reproduced' if reproduced else 'not reproduced'} on the stored copy of {audit.version}"
        ),
        reproduced=reproduced,
    )


def release(rt: Runtime, isolated: bool) -> Recovery:
    """The bad version stays quarantined: it is the evidence, and it must never become current again
    by accident. Recovery is the repaired (or rolled-back) version being current and published."""
    ctx = rt.ctx
    t = StepTimer(Step.RECOVER)
    state = rt.store.state(ctx.target)
    return Recovery(
        **t.stamp(
            f"{ctx.target} serves {state.current}; {ctx.version} "
            + (
                "stays quarantined as evidence" if ctx.version in state.quarantined else "was not quarantined"
            ),
            status="ok" if isolated else "skipped",
        )
    )


def _home(diagnosis: type[StrEnum]) -> Home[DataConfirmation, DataAssessment, DataFindings]:
    return Home(
        diagnosis=diagnosis,
        confirm=confirm,
        assess=assess,
        evidence=evidence,
        isolate=isolate,
        reproduce=reproduce,
        verify=verify,
        release=release,
    )


MISSING = _home(MissingDiagnosis)
"""``data_missing``: the same steps, its own diagnoses."""
FORMAT = _home(FormatDiagnosis)
"""``data_format``."""
QUALITY = _home(QualityDiagnosis)
"""``data_quality``."""
