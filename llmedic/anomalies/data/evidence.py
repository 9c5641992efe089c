"""What the data steps read: the pinned version re-profiled (confirm), how much of it is hit and who
consumes it (assess), and everything behind a diagnosis (evidence): the worst columns, a column
profile, sample rows with secrets masked, the version history and the first version with the
defect."""

from __future__ import annotations

from llmedic.adapters.datastore import Version
from llmedic.anomalies.data.diagnosis import bisect_first_bad, diagnose_data, rows_hit
from llmedic.anomalies.data.findings import DataAudit, Finding
from llmedic.anomalies.data.results import AuditFigures, DataAssessment, DataConfirmation, DataFindings
from llmedic.anomalies.runtime import Runtime, StepTimer
from llmedic.catalog import anomaly_info
from llmedic.incident import Step
from llmedic.playbook import DataSettings
from llmedic.redact import mask

__all__ = ["assess", "confirm", "evidence"]


def confirm(rt: Runtime) -> DataConfirmation:
    """Re-profile the batch (the incident's pinned version) against its schema and the reference:
    confirmed when at least one finding of this anomaly type breaches its threshold."""
    ctx = rt.ctx
    t = StepTimer(Step.CONFIRM)
    audit = rt.audit(fresh=True)
    mine = audit.breaches(ctx.anomaly)
    others = sorted({f.anomaly.value for f in audit.breaches()} - {ctx.anomaly.value})
    figures = AuditFigures.of(audit)
    t.add(
        "profile",
        "datastore",
        f"{ctx.target}@{audit.version}: {audit.rows} rows × {audit.columns} columns, "
        f"{len(audit.breaches())} breaches" + (f" (reference {audit.reference})" if audit.reference else ""),
        figures.model_dump(),
    )
    for f in mine:
        t.add(
            f"breach_{f.kind}" + (f"_{f.column}" if f.column else ""),
            "audit",
            f.message,
            f.model_dump(mode="json"),
        )
    confirmed = bool(mine)
    reason = (
        f"{len(mine)} {ctx.anomaly.value} breach(es): " + "; ".join(f.message for f in mine[:4])
        if confirmed
        else f"no {ctx.anomaly.value} finding over its threshold in {audit.version}"
    )
    if others:
        reason += f"; also breaching: {others} (separate incidents)"
    t.decide("confirmed", "yes" if confirmed else "no", reason)
    return DataConfirmation(
        **t.stamp(f"{'confirmed' if confirmed else 'not confirmed'}: {reason}"),
        confirmed=confirmed,
        version=audit.version,
        figures=figures,
        other_anomalies=others,
    )


def assess(rt: Runtime, confirmed: DataConfirmation) -> DataAssessment:
    """Share of rows and columns hit, who consumes the dataset, and who responds."""
    ctx = rt.ctx
    t = StepTimer(Step.ASSESS)
    audit = rt.audit()
    breaches = audit.breaches(ctx.anomaly)
    columns = sorted({f.column for f in breaches if f.column})
    share = rows_hit(audit, ctx.anomaly)
    consumers = list(rt.dataset.consumers)
    state = rt.store.state(ctx.target)
    live = state.current == ctx.version
    info = anomaly_info(ctx.anomaly)
    impact = (
        f"{ctx.target}@{ctx.version}: {len(columns)} of {audit.columns} columns and about {share:.1%} of "
        f"{audit.rows} rows hit; {'the version is live' if live else 'not the current version'}"
        + (f"; consumers: {', '.join(consumers)}" if consumers else "")
    )
    scope = "dataset" if len(columns) > 1 or share > 0.5 else ("column" if columns else "dataset")
    t.add(
        "impact",
        "audit",
        impact,
        {"columns": columns, "row_share": share, "consumers": consumers, "live": live},
    )
    t.decide("scope", scope, impact)
    t.decide("route", info.team.value, f"{info.category.value} anomalies go to the {info.team.value} team")
    return DataAssessment(
        **t.stamp(f"scope {scope}; {impact}; routed to {info.team.value}"),
        scope=scope,
        impact=impact,
        team=info.team.value,
        columns=columns,
        row_share=share,
    )


def _profile(t: StepTimer, audit: DataAudit, worst: list[Finding]) -> None:
    """``worst_columns`` (this anomaly type's breaches, worst first) and ``column_profile``."""
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


def _sample_rows(rt: Runtime, t: StepTimer, worst: list[Finding], count: int) -> None:
    """``sample_rows``: a few affected rows, the key and the affected columns, secrets masked."""
    cfg = rt.dataset
    _, frame = rt.store.read(rt.ctx.target, cfg, rt.ctx.version or "current")
    positions = sorted({r for f in worst for r in f.rows})[:count]
    cols = list(dict.fromkeys([*cfg.key, *[f.column for f in worst if f.column]])) or list(frame.columns)[:8]
    secret = {c for c, spec in cfg.columns.items() if spec.secret}
    rows = [
        {"row": int(p), **{c: mask(frame[c].iloc[p], c in secret) for c in cols if c in frame.columns}}
        for p in positions
    ]
    t.add("sample_rows", "datastore", f"{len(rows)} affected rows (secret columns masked)", {"rows": rows})


def _lineage(rt: Runtime, t: StepTimer) -> list[Version]:
    """``version_history``: the pinned version and its ancestors, newest first."""
    name = rt.ctx.target
    history = rt.store.lineage(name, rt.ctx.version or "current")
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
    return history


def _first_bad(
    rt: Runtime, t: StepTimer, history: list[Version], breaches: list[Finding], max_versions: int
) -> Version:
    """``first_bad_version``: the lineage bisected for the first version with the same kind of defect."""
    chain = list(reversed(history[:max_versions]))  # oldest first; the last is ours (bad)
    kinds = {f.kind for f in breaches}

    def bad(v: Version) -> bool:
        return any(f.kind in kinds for f in rt.audit(v.id).breaches(rt.ctx.anomaly))

    index, probes = bisect_first_bad(chain, bad)
    first = chain[index]
    t.add(
        "first_bad_version",
        "datastore",
        f"the defect first appears in {first.id}, produced by {first.producer.step}"
        + (f" job {first.producer.job}" if first.producer.job else "")
        + f" ({first.by}: {first.why}); {probes} versions audited",
        {"version": first.id, "producer": first.producer.model_dump(), "probes": probes},
    )
    return first


def evidence(rt: Runtime, confirmed: DataConfirmation, assessed: DataAssessment) -> DataFindings:
    """Profile, worst columns, sample rows (secrets masked), version history and the first version
    with the defect → a diagnosis."""
    s = rt.settings_as(DataSettings)
    t = StepTimer(Step.EVIDENCE)
    audit = rt.audit()
    breaches = audit.breaches(rt.ctx.anomaly)
    worst = sorted(breaches, key=lambda f: f.share, reverse=True)
    _profile(t, audit, worst)
    if s.sample_rows:
        _sample_rows(rt, t, worst, s.sample_rows)
    history = _lineage(rt, t)
    first_bad: Version | None = None
    if s.bisect and len(history) > 1:
        first_bad = _first_bad(rt, t, history, breaches, s.bisect_max_versions)
    no_impute = frozenset(c for c, spec in rt.dataset.columns.items() if not spec.impute)
    diagnosis, reason = diagnose_data(
        rt.ctx.anomaly, audit, s.rollback_row_share, s.drop_max_share, no_impute
    )
    t.decide("diagnosis", diagnosis, reason)
    return DataFindings(
        **t.stamp(f"diagnosis {diagnosis}: {reason}"),
        diagnosis=diagnosis,
        reason=reason,
        first_bad=first_bad.id if first_bad else None,
    )
