"""The step tasks of the accuracy-drop playbook.

Every judgement compares per-item correctness on the service's golden set with the *reference
baseline* from the model registry (the current version's own baseline, else that of the newest
earlier good release): McNemar on the same items re-scored, a bootstrap interval of the per-item
difference, Wilson intervals (llmedic/anomalies/accuracy/stats.py). The evidence lines up what changed
since that baseline — model release and its configuration, the knowledge datasets the service
reads (with their audits), the prompts users send — and the diagnosis names the change that
explains the newly wrong items.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pandas as pd
from pydantic import BaseModel

from llmedic.alerts import Alert
from llmedic.analysis.drift import column_drift
from llmedic.anomalies.accuracy.diagnosis import DatasetChange, ModelChange, PromptDrift, diagnose_accuracy
from llmedic.anomalies.accuracy.stats import DropVerdict, compare_runs, wilson_interval
from llmedic.catalog import AnomalyType, Risk
from llmedic.config import DataThresholds
from llmedic.errors import ConfigError, LlmedicError
from llmedic.golden import GoldenItem, Scorecard, sample_items
from llmedic.incident import ActionRecord, Step, StepResult, VerificationCheck, utcnow
from llmedic.playbook import AccuracySettings
from llmedic.registry import Baseline
from tasks.evidence import release_evidence, system_evidence
from tasks.runtime import Runtime, StepContext, StepTimer, step_task
from tasks.verify import verification_result

__all__ = [
    "assess_accuracy",
    "confirm_accuracy",
    "evidence_accuracy",
    "freeze_updates",
    "lift_freeze",
    "reproduce_accuracy",
    "verify_accuracy",
]

_WORD = re.compile(r"[a-z0-9']+")


def _sample(rt: Runtime, s: AccuracySettings) -> tuple[str, list[GoldenItem]]:
    name, items = rt.golden
    return name, sample_items(items, s.sample_size, seed=rt.ctx.incident_id)


def _reference(rt: Runtime, golden: str) -> Baseline | None:
    return rt.registry.reference(rt.service.name, golden)


def _judge(ref: Baseline | None, card: Scorecard, s: AccuracySettings) -> DropVerdict | None:
    if ref is None:
        return None
    now = card.correctness()
    base = {k: v for k, v in ref.scores.items() if k in now} or ref.scores
    return compare_runs(base, now, margin=s.margin, alpha=s.alpha)


def _no_reference(rt: Runtime, golden: str) -> ConfigError:
    return ConfigError(
        f"service {rt.service.name!r} has no baseline on golden set {golden!r} and the playbook sets "
        "no min_accuracy, so a drop cannot be judged",
        hint=f"record one with `llmedic model baseline {rt.service.name}` while the service is "
        "healthy, or set settings.min_accuracy in playbooks/accuracy_drop.yaml",
    )


@step_task(Step.CONFIRM)
def confirm_accuracy(ctx: StepContext) -> StepResult:
    """Re-score the golden set (or a stratified sample) against the in-rotation instances and test
    the drop against the reference baseline: significant (one-sided, ``alpha``) *and* at least
    ``margin``. Without any baseline, ``min_accuracy`` decides on the Wilson upper bound."""
    rt = Runtime(ctx)
    s = rt.settings_as(AccuracySettings)
    t = StepTimer(Step.CONFIRM)
    golden, items = _sample(rt, s)
    ref = _reference(rt, golden)
    if ref is None and s.min_accuracy is None:
        raise _no_reference(rt, golden)
    card = rt.score(items, rt.in_rotation())
    summary = card.summary()
    t.add(
        "golden_score",
        "endpoint",
        f"{summary['correct']}/{summary['answered']} correct on {golden} "
        f"({card.accuracy:.1%}; {card.errors} failed requests; {summary['items_per_second']} items/s)",
        {"golden": golden, **summary},
    )
    verdict = _judge(ref, card, s)
    if verdict is not None:
        confirmed = verdict.dropped
        why = (
            f"{verdict.method}: {verdict.base_accuracy:.1%} → {verdict.new_accuracy:.1%} "
            f"(drop {verdict.drop:+.1%}, p={verdict.p_value:.2g}, margin {s.margin:.0%}) against "
            f"the baseline of {ref.version if ref else '?'}"
        )
        t.add("drop_test", "statistics", why, verdict.as_dict())
        if verdict.power_note:
            t.add("power", "statistics", verdict.power_note, {"items": len(items)}, gap=True)
    else:
        k, n = sum(card.correctness().values()), len(card.correctness())
        lo, hi = wilson_interval(k, n)
        confirmed = hi < (s.min_accuracy or 0)
        why = f"no baseline: {k}/{n} correct, Wilson 95% [{lo:.1%}, {hi:.1%}] vs min_accuracy {s.min_accuracy:.0%}"
        t.add("drop_test", "statistics", why, {"wilson": [lo, hi], "min_accuracy": s.min_accuracy})
    t.decide("confirm", "confirmed" if confirmed else "not confirmed", why)
    return t.done(
        why,
        data={
            "confirmed": confirmed,
            "golden": golden,
            "sample": [i.id for i in items],
            "verdict": verdict.as_dict() if verdict else None,
            "reference": {
                "version": ref.version,
                "at": ref.at.isoformat(),
                "accuracy": round(ref.accuracy, 4),
                "datasets": ref.datasets,
            }
            if ref
            else None,
            "card": card.model_dump(mode="json"),
        },
    )


class TagFigure(BaseModel):
    """Accuracy of one tag now and in the baseline (same items)."""

    tag: str
    items: int
    now: float
    baseline: float | None
    drop: float | None


class InstanceFigure(BaseModel):
    """Accuracy of one instance's share of the golden requests."""

    correct: int
    answered: int
    accuracy: float
    version: str | None


def _tags(items: list[dict[str, Any]], scores: dict[str, int]) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for it in items:
        if it["id"] not in scores:
            continue
        for tag in it["tags"] or ["(untagged)"]:
            k, n = out.get(tag, (0, 0))
            out[tag] = (k + scores[it["id"]], n + 1)
    return out


@step_task(Step.ASSESS)
def assess_accuracy(ctx: StepContext, confirm: dict[str, Any] | None = None) -> StepResult:
    """Which tags and which instances lost how much, against the same items of the baseline."""
    rt = Runtime(ctx)
    t = StepTimer(Step.ASSESS)
    data = confirm or {}
    card = Scorecard.model_validate(data["card"])
    golden = str(data["golden"])
    ref = _reference(rt, golden)
    now = card.correctness()
    items = [i.model_dump() for i in card.items]
    tags_now = _tags(items, now)
    tags_base = _tags(items, ref.scores) if ref else {}
    rows: list[TagFigure] = []
    for tag, (k, n) in tags_now.items():
        kb, nb = tags_base.get(tag, (0, 0))
        base_acc = kb / nb if nb else None
        rows.append(
            TagFigure(
                tag=tag,
                items=n,
                now=round(k / n, 4),
                baseline=round(base_acc, 4) if base_acc is not None else None,
                drop=round(base_acc - k / n, 4) if base_acc is not None else None,
            )
        )
    rows.sort(key=lambda r: (-(r.drop or 0), r.tag))
    worst = [r for r in rows if (r.drop or 0) > 0][:5]
    t.add(
        "by_tag",
        "golden",
        "; ".join(f"{r.tag} {r.baseline or 0:.0%} → {r.now:.0%}" for r in worst) or "no tag lost accuracy",
        {"tags": [r.model_dump() for r in rows]},
    )
    per_inst = {
        name: InstanceFigure(correct=k, answered=n, accuracy=round(k / n, 4), version=card.versions.get(name))
        for name, (k, n) in card.by_instance().items()
    }
    t.add(
        "by_instance",
        "golden",
        ", ".join(f"{n} {v.accuracy:.0%} ({v.version})" for n, v in per_inst.items()),
        {n: v.model_dump() for n, v in per_inst.items()},
    )
    floor = wilson_interval(sum(ref.scores.values()), len(ref.scores))[0] if ref else 0.0
    low = sorted(n for n, v in per_inst.items() if v.accuracy < floor)
    versions = sorted(set(card.versions.values()))
    scope = "fleet" if len(low) == len(per_inst) else ("instances " + ", ".join(low) if low else "none")
    verdict = data.get("verdict") or {}
    impact = (
        f"accuracy {verdict.get('base_accuracy', 0):.0%} → {verdict.get('new_accuracy', 0):.0%} on "
        f"{len(now)} golden items; worst tags: "
        + (", ".join(r.tag for r in worst[:3]) or "none")
        + (f"; instances serve {versions}" if len(versions) > 1 else "")
    )
    t.decide(
        "route", "algorithm team", "model quality is the algorithm team's; data causes are handed to data"
    )
    return t.done(
        impact,
        data={
            "scope": scope,
            "impact": impact,
            "tags": [r.model_dump() for r in rows],
            "instances": {n: v.model_dump() for n, v in per_inst.items()},
            "versions": versions,
        },
    )


def _features(prompts: list[str], vocab: set[str]) -> pd.DataFrame:
    rows = []
    for p in prompts:
        words = _WORD.findall(p.lower())
        rows.append(
            {
                "tokens": float(len(words)),
                "domain_share": (sum(1 for w in words if w in vocab) / len(words)) if words else 0.0,
            }
        )
    return pd.DataFrame(rows, columns=["tokens", "domain_share"])


def _prompt_drift(rt: Runtime, s: AccuracySettings, items: list[GoldenItem]) -> dict[str, Any] | None:
    """Recent user prompts vs the golden questions: length and share of in-domain words."""
    if s.prompt_sample == 0:
        return None
    prompts: list[str] = []
    per = max(1, s.prompt_sample // max(1, len(rt.in_rotation())))
    for inst in rt.in_rotation():
        got = rt.control.recent_prompts(inst, per)
        if got is None:
            return None
        prompts.extend(got)
    if len(prompts) < 20:
        return {"prompts": len(prompts), "drifted": False, "columns": [], "note": "too few prompts to judge"}
    vocab = {w for i in items for w in _WORD.findall(i.question.lower())}
    ref = _features([i.question for i in items], vocab)
    cur = _features(prompts, vocab)
    cols = []
    for col in ("tokens", "domain_share"):
        d = column_drift(col, ref[col], cur[col], True, DataThresholds())
        if d is not None:
            cols.append({"column": col, "method": d.method, "statistic": d.statistic, "drifted": d.drifted})
    return {
        "prompts": len(prompts),
        "drifted": any(c["drifted"] for c in cols),
        "columns": cols,
        "mean_domain_share": round(float(cur["domain_share"].mean()), 4),
        "reference_domain_share": round(float(ref["domain_share"].mean()), 4),
    }


def _changed_rows(rt: Runtime, dataset: str, old: str, new: str, key: str = "id") -> set[str]:
    """Keys whose rows differ between two versions of a dataset (added, removed or edited)."""
    cfg = rt.env.dataset(dataset)
    _, a = rt.store.read(dataset, cfg, old)
    _, b = rt.store.read(dataset, cfg, new)
    if key not in a.columns or key not in b.columns:
        return set()
    ra = {str(r[key]): tuple(map(str, r)) for _, r in a.iterrows()}
    rb = {str(r[key]): tuple(map(str, r)) for _, r in b.iterrows()}
    return {k for k in set(ra) | set(rb) if ra.get(k) != rb.get(k)}


def _open_data_incident(dataset: str, version: str, anomaly: AnomalyType, count: int) -> str:
    from llmedic.orchestration import dispatch_alerts

    alert = Alert(
        source="incident",
        anomaly=anomaly,
        alertname="KnowledgeDatasetBreach",
        target=dataset,
        severity="warning",
        labels={"dataset": dataset, "version": version, "anomaly": anomaly.value},
        annotations={
            "summary": f"{dataset}@{version}: {count} {anomaly.value} breach(es) behind an accuracy drop"
        },
    )
    try:
        (d,) = dispatch_alerts([alert])
        return f"{d.status} {d.flow_run_id}"
    except LlmedicError as exc:
        return f"not opened: {exc.code}: {exc.message}"


@step_task(Step.EVIDENCE)
def evidence_accuracy(ctx: StepContext, confirm: dict[str, Any], assess: dict[str, Any]) -> StepResult:
    """Worst items with their answers; what changed since the baseline (model release and its
    configuration diff, knowledge dataset versions, their audits, the rows that changed); prompt
    drift; and the diagnosis that explains the newly wrong items."""
    rt = Runtime(ctx)
    s = rt.settings_as(AccuracySettings)
    t = StepTimer(Step.EVIDENCE)
    svc = rt.service.name
    card = Scorecard.model_validate(confirm["card"])
    golden = str(confirm["golden"])
    ref = _reference(rt, golden)
    verdict = confirm.get("verdict") or {}
    newly_wrong = list(verdict.get("newly_wrong") or [i.id for i in card.scored if not i.correct])
    by_id = {i.id: i for i in card.items}
    worst = [
        {
            "id": i,
            "question": by_id[i].question,
            "expected": by_id[i].expected,
            "answer": by_id[i].answer,
            "tags": by_id[i].tags,
            "instance": by_id[i].instance,
        }
        for i in newly_wrong[: s.worst_items]
        if i in by_id
    ]
    t.add(
        "worst_items",
        "golden",
        f"{len(newly_wrong)} items newly wrong; e.g. "
        + "; ".join(f"{w['id']}: expected {w['expected']!r}, got {w['answer']!r}" for w in worst[:3]),
        {"items": worst, "newly_wrong": newly_wrong},
    )

    # Model: what is released, what instances serve, and how the configuration differs.
    ref_version = ref.version if ref else None
    current, _, diff = release_evidence(rt, t, against=ref_version, served=card.versions)
    model_changed = bool(current and ref_version and current.version != ref_version)

    # Data: each consumed dataset's version now vs when the baseline was scored.
    consumed = rt.dataset_versions()
    changed: dict[str, dict[str, Any]] = {}
    for ds, now_v in consumed.items():
        then = (ref.datasets if ref else {}).get(ds)
        audit = rt.audit_dataset(ds)
        breaches = [f.model_dump(mode="json") for f in audit.breaches()]
        entry: dict[str, Any] = {"baseline_version": then, "current": now_v, "breaches": breaches}
        if then and then != now_v:
            rows = _changed_rows(rt, ds, then, now_v)
            entry["changed_rows"] = sorted(rows)
            entry["newly_wrong_in_changed_rows"] = sorted(set(newly_wrong) & rows)
            changed[ds] = entry
        t.add(
            f"dataset_{ds}",
            "datastore",
            f"{ds}: {then or 'unknown'} at the baseline → {now_v} now"
            + (
                f"; {len(entry.get('changed_rows', []))} rows changed"
                if then and then != now_v
                else "; unchanged"
            )
            + (f"; audit: {len(breaches)} breach(es)" if breaches else "; audit clean"),
            entry,
        )

    drift = _prompt_drift(rt, s, list(rt.golden[1]))
    if drift is None:
        t.add("prompt_drift", "control", "no prompt log to compare (set services[].prompt_log)", gap=True)
    else:
        t.add(
            "prompt_drift",
            "control",
            f"{drift['prompts']} recent prompts: "
            + ("drifted from" if drift["drifted"] else "in line with")
            + " the golden questions",
            drift,
        )

    # Diagnosis: the change that explains the newly wrong items.
    finding = diagnose_accuracy(
        len(newly_wrong),
        [
            DatasetChange(
                dataset=ds,
                baseline_version=e["baseline_version"],
                current=e["current"],
                breach_anomalies=[AnomalyType(b["anomaly"]) for b in e["breaches"]],
                newly_wrong_in_changed_rows=len(e["newly_wrong_in_changed_rows"]),
            )
            for ds, e in changed.items()
        ],
        ModelChange(
            service=svc,
            version=current.version,
            since=current.at,
            baseline_version=ref_version,
            config_keys=[str(d["key"]) for d in diff],
        )
        if model_changed and current and ref_version
        else None,
        PromptDrift.model_validate(drift) if drift else None,
    )
    diagnosis, reason = finding.diagnosis, finding.reason
    for anomaly, count in finding.handoffs():
        assert finding.dataset is not None  # handoffs come from the dataset behind the finding
        ds, version = finding.dataset.dataset, finding.dataset.current
        opened = "dry run: not opened" if ctx.dry_run else _open_data_incident(ds, version, anomaly, count)
        t.add(f"data_incident_{anomaly.value}", "orchestration", f"{anomaly.value} for {ds}: {opened}")
        t.decide("handoff", f"data incident {anomaly.value}", f"{ds}@{version}: {opened}")
    system_evidence(rt, t)
    t.decide("diagnosis", diagnosis, reason)
    return t.done(
        f"{diagnosis}: {reason}", data={"diagnosis": diagnosis, "reason": reason, "changed": sorted(changed)}
    )


@step_task(Step.ISOLATE)
def freeze_updates(ctx: StepContext, evidence: dict[str, Any]) -> StepResult:
    """Freeze model releases and changes to the consumed datasets while the incident is open, so
    nothing moves under the investigation (llmedic's own fix still may)."""
    rt = Runtime(ctx)
    t = StepTimer(Step.ISOLATE)
    svc = rt.service.name
    action = ActionRecord(
        name="freeze_updates", risk=Risk.LOW, params={}, target=svc, compensation="unfreeze_updates"
    )
    if not rt.playbook.isolate:
        return t.done("isolation off in the playbook", status="skipped", data={"isolated": False})
    if ctx.dry_run:
        t.decide("isolate", "would freeze", f"releases of {svc} and its datasets")
        return t.done(f"dry run: would freeze updates to {svc}", actions=[action], data={"isolated": False})
    rt.registry.freeze(
        svc, by="llmedic", note=f"accuracy incident: {evidence.get('diagnosis')}", incident=ctx.incident_id
    )
    result = f"model releases of {svc} and changes to {rt.env.datasets_of(svc) or 'no datasets'} frozen"
    t.decide("isolate", "freeze", result)
    return t.done(
        result,
        actions=[action.model_copy(update={"applied": True, "result": result, "at": utcnow()})],
        data={"isolated": True},
    )


@step_task(Step.RECOVER)
def lift_freeze(ctx: StepContext, isolated: bool) -> StepResult:
    """Lift the freeze this incident set."""
    rt = Runtime(ctx)
    t = StepTimer(Step.RECOVER)
    if not isolated:
        return t.done("nothing was frozen", status="skipped")
    lifted = rt.registry.unfreeze(
        rt.service.name, by="llmedic", note="incident resolved", incident=ctx.incident_id
    )
    return t.done(f"updates to {rt.service.name} " + ("unfrozen" if lifted else "were not frozen"))


@step_task(Step.REPRODUCE)
def reproduce_accuracy(ctx: StepContext) -> StepResult:
    """Ask the newly wrong items again, ``reproduce_repeats`` times, on the incident's instance."""
    rt = Runtime(ctx)
    s = rt.settings_as(AccuracySettings)
    t = StepTimer(Step.REPRODUCE)
    golden, items = _sample(rt, s)
    ref = _reference(rt, golden)
    base = ref.scores if ref else {}
    card = rt.score([i for i in items if base.get(i.id, 1)], [rt.instance])
    suspects = [i for i in items if base.get(i.id, 1) and not card.correctness().get(i.id, 1)]
    if not suspects:
        return t.done(
            f"every baseline-correct item answered right on {rt.instance.name}", data={"reproduced": 0}
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
    return t.done(
        f"reproduced: {len(suspects)} items wrong, {share:.0%} of repeats wrong again"
        + (f"; {canary}" if canary else ""),
        data={"reproduced": len(suspects), "repeat_wrong_share": round(share, 4), "canary": canary},
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


@step_task(Step.VERIFY)
def verify_accuracy(
    ctx: StepContext, rounds: int = 3, interval_seconds: float = 2.0, confirm: dict[str, Any] | None = None
) -> StepResult:
    """Re-score the same items: no significant drop left, and accuracy back within the baseline's
    Wilson interval (polled a few times: caches and knowledge indexes take a moment to reload)."""
    rt = Runtime(ctx)
    s = rt.settings_as(AccuracySettings)
    t = StepTimer(Step.VERIFY)
    golden, items = _sample(rt, s)
    ref = _reference(rt, golden)
    checks: list[VerificationCheck] = []
    for attempt in range(1, rounds + 1):
        card = rt.score(items, rt.in_rotation())
        verdict = _judge(ref, card, s)
        if verdict is None:
            k, n = sum(card.correctness().values()), len(card.correctness())
            hi = wilson_interval(k, n)[1]
            checks = [
                VerificationCheck(
                    name="accuracy_above_minimum",
                    passed=hi >= (s.min_accuracy or 0),
                    observed=round(k / n, 4) if n else 0.0,
                    expected=f">= {s.min_accuracy} (Wilson upper bound)",
                )
            ]
        else:
            checks = [
                VerificationCheck(
                    name="no_significant_drop",
                    passed=not verdict.dropped,
                    observed=f"{verdict.new_accuracy:.1%} (p={verdict.p_value:.2g})",
                    expected=f"no drop of {s.margin:.0%} at α={s.alpha}",
                ),
                VerificationCheck(
                    name="within_baseline_interval",
                    passed=verdict.within_baseline,
                    observed=round(verdict.new_accuracy, 4),
                    expected=f">= {verdict.base_interval[0]:.4f} (baseline {verdict.base_accuracy:.1%}, Wilson 95%)",
                ),
            ]
        checks.append(
            VerificationCheck(
                name="no_failed_requests", passed=card.errors == 0, observed=card.errors, expected="0"
            )
        )
        t.add(
            f"verify_round_{attempt}",
            "endpoint",
            f"{card.accuracy:.1%} on {len(card.scored)} items, versions {sorted(set(card.versions.values()))}",
            {**card.summary(), "verdict": verdict.as_dict() if verdict else None},
        )
        if all(c.passed for c in checks):
            break
        if attempt < rounds:
            time.sleep(interval_seconds)
    return verification_result(t, checks)
