"""The accuracy-drop home's steps: re-score the golden set and test the drop, break it down, line
up what changed since the baseline, freeze further updates, reproduce the wrong answers (and ask
the baseline's version on a drained standby), verify, lift the freeze."""

from __future__ import annotations

from llmedic.anomalies.accuracy.diagnosis import Diagnosis
from llmedic.anomalies.accuracy.evidence import assess, confirm, evidence, reference, sample
from llmedic.anomalies.accuracy.results import (
    AccuracyAssessment,
    AccuracyConfirmation,
    AccuracyFindings,
    AccuracyReproduction,
)
from llmedic.anomalies.accuracy.verify import verify
from llmedic.anomalies.base import Home, Isolation, Recovery
from llmedic.anomalies.runtime import Runtime, StepTimer
from llmedic.catalog import Risk
from llmedic.golden import GoldenItem
from llmedic.incident import ActionRecord, Step, utcnow
from llmedic.playbook import AccuracySettings

__all__ = ["HOME", "freeze_updates", "lift_freeze", "reproduce"]


def freeze_updates(rt: Runtime, found: AccuracyFindings) -> Isolation:
    """Freeze model releases and changes to the consumed datasets while the incident is open, so
    nothing moves under the investigation (llmedic's own fix still may)."""
    t = StepTimer(Step.ISOLATE)
    svc = rt.service.name
    action = ActionRecord(
        name="freeze_updates", risk=Risk.LOW, params={}, target=svc, compensation="unfreeze_updates"
    )
    if not rt.playbook.isolate:
        return Isolation(**t.stamp("isolation off in the playbook", status="skipped"), isolated=False)
    if rt.ctx.dry_run:
        t.decide("isolate", "would freeze", f"releases of {svc} and its datasets")
        return Isolation(
            **t.stamp(f"dry run: would freeze updates to {svc}", actions=[action]), isolated=False
        )
    rt.registry.freeze(
        svc, by="llmedic", note=f"accuracy incident: {found.diagnosis}", incident=rt.ctx.incident_id
    )
    result = f"model releases of {svc} and changes to {rt.env.datasets_of(svc) or 'no datasets'} frozen"
    t.decide("isolate", "freeze", result)
    applied = action.model_copy(update={"applied": True, "result": result, "at": utcnow()})
    return Isolation(**t.stamp(result, actions=[applied]), isolated=True)


def lift_freeze(rt: Runtime, isolated: bool) -> Recovery:
    """Lift the freeze this incident set."""
    t = StepTimer(Step.RECOVER)
    if not isolated:
        return Recovery(**t.stamp("nothing was frozen", status="skipped"))
    lifted = rt.registry.unfreeze(
        rt.service.name, by="llmedic", note="incident resolved", incident=rt.ctx.incident_id
    )
    return Recovery(
        **t.stamp(f"updates to {rt.service.name} " + ("unfrozen" if lifted else "were not frozen"))
    )


def reproduce(rt: Runtime) -> AccuracyReproduction:
    """Ask the newly wrong items again, ``reproduce_repeats`` times, on the incident's instance."""
    s = rt.settings_as(AccuracySettings)
    t = StepTimer(Step.REPRODUCE)
    golden, items = sample(rt, s)
    ref = reference(rt, golden)
    base = ref.scores if ref else {}
    card = rt.score([i for i in items if base.get(i.id, 1)], [rt.instance])
    suspects = [i for i in items if base.get(i.id, 1) and not card.correctness().get(i.id, 1)]
    if not suspects:
        return AccuracyReproduction(
            **t.stamp(f"every baseline-correct item answered right on {rt.instance.name}"), reproduced=False
        )
    again = rt.score(suspects * s.reproduce_repeats, [rt.instance])
    wrong = sum(1 for i in again.scored if not i.correct)
    share = wrong / len(again.scored) if again.scored else 0.0
    t.add(
        "reproduce",
        "endpoint",
        f"{len(suspects)} items wrong on {rt.instance.name}; asked {s.reproduce_repeats}× more: "
        f"wrong {wrong} of {len(again.scored)} times ({share:.0%})",
        {"items": [i.id for i in suspects], "wrong": wrong, "asked": len(again.scored)},
    )
    canary = _canary_check(rt, t, ref.version if ref else None, suspects)
    return AccuracyReproduction(
        **t.stamp(
            f"reproduced: {len(suspects)} items wrong, {share:.0%} of repeats wrong again"
            + (f"; {canary}" if canary else "")
        ),
        reproduced=True,
        wrong_items=len(suspects),
        repeat_wrong_share=round(share, 4),
        canary=canary,
    )


def _canary_check(
    rt: Runtime, t: StepTimer, ref_version: str | None, suspects: list[GoldenItem]
) -> str | None:
    """When the release changed since the baseline and a drained standby exists, serve the
    baseline's version on it (no user traffic) and ask it the wrong items: does the old version
    still answer them right? The standby goes back to what it served."""
    cur = rt.registry.current(rt.service.name)
    if ref_version is None or cur is None or cur.version == ref_version or rt.ctx.dry_run:
        return None
    spare = [i for i in rt.service.standby if rt.control.state(i).drained]
    if not spare:
        t.add("canary", "control", "no drained standby to run the baseline version on", gap=True)
        return None
    inst = spare[0]
    was = rt.control.state(inst).model_version or cur.version
    try:
        rt.control.set_model(inst, ref_version)
        card = rt.score(suspects, [inst])
    finally:
        rt.control.set_model(inst, was)
    right = sum(1 for i in card.scored if i.correct)
    line = f"canary {inst.name} on {ref_version} answers {right} of {len(card.scored)} of them right"
    t.add(
        "canary",
        "endpoint",
        line,
        {"instance": inst.name, "version": ref_version, "right": right, "asked": len(card.scored)},
    )
    return line


HOME: Home[AccuracyConfirmation, AccuracyAssessment, AccuracyFindings] = Home(
    diagnosis=Diagnosis,
    confirm=confirm,
    assess=assess,
    evidence=evidence,
    isolate=freeze_updates,
    reproduce=reproduce,
    verify=verify,
    release=lift_freeze,
)
