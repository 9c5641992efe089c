"""What the accuracy-drop steps read: the golden set re-scored and the drop test (confirm), the loss
by tag and instance (assess), and what changed since the baseline (evidence).

Every judgement compares per-item correctness on the service's golden set with the *reference
baseline* from the model registry (the current version's own baseline, else that of the newest
earlier good release): McNemar on the same items re-scored, a bootstrap interval of the per-item
difference, Wilson intervals (``stats.py``). The evidence lines up what changed since that
baseline — model release and its configuration, the knowledge datasets the service reads (with
their audits), the prompts users send — and ``diagnosis.py`` names the change that explains the
newly wrong items.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from llmedic.alerts import Alert
from llmedic.anomalies.accuracy.diagnosis import (
    DatasetChange,
    DriftColumn,
    ModelChange,
    PromptDrift,
    diagnose_accuracy,
)
from llmedic.anomalies.accuracy.results import (
    AccuracyAssessment,
    AccuracyConfirmation,
    AccuracyFindings,
    BaselineRef,
    InstanceFigure,
    TagFigure,
)
from llmedic.anomalies.accuracy.stats import DropVerdict, compare_runs, wilson_interval
from llmedic.anomalies.common import release_evidence, system_evidence
from llmedic.anomalies.runtime import Runtime, StepTimer
from llmedic.catalog import AnomalyType, anomaly_info
from llmedic.config import DataThresholds
from llmedic.drift import column_drift
from llmedic.errors import ConfigError, LlmedicError
from llmedic.golden import GoldenItem, Scorecard, sample_items
from llmedic.incident import Step
from llmedic.playbook import AccuracySettings
from llmedic.registry import Baseline

__all__ = ["assess", "confirm", "evidence", "judge", "reference", "sample"]

_WORD = re.compile(r"[a-z0-9']+")


def sample(rt: Runtime, s: AccuracySettings) -> tuple[str, list[GoldenItem]]:
    """(golden set name, the items to score): a stratified sample seeded by the incident id, so
    every step scores the same items."""
    name, items = rt.golden
    return name, sample_items(items, s.sample_size, seed=rt.ctx.incident_id)


def reference(rt: Runtime, golden: str) -> Baseline | None:
    """The reference baseline of the service on ``golden``."""
    return rt.registry.reference(rt.service.name, golden)


def judge(ref: Baseline | None, card: Scorecard, s: AccuracySettings) -> DropVerdict | None:
    """The drop test of ``card`` against ``ref`` on the items both scored (None: no baseline)."""
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


def confirm(rt: Runtime) -> AccuracyConfirmation:
    """Re-score the golden set (or a stratified sample) against the in-rotation instances and test
    the drop against the reference baseline: significant (one-sided, ``alpha``) *and* at least
    ``margin``. Without any baseline, ``min_accuracy`` decides on the Wilson upper bound."""
    s = rt.settings_as(AccuracySettings)
    t = StepTimer(Step.CONFIRM)
    golden, items = sample(rt, s)
    ref = reference(rt, golden)
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
    verdict = judge(ref, card, s)
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
    return AccuracyConfirmation(
        **t.stamp(why),
        confirmed=confirmed,
        golden=golden,
        sample=[i.id for i in items],
        verdict=verdict,
        reference=BaselineRef.of(ref) if ref else None,
        card=card,
    )


def _tags(card: Scorecard, scores: dict[str, int]) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for it in card.items:
        if it.id not in scores:
            continue
        for tag in it.tags or ["(untagged)"]:
            k, n = out.get(tag, (0, 0))
            out[tag] = (k + scores[it.id], n + 1)
    return out


def _tag_figures(card: Scorecard, ref: Baseline | None) -> list[TagFigure]:
    """Each tag now against the same items in the baseline, worst drop first."""
    tags_base = _tags(card, ref.scores) if ref else {}
    rows: list[TagFigure] = []
    for tag, (k, n) in _tags(card, card.correctness()).items():
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
    return rows


def assess(rt: Runtime, confirmed: AccuracyConfirmation) -> AccuracyAssessment:
    """Which tags and which instances lost how much, against the same items of the baseline."""
    t = StepTimer(Step.ASSESS)
    card = confirmed.card
    ref = reference(rt, confirmed.golden)
    rows = _tag_figures(card, ref)
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
    verdict = confirmed.verdict
    impact = (
        f"accuracy {round(verdict.base_accuracy, 4) if verdict else 0:.0%} → "
        f"{round(verdict.new_accuracy, 4) if verdict else 0:.0%} on {len(card.correctness())} golden items; "
        "worst tags: "
        + (", ".join(r.tag for r in worst[:3]) or "none")
        + (f"; instances serve {versions}" if len(versions) > 1 else "")
    )
    t.decide(
        "route", "algorithm team", "model quality is the algorithm team's; data causes are handed to data"
    )
    return AccuracyAssessment(
        **t.stamp(impact),
        scope=scope,
        impact=impact,
        team=anomaly_info(rt.ctx.anomaly).team.value,
        tags=rows,
        instances=per_inst,
        versions=versions,
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


def _prompt_drift(rt: Runtime, s: AccuracySettings, items: list[GoldenItem]) -> PromptDrift | None:
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
        return PromptDrift(prompts=len(prompts), drifted=False, note="too few prompts to judge")
    vocab = {w for i in items for w in _WORD.findall(i.question.lower())}
    ref = _features([i.question for i in items], vocab)
    cur = _features(prompts, vocab)
    cols = []
    for col in ("tokens", "domain_share"):
        d = column_drift(col, ref[col], cur[col], True, DataThresholds())
        if d is not None:
            cols.append(DriftColumn(column=col, method=d.method, statistic=d.statistic, drifted=d.drifted))
    return PromptDrift(
        prompts=len(prompts),
        drifted=any(c.drifted for c in cols),
        columns=cols,
        mean_domain_share=round(float(cur["domain_share"].mean()), 4),
        reference_domain_share=round(float(ref["domain_share"].mean()), 4),
    )


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


def _worst_items(t: StepTimer, card: Scorecard, newly_wrong: list[str], limit: int) -> None:
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
        for i in newly_wrong[:limit]
        if i in by_id
    ]
    t.add(
        "worst_items",
        "golden",
        f"{len(newly_wrong)} items newly wrong; e.g. "
        + "; ".join(f"{w['id']}: expected {w['expected']!r}, got {w['answer']!r}" for w in worst[:3]),
        {"items": worst, "newly_wrong": newly_wrong},
    )


def _dataset_changes(
    rt: Runtime, t: StepTimer, ref: Baseline | None, newly_wrong: list[str]
) -> list[DatasetChange]:
    """Each consumed dataset's version now vs when the baseline was scored, with its audit."""
    changed: list[DatasetChange] = []
    for ds, now_v in rt.dataset_versions().items():
        then = (ref.datasets if ref else {}).get(ds)
        audit = rt.audit_dataset(ds)
        breaches = audit.breaches()
        entry: dict[str, Any] = {
            "baseline_version": then,
            "current": now_v,
            "breaches": [f.model_dump(mode="json") for f in breaches],
        }
        rows: set[str] = set()
        moved = bool(then and then != now_v)
        if then and moved:
            rows = _changed_rows(rt, ds, then, now_v)
            hit = sorted(set(newly_wrong) & rows)
            entry["changed_rows"] = sorted(rows)
            entry["newly_wrong_in_changed_rows"] = hit
            changed.append(
                DatasetChange(
                    dataset=ds,
                    baseline_version=then,
                    current=now_v,
                    breach_anomalies=[f.anomaly for f in breaches],
                    newly_wrong_in_changed_rows=len(hit),
                )
            )
        t.add(
            f"dataset_{ds}",
            "datastore",
            f"{ds}: {then or 'unknown'} at the baseline → {now_v} now"
            + (f"; {len(rows)} rows changed" if moved else "; unchanged")
            + (f"; audit: {len(breaches)} breach(es)" if breaches else "; audit clean"),
            entry,
        )
    return changed


def _drift_evidence(rt: Runtime, t: StepTimer, s: AccuracySettings) -> PromptDrift | None:
    drift = _prompt_drift(rt, s, list(rt.golden[1]))
    if drift is None:
        t.add("prompt_drift", "control", "no prompt log to compare (set services[].prompt_log)", gap=True)
    else:
        t.add(
            "prompt_drift",
            "control",
            f"{drift.prompts} recent prompts: "
            + ("drifted from" if drift.drifted else "in line with")
            + " the golden questions",
            drift.model_dump(mode="json", exclude_none=True),
        )
    return drift


def evidence(rt: Runtime, confirmed: AccuracyConfirmation, assessed: AccuracyAssessment) -> AccuracyFindings:
    """Worst items with their answers; what changed since the baseline (model release and its
    configuration diff, knowledge dataset versions, their audits, the rows that changed); prompt
    drift; and the diagnosis that explains the newly wrong items."""
    s = rt.settings_as(AccuracySettings)
    t = StepTimer(Step.EVIDENCE)
    card = confirmed.card
    ref = reference(rt, confirmed.golden)
    verdict = confirmed.verdict
    newly_wrong = list(
        (verdict.newly_wrong if verdict else ()) or [i.id for i in card.scored if not i.correct]
    )
    _worst_items(t, card, newly_wrong, s.worst_items)
    # Model: what is released, what instances serve, and how the configuration differs.
    ref_version = ref.version if ref else None
    current, _, diff = release_evidence(rt, t, against=ref_version, served=card.versions)
    model = (
        ModelChange(
            service=rt.service.name,
            version=current.version,
            since=current.at,
            baseline_version=ref_version,
            config_keys=[str(d["key"]) for d in diff],
        )
        if current and ref_version and current.version != ref_version
        else None
    )
    changed = _dataset_changes(rt, t, ref, newly_wrong)
    drift = _drift_evidence(rt, t, s)
    finding = diagnose_accuracy(len(newly_wrong), changed, model, drift)
    if finding.dataset is not None:
        ds, version = finding.dataset.dataset, finding.dataset.current
        for anomaly, count in finding.handoffs():
            opened = (
                "dry run: not opened" if rt.ctx.dry_run else _open_data_incident(ds, version, anomaly, count)
            )
            t.add(f"data_incident_{anomaly.value}", "orchestration", f"{anomaly.value} for {ds}: {opened}")
            t.decide("handoff", f"data incident {anomaly.value}", f"{ds}@{version}: {opened}")
    system_evidence(rt, t)
    t.decide("diagnosis", finding.diagnosis, finding.reason)
    return AccuracyFindings(
        **t.stamp(f"{finding.diagnosis}: {finding.reason}"),
        diagnosis=finding.diagnosis,
        reason=finding.reason,
        changed=sorted(c.dataset for c in changed),
    )
