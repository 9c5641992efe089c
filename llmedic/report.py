"""The incident report: Markdown for people, with the guide's post-mortem questions pre-filled from
the timeline (the knowledge base, :mod:`llmedic.store.knowledge`, archives it beside the JSON record)."""

from __future__ import annotations

from llmedic.catalog import AnomalyType
from llmedic.incident import ApprovalRecord, Incident, Outcome

__all__ = ["render_markdown"]

_PREVENTION: dict[AnomalyType, str] = {
    AnomalyType.LATENCY: "capacity headroom of 20–30 %, alert on p99 and queue depth before the SLO is breached, "
    "load tests in CI on every model or config change",
    AnomalyType.MEMORY_LEAK: "soak tests with leak detection before release; scheduled rolling restarts as a stop-gap",
    AnomalyType.ACCURACY_DROP: "golden-set evaluation in CI and on a schedule; version every model and dataset",
    AnomalyType.DATA_MISSING: "validate batches before preprocessing; monthly data audit",
    AnomalyType.DATA_FORMAT: "schema validation at ingestion; monthly data audit",
    AnomalyType.DATA_QUALITY: "outlier and drift checks at ingestion; monthly data audit",
    AnomalyType.GPU_FAULT: "GPU health monitoring (XID, ECC, thermals); spare capacity to drain onto",
    AnomalyType.DEPENDENCY_CONFLICT: "lock files, pip check in CI, a pinned CUDA/driver matrix",
    AnomalyType.NETWORK_INTERRUPTION: "retries with backoff, resumable transfers, redundant paths",
}


def _fmt_s(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds:.1f}s"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _approval_line(a: ApprovalRecord) -> str:
    """One decision at a gate: who, how they were verified, or why the attempt was refused."""
    how = f"verified by {a.identity}" if a.verified else "unverified"
    if a.refused:
        head = f"- `{a.action}`: attempt by `{a.by}` **refused** ({a.identity}) at {a.decided_at:%H:%M:%S} UTC: {a.refused}"
    else:
        head = (
            f"- `{a.action}` ({a.risk.value} risk): **{'approved' if a.approved else 'rejected'}** by `{a.by}` "
            f"via {a.via}, {how}, at {a.decided_at:%H:%M:%S} UTC (asked {a.requested_at:%H:%M:%S})"
        )
    return head + (f" — “{a.comment}”" if a.comment else "")


def _notifications(i: Incident) -> list[str]:
    """What reached whom: one row per route and channel of every message."""
    if not i.notifications:
        return ["- none sent"]
    legacy = [f"- {_cell(n.text)}" for n in i.notifications if n.kind == "legacy"]
    rows = [
        f"| {n.kind} | {d.at:%H:%M:%S} | {d.route} | {d.channel or '—'} | {_cell(d.destination) or '—'} "
        f"| **{d.status}** | {d.attempts} | {_cell(d.error) or (f'HTTP {d.http_status}' if d.http_status else '—')} |"
        for n in i.notifications
        for d in n.deliveries
    ]
    table = [
        "| message | at (UTC) | route | channel | destination | status | attempts | detail |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
    ]
    return (table if rows else []) + ([""] if rows and legacy else []) + legacy


def render_markdown(incident: Incident) -> str:
    """A complete, readable incident report."""
    i = incident
    lines = _header(i)
    if i.escalated:
        lines += [f"> **Escalated:** {i.escalation_reason}", ""]
    lines += _timeline(i)
    lines += ["", "## Decisions", ""]
    lines += [f"- **{d.topic}** → `{d.choice}`: {d.reason}" for d in i.decisions] or ["- none"]
    lines += ["", "## Approvals", ""]
    lines += [_approval_line(a) for a in i.approvals] or ["- none needed"]
    lines += ["", "## Notifications", "", *_notifications(i)]
    lines += _attempts(i) + _actions(i) + _verification(i)
    lines += ["", "## Evidence", ""]
    for e in i.evidence:
        gap = " **(gap)**" if e.gap else ""
        lines.append(f"- **{e.name}** [{e.source}]{gap}: {e.summary}")
    lines += _post_mortem(i)
    if i.related:
        lines += ["", "## Similar past incidents", ""] + [f"- `{r}`" for r in i.related]
    return "\n".join(lines) + "\n"


def _header(i: Incident) -> list[str]:
    return [
        f"# Incident {i.id}: {i.title}",
        "",
        "| field | value |",
        "|---|---|",
        f"| anomaly | `{i.anomaly.value}` ({i.category.value}) |",
        f"| team | {i.team.value} |",
        f"| target | `{i.target}`" + (f" (service `{i.service}`)" if i.service else "") + " |",
        f"| outcome | **{i.outcome.value}**" + (" — escalated" if i.escalated else "") + " |",
        f"| opened | {i.opened_at:%Y-%m-%d %H:%M:%S} UTC |",
        f"| closed | {i.closed_at:%Y-%m-%d %H:%M:%S} UTC |" if i.closed_at else "| closed | — |",
        f"| duration | {_fmt_s(i.duration_seconds)} |",
        f"| scope | {i.scope or '—'} |",
        f"| diagnosis | {i.diagnosis or '—'} |",
        f"| dry run | {'yes' if i.dry_run else 'no'} |",
        f"| Prefect flow run | `{i.flow_run_id}` |",
        f"| alert | `{i.alert.alertname}` from {i.alert.source} ({i.alert.severity}): {i.alert.summary} |",
        "",
    ]


def _timeline(i: Incident) -> list[str]:
    lines = [
        "## Timeline",
        "",
        "| step | started (UTC) | took | status | summary |",
        "|---|---|---|---|---|",
    ]
    for r in i.timeline:
        summary = r.summary.replace("|", "\\|")
        lines.append(
            f"| {r.step.value} | {r.started_at:%H:%M:%S} | {_fmt_s(r.seconds)} | {r.status} | {summary} |"
        )
    return lines


def _actions(i: Incident) -> list[str]:
    lines = [
        "",
        "## Actions",
        "",
        "| action | target | risk | applied | result | compensation |",
        "|---|---|---|---|---|---|",
    ]
    for a in i.actions:
        comp = a.compensation or "—"
        if a.compensated:
            comp += " (ran)"
        applied = "dry run" if a.dry_run else ("yes" if a.applied else "no")
        lines.append(f"| {a.name} | {a.target} | {a.risk.value} | {applied} | {a.result or '—'} | {comp} |")
    return lines


def _attempts(i: Incident) -> list[str]:
    """One row per fix tried (``remediation.max_attempts``), and the watch after recovery."""
    if not i.attempts:
        return []
    lines = [
        "",
        "## Fix attempts",
        "",
        "| # | fix | diagnosis | risk | gate | result | rolled back | summary |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for a in i.attempts:
        lines.append(
            f"| {a.number} | {a.fix} | {_cell(a.diagnosis)} | {a.risk.value} | {a.approval} | {a.result} | "
            f"{'yes' if a.compensated else 'no'} | {_cell(a.summary)} |"
        )
    watched = [r for r in i.timeline if r.step.value == "watch"]
    if watched:
        lines += ["", "Watch after recovery:", ""] + [f"- {_cell(r.summary)}" for r in watched]
    return lines


def _verification(i: Incident) -> list[str]:
    lines = ["", "## Verification", ""]
    if i.verification:
        lines += [f"Result: **{'passed' if i.verification.passed else 'failed'}**", ""]
        lines += ["| check | passed | observed | expected |", "|---|---|---|---|"]
        lines += [
            f"| {c.name} | {'yes' if c.passed else 'no'} | {c.observed} | {c.expected} |"
            for c in i.verification.checks
        ]
    else:
        lines.append("not run")
    return lines


def _post_mortem(i: Incident) -> list[str]:
    fixed = [
        a
        for a in i.actions
        if a.applied and not a.dry_run and a.name not in ("drain_instance", "undrain_instance")
    ]
    return [
        "",
        "## Post-mortem",
        "",
        f"**What was the cause?** {i.diagnosis or 'not determined'}.",
        "",
        "**How was it handled?** "
        + (
            "; ".join(f"{a.name} on {a.target} ({a.result})" for a in fixed)
            if fixed
            else "no change was made to production"
        )
        + ".",
        "",
        "**Was it effective?** "
        + (
            "yes — verification passed."
            if i.outcome == Outcome.RESOLVED
            else f"no — outcome `{i.outcome.value}`"
            + (f": {i.escalation_reason}" if i.escalation_reason else ".")
        ),
        "",
        f"**How do we prevent it?** {_PREVENTION[i.anomaly]}.",
        "",
        "_Edit this section during the review; the rest is generated from the incident record._",
    ]
