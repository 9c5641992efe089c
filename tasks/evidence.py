"""Step 3 — collect evidence & locate: the figures behind a diagnosis."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmedic.adapters.shell import make_shell, run_template
from llmedic.analysis.latency import InstanceLatency, diagnose_latency
from llmedic.analysis.logaudit import audit_log
from llmedic.diagnoses import MemoryLeakDiagnosis
from llmedic.errors import LlmedicError
from llmedic.hostcheck import host_report, problems
from llmedic.incident import IncidentStore, Step, StepResult
from llmedic.models import Release, config_diff
from llmedic.playbook import DataSettings, LatencySettings, MemoryLeakSettings
from llmedic.redact import mask
from tasks.runtime import Runtime, StepContext, StepTimer, step_task

if TYPE_CHECKING:  # pandas/SciPy: imported where used, not at every flow's start-up
    from llmedic.adapters.datastore import Version

__all__ = ["evidence_data", "evidence_latency", "evidence_leak", "release_evidence", "system_evidence"]


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


@step_task(Step.EVIDENCE)
def evidence_latency(ctx: StepContext, confirm: dict[str, Any], assess: dict[str, Any]) -> StepResult:
    """Percentiles, queue, KV cache and instance state of the fleet → a diagnosis."""
    rt = Runtime(ctx)
    s = rt.settings_as(LatencySettings)
    t = StepTimer(Step.EVIDENCE)
    fleet_fig: dict[str, dict[str, Any]] = assess.get("fleet", {})
    fleet: dict[str, InstanceLatency] = {}
    for name, f in fleet_fig.items():
        p99 = f.get("p99")
        if name == rt.instance.name:
            # The target's own figures: the worst of the metrics and the confirmation probes, so a
            # metrics gap falls back to what the probes measured.
            known = [
                float(v)
                for v in (p99, confirm.get("metric_p99"), confirm.get("probe_p99"))
                if isinstance(v, int | float) and v == v
            ]
            p99 = max(known) if known else None
        mine = name == rt.instance.name
        fleet[name] = InstanceLatency(
            name=name,
            p99_seconds=float(p99) if isinstance(p99, int | float) else None,
            # For the target, the heavier of the two windows: assess (background traffic only) and
            # confirm (while the probe burst ran).
            waiting=max(_num(f.get("waiting")), _num(confirm.get("metric_waiting")) if mine else 0.0),
            running=max(_num(f.get("running")), _num(confirm.get("metric_running")) if mine else 0.0),
            kv_cache_usage=max(
                _num(f.get("kv_cache_usage")), _num(confirm.get("metric_kv")) if mine else 0.0
            ),
            healthy=bool(f.get("healthy", True)),
            drained=bool(f.get("drained", False)),
            ttft_p99=float(f["ttft_p99"]) if isinstance(f.get("ttft_p99"), int | float) else None,
            itl_p99=float(f["itl_p99"]) if isinstance(f.get("itl_p99"), int | float) else None,
        )
    if rt.instance.name not in fleet:
        fleet[rt.instance.name] = InstanceLatency(rt.instance.name, confirm.get("probe_p99"))
    state = rt.control.state(rt.instance)
    t.add(
        "instance_state",
        rt.service.control.kind,
        f"{rt.instance.name}: healthy={state.healthy} drained={state.drained} "
        f"limit={state.concurrency_limit} model={state.model_version} restarts={state.restarts}",
        state.as_dict(),
    )
    me = fleet[rt.instance.name]
    t.add(
        "target_load",
        "metrics",
        f"{me.name}: p99 {me.p99_seconds}s (TTFT p99 {me.ttft_p99}s, inter-token p99 {me.itl_p99}s), "
        f"waiting {me.waiting:.1f}, running {me.running:.1f}, KV cache {me.kv_cache_usage:.0%}",
        {
            "p99": me.p99_seconds,
            "waiting": me.waiting,
            "running": me.running,
            "kv_cache_usage": me.kv_cache_usage,
            "ttft_p99": me.ttft_p99,
            "itl_p99": me.itl_p99,
        },
    )
    release_evidence(rt, t)
    d = diagnose_latency(
        rt.instance.name,
        fleet,
        slo_p99_seconds=s.slo_p99_seconds,
        queue_threshold=s.queue_threshold,
        kv_cache_threshold=s.kv_cache_threshold,
        fleet_share_threshold=s.fleet_share_threshold,
        itl_p99_threshold=s.itl_p99_threshold_seconds,
    )
    system_evidence(rt, t)
    t.decide("diagnosis", d.diagnosis, d.reason)
    return t.done(
        f"diagnosis {d.diagnosis}: {d.reason}",
        data={
            "diagnosis": d.diagnosis,
            "reason": d.reason,
            "scope": d.scope,
            "healthy_others": d.healthy_others,
            "over_slo": d.over_slo,
            "concurrency_limit": state.concurrency_limit,
        },
    )


@step_task(Step.EVIDENCE)
def evidence_data(ctx: StepContext, confirm: dict[str, Any], assess: dict[str, Any]) -> StepResult:
    """Profile, worst columns, sample rows (secrets masked), version history and the first version
    with the defect → a diagnosis."""
    from llmedic.analysis.data_diagnosis import bisect_first_bad, diagnose_data

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


@step_task(Step.EVIDENCE)
def evidence_leak(ctx: StepContext, confirm: dict[str, Any], assess: dict[str, Any]) -> StepResult:
    """The fitted trend of each instance and their state → one leaking process, or the release."""
    rt = Runtime(ctx)
    s = rt.settings_as(MemoryLeakSettings)
    t = StepTimer(Step.EVIDENCE)
    fleet: dict[str, dict[str, Any]] = confirm.get("fleet", {})
    leaking = sorted(n for n, v in fleet.items() if v.get("leaking"))
    states = {i.name: rt.control.state(i) for i in rt.in_rotation()}
    for name, v in fleet.items():
        st = states.get(name)
        t.add(
            f"trend_{name}",
            "leak-detector",
            f"{name}: {v.get('reason')}",
            {**v, "state": st.as_dict() if st else None},
        )
    share = len(leaking) / len(fleet) if fleet else 0.0
    healthy_others = sum(
        1 for n, st in states.items() if n != rt.instance.name and st.healthy and n not in leaking
    )
    mine = fleet.get(rt.instance.name, {})
    versions = sorted({st.model_version or "?" for st in states.values()})
    release_evidence(rt, t, served={n: st.model_version or "unknown" for n, st in states.items()})
    if len(fleet) > 1 and share >= s.fleet_share_threshold:
        diagnosis = MemoryLeakDiagnosis.FLEET_LEAK
        reason = f"{len(leaking)} of {len(fleet)} instances leak (model versions {versions}): the release leaks, not one process"
    else:
        diagnosis = MemoryLeakDiagnosis.INSTANCE_LEAK
        hours = mine.get("hours_to_limit")
        reason = (
            f"{rt.instance.name} grows {float(mine.get('slope_per_hour', 0)) / 2**20:.0f} MiB/h"
            + (f", limit in {float(hours):.1f} h" if hours is not None else "")
            + f"; {len(fleet) - len(leaking)} other instance(s) flat"
        )
    system_evidence(rt, t)
    t.decide("diagnosis", diagnosis, reason)
    return t.done(
        f"diagnosis {diagnosis}: {reason}",
        data={"diagnosis": diagnosis, "reason": reason, "leaking": leaking, "healthy_others": healthy_others},
    )


def release_evidence(
    rt: Runtime, t: StepTimer, *, against: str | None = None, served: dict[str, str] | None = None
) -> tuple[Release | None, str | None, list[dict[str, Any]]]:
    """Add ``model_versions``: the current release, the version it is compared with (``against``,
    default the last good release), their configuration diff (sampling, quantisation, limits —
    whatever the releases record), what the instances serve and the recent releases. Every model
    incident carries it. Returns (current release, compared version, diff)."""
    svc = rt.service.name
    current = rt.registry.current(svc)
    if against is None:
        good = rt.registry.last_good(svc)
        against = good.version if good else None
    diff: list[dict[str, Any]] = []
    if current is not None and against is not None and against != current.version:
        try:
            diff = config_diff(rt.registry.release_of(svc, against).config, current.config)
        except LlmedicError:
            diff = []
    if served is None:
        served = {i.name: rt.control.state(i).model_version or "unknown" for i in rt.in_rotation()}
    recent = [r.model_dump(mode="json") for r in rt.registry.releases(svc)[-5:]]
    t.add(
        "model_versions",
        "registry",
        f"released {current.version if current else 'unknown'}; compared with {against or 'nothing'}; "
        f"instances serve {sorted(set(served.values()))}"
        + (f"; config changed: {', '.join(str(d['key']) for d in diff)}" if diff else "; same configuration"),
        {
            "current": current.model_dump(mode="json") if current else None,
            "compared_with": against,
            "served": served,
            "recent_releases": recent,
            "config_diff": diff,
        },
    )
    return current, against, diff


def system_evidence(rt: Runtime, t: StepTimer) -> None:
    """Every service incident's log audit and host check (gaps say why one is missing).

    ``service_log``: the instance's recent log, keywords counted, repeated lines folded into
    templates, first occurrences placed against the alert's start. ``host``: CPU, memory, disk space
    and I/O, the heaviest processes, and the service's paths (exist, readable, disk)."""
    start = None
    try:
        start = IncidentStore(Path(rt.ctx.home) / "incidents").load(rt.ctx.incident_id).alert.starts_at
    except LlmedicError:
        start = None
    try:
        text = rt.service_log()
    except LlmedicError as exc:
        t.add("service_log", "shell", f"log unreadable: {exc.message}", gap=True)
        text = ""
    if text is None:
        t.add("service_log", "shell", f"service {rt.service.name!r} names no logs command", gap=True)
    elif text:
        audit = audit_log(text, anomaly_start=start)
        t.add("service_log", "shell", audit.summary(), audit.as_dict())
    host = rt.env.host(rt.instance.host)
    try:
        if host.kind == "local":
            report = host_report(list(rt.service.paths))
        elif host.host_check is not None:
            report = json.loads(run_template(make_shell(host), rt.env.commands, host.host_check, {}).stdout)
        else:
            t.add("host", "shell", f"remote host {host.name!r} names no host_check command", gap=True)
            return
    except (LlmedicError, ValueError) as exc:
        t.add("host", "shell", f"host check failed: {exc}", gap=True)
        return
    found = problems(report)
    t.add(
        "host",
        host.name,
        f"{host.name}: load {report['load']} on {report['cpus']} CPUs"
        + (f"; problems: {'; '.join(found)}" if found else "; no resource or permission problem"),
        {**report, "problems": found},
    )
