"""Step 3 — collect evidence & locate: the figures behind a diagnosis."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmedic.anomalies import home_of
from llmedic.anomalies.base import Assessment, Confirmation, Findings
from llmedic.anomalies.common import release_evidence, system_evidence
from llmedic.incident import Step, StepResult
from llmedic.playbook import DataSettings
from llmedic.redact import mask
from tasks.runtime import Runtime, StepContext, StepTimer, step_task

if TYPE_CHECKING:  # pandas/SciPy: imported where used, not at every flow's start-up
    from llmedic.adapters.datastore import Version

__all__ = ["evidence", "evidence_data", "release_evidence", "system_evidence"]


@step_task(Step.EVIDENCE)
def evidence(ctx: StepContext, confirmed: Confirmation, assessed: Assessment) -> Findings:
    """Collect the figures behind a diagnosis and diagnose (the anomaly type's home decides)."""
    result: Findings = home_of(ctx.anomaly).evidence(Runtime(ctx), confirmed, assessed)
    return result


@step_task(Step.EVIDENCE)
def evidence_data(ctx: StepContext, confirm: dict[str, Any], assess: dict[str, Any]) -> StepResult:
    """Profile, worst columns, sample rows (secrets masked), version history and the first version
    with the defect → a diagnosis."""
    from llmedic.anomalies.data.diagnosis import bisect_first_bad, diagnose_data

    rt = Runtime(ctx)
    s = rt.settings_as(DataSettings)
    t = StepTimer(Step.EVIDENCE)
    cfg, name = rt.dataset, ctx.target
    audit = rt.audit()
    breaches = audit.breaches(ctx.anomaly)
    worst = sorted(breaches, key=lambda f: f.share, reverse=True)
    t.add(
        "worst_columns",
        "audit",
        "; ".join(f"{f.column or '(rows)'}: {f.kind} {f.share:.2%}" for f in worst[:5]) or "none",
        {"findings": [f.model_dump(mode="json") for f in worst]},
    )
    t.add(
        "column_profile",
        "audit",
        f"{len(audit.column_reports)} columns profiled; missing per row {audit.missing_per_row}",
        {
            "columns": [c.model_dump(mode="json") for c in audit.column_reports],
            "missing_by_segment": audit.missing_by_segment,
            "missing_by_day": audit.missing_by_day,
        },
    )
    if s.sample_rows:
        _, frame = rt.store.read(name, cfg, ctx.version or "current")
        positions = sorted({r for f in worst for r in f.rows})[: s.sample_rows]
        cols = (
            list(dict.fromkeys([*cfg.key, *[f.column for f in worst if f.column]])) or list(frame.columns)[:8]
        )
        secret = {c for c, spec in cfg.columns.items() if spec.secret}
        rows = [
            {"row": int(p), **{c: mask(frame[c].iloc[p], c in secret) for c in cols if c in frame.columns}}
            for p in positions
        ]
        t.add(
            "sample_rows", "datastore", f"{len(rows)} affected rows (secret columns masked)", {"rows": rows}
        )
    history = rt.store.lineage(name, ctx.version or "current")
    t.add(
        "version_history",
        "datastore",
        " ← ".join(
            f"{v.id} ({v.producer.step}{'/' + v.producer.job if v.producer.job else ''})" for v in history[:8]
        ),
        {
            "lineage": [
                {
                    "id": v.id,
                    "created_at": v.created_at.isoformat(),
                    "by": v.by,
                    "why": v.why,
                    "producer": v.producer.model_dump(),
                    "rows": v.rows,
                }
                for v in history
            ],
            "quarantined": rt.store.state(name).quarantined,
        },
    )
    first_bad: Version | None = None
    if s.bisect and len(history) > 1:
        chain = list(reversed(history[: s.bisect_max_versions]))  # oldest first; the last is ours (bad)
        kinds = {f.kind for f in breaches}

        def bad(v: Version) -> bool:
            return any(f.kind in kinds for f in rt.audit(v.id).breaches(ctx.anomaly))

        index, probes = bisect_first_bad(chain, bad)
        first_bad = chain[index]
        t.add(
            "first_bad_version",
            "datastore",
            f"the defect first appears in {first_bad.id}, produced by {first_bad.producer.step}"
            + (f" job {first_bad.producer.job}" if first_bad.producer.job else "")
            + f" ({first_bad.by}: {first_bad.why}); {probes} versions audited",
            {"version": first_bad.id, "producer": first_bad.producer.model_dump(), "probes": probes},
        )
    no_impute = frozenset(c for c, spec in cfg.columns.items() if not spec.impute)
    diagnosis, reason = diagnose_data(ctx.anomaly, audit, s.rollback_row_share, s.drop_max_share, no_impute)
    t.decide("diagnosis", diagnosis, reason)
    return t.done(
        f"diagnosis {diagnosis}: {reason}",
        data={"diagnosis": diagnosis, "reason": reason, "first_bad": first_bad.id if first_bad else None},
    )
