"""The monthly data audit: every declared dataset's current version against its schema and its
reference version; a table artifact and a report; one incident flow per breaching anomaly type; and
the audit history, so the trend of data quality is visible.

Scheduled by ``schedules.data_audit`` in ``llmedic.yaml`` (default ``0 3 1 * *``); also run from
the Prefect UI (deployment ``llmedic-data-audit/default``) and with ``llmedic audit data``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.client.schemas.objects import State
from prefect.context import FlowRunContext
from prefect.states import Completed, Failed
from pydantic import BaseModel, Field

from llmedic.adapters.datastore import DataStore
from llmedic.alerts import Alert
from llmedic.analysis.data_audit import FINDING_ANOMALY
from llmedic.auditing import AuditHistory, AuditRecord, audit_version
from llmedic.config import load_environment, settings_from_env
from llmedic.errors import LlmedicError
from llmedic.incident import utcnow
from llmedic.orchestration import dispatch_alerts

__all__ = ["AuditRequest", "data_audit", "render_audit"]


class AuditRequest(BaseModel):
    """Parameters of an audit run (the Prefect UI shows them as a form)."""

    datasets: list[str] = Field(default_factory=list)
    """Datasets to audit; empty means every declared dataset."""
    open_incidents: bool = True
    """Start the matching data flow for every breaching anomaly type."""


@task(name="audit-dataset")
def audit_one(name: str, run: str) -> AuditRecord:
    """Audit the current version of one dataset (errors are recorded, never fatal to the audit)."""
    settings = settings_from_env()
    env = load_environment(settings=settings)
    store = DataStore(settings.datasets_dir)
    rec = AuditRecord(at=utcnow(), run=run, dataset=name)
    try:
        cfg = env.dataset(name)
        store.ensure_seeded(name, cfg)
        audit = audit_version(store, name, cfg)
    except LlmedicError as exc:
        return rec.model_copy(update={"error": f"{exc.code}: {exc.message}"})
    breaches: dict[str, int] = {}
    for f in audit.breaches():
        breaches[f.anomaly.value] = breaches.get(f.anomaly.value, 0) + 1
    return rec.model_copy(
        update={
            "version": audit.version,
            "rows": audit.rows,
            "clean_cell_share": round(audit.clean_cell_share, 6),
            "missing_cells": audit.missing_cells,
            "invalid_cells": sum(
                v for c in audit.column_reports for k, v in c.invalid.items() if k != "outliers"
            ),
            "duplicate_rows": audit.duplicate_rows,
            "drifted_columns": audit.drifted_columns,
            "breaches": breaches,
        }
    )


@task(name="open-data-incidents")
def open_incidents(record: AuditRecord) -> dict[str, str]:
    """One run of the matching data flow per breaching anomaly type (idempotent per version: a
    second audit of the same version never opens a second incident)."""
    out: dict[str, str] = {}
    for anomaly, count in record.breaches.items():
        alert = Alert(
            source="audit",
            anomaly=next(a for a in set(FINDING_ANOMALY.values()) if a.value == anomaly),
            alertname="DataAuditBreach",
            target=record.dataset,
            severity="warning",
            labels={"dataset": record.dataset, "version": record.version or "", "anomaly": anomaly},
            annotations={
                "summary": f"{record.dataset}@{record.version}: {count} {anomaly} breach(es) in the data audit"
            },
        )
        try:
            (d,) = dispatch_alerts([alert])
            out[anomaly] = f"{d.status} {d.flow_run_id}"
        except LlmedicError as exc:
            out[anomaly] = f"not opened: {exc.code}: {exc.message}"
    return out


def render_audit(records: list[AuditRecord], history: AuditHistory) -> str:
    """The audit report: this run's table, then each dataset's trend."""
    lines = [f"# Data audit {records[0].at:%Y-%m-%d %H:%M} UTC" if records else "# Data audit", ""]
    lines += [
        "| dataset | version | rows | clean cells | missing | invalid | duplicates | drifted columns | breaches | incidents |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        if r.error:
            lines.append(f"| {r.dataset} | — | — | — | — | — | — | — | **error**: {r.error} | — |")
            continue
        breaches = ", ".join(f"{k} ×{v}" for k, v in r.breaches.items()) or "none"
        incidents = "; ".join(f"{k}: {v}" for k, v in r.incidents.items()) or "—"
        clean = f"{r.clean_cell_share:.2%}" if r.clean_cell_share is not None else "—"
        lines.append(
            f"| {r.dataset} | `{r.version}` | {r.rows} | {clean} | {r.missing_cells} | {r.invalid_cells} | "
            f"{r.duplicate_rows} | {', '.join(r.drifted_columns) or '—'} | {breaches} | {incidents} |"
        )
    lines += ["", "## Trend", ""]
    for r in records:
        trend = history.trend(r.dataset)
        if not trend:
            continue
        lines += [
            f"### {r.dataset}",
            "",
            "| audited | version | rows | clean cells | breaches |",
            "|---|---|---|---|---|",
        ]
        for t in trend:
            clean = f"{t.clean_cell_share:.2%}" if t.clean_cell_share is not None else "—"
            lines.append(
                f"| {t.at:%Y-%m-%d %H:%M} | `{t.version}` | {t.rows} | {clean} | {sum(t.breaches.values())} |"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


@flow(name="llmedic-data-audit", description=__doc__, log_prints=True)
def data_audit(request: AuditRequest | None = None) -> State[Any]:
    """Audit the declared datasets and open incidents for what breaches."""
    req = request or AuditRequest()
    settings = settings_from_env()
    env = load_environment(settings=settings)
    ctx = FlowRunContext.get()
    run = str(ctx.flow_run.id) if ctx and ctx.flow_run else "local"
    names = req.datasets or sorted(env.datasets)
    unknown = [n for n in names if n not in env.datasets]
    if unknown:
        return Failed(message=f"unknown dataset(s) {unknown}; declared: {sorted(env.datasets)}")
    records = [audit_one(n, run) for n in names]
    if req.open_incidents:
        records = [
            r.model_copy(update={"incidents": open_incidents(r)}) if r.breaches and not r.error else r
            for r in records
        ]
    history = AuditHistory(settings.home / "audits" / "data.jsonl")
    history.append(records)
    report = render_audit(records, history)
    path = settings.home / "audits" / f"data-{records[0].at:%Y%m%d-%H%M%S}.md" if records else None
    if path is not None:
        Path(path).write_text(report, encoding="utf-8")
    create_table_artifact(
        key="data-audit",
        table=[
            {
                "dataset": r.dataset,
                "version": r.version,
                "rows": r.rows,
                "clean_cell_share": r.clean_cell_share,
                "missing_cells": r.missing_cells,
                "invalid_cells": r.invalid_cells,
                "duplicate_rows": r.duplicate_rows,
                "drifted_columns": len(r.drifted_columns),
                "breaches": sum(r.breaches.values()),
                "error": r.error or "",
            }
            for r in records
        ],
        description="Monthly data audit: one row per dataset",
    )
    create_markdown_artifact(
        markdown=report, key="data-audit-report", description="Data audit report and trend"
    )
    failed = [r.dataset for r in records if r.error] + [
        f"{r.dataset}/{k}" for r in records for k, v in r.incidents.items() if v.startswith("not opened")
    ]
    breaching = [r.dataset for r in records if r.breaches]
    summary = {
        "datasets": len(records),
        "breaching": breaching,
        "report": str(path) if path else None,
        "records": [r.model_dump(mode="json") for r in records],
    }
    message = f"{len(records)} dataset(s) audited; breaching: {breaching or 'none'}"
    if failed:
        return Failed(message=f"{message}; could not audit or open incidents for: {failed}", data=summary)
    return Completed(message=message, data=summary)
