"""The monthly data audit review: every declared dataset's current version audited against its
schema and reference version (the audit itself is ``llmedic.anomalies.data.audit`` via
``llmedic.auditing``), one incident flow per breaching anomaly type, the audit history (so the
trend of data quality is visible), and the report. ``flows/data_audit.py`` wires it; its tasks and
artifacts are in ``tasks/review.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from llmedic.adapters.datastore import DataStore
from llmedic.alerts import Alert
from llmedic.anomalies.data.findings import FINDING_ANOMALY
from llmedic.auditing import AuditHistory, AuditRecord, audit_version
from llmedic.config import EnvironmentFile, load_environment, settings_from_env
from llmedic.errors import LlmedicError
from llmedic.incident import utcnow
from llmedic.orchestration import dispatch_alerts
from llmedic.reviews.selection import choose
from llmedic.store.files import atomic_write

__all__ = [
    "AuditRequest",
    "audit_dataset",
    "check_request",
    "conclude",
    "open_incidents",
    "record_history",
    "render_audit",
    "table_rows",
    "write_report",
]


class AuditRequest(BaseModel):
    """Parameters of an audit run (the Prefect UI shows them as a form)."""

    datasets: list[str] = Field(default_factory=list)
    """Datasets to audit; empty means every declared dataset."""
    open_incidents: bool = True
    """Start the matching data flow for every breaching anomaly type."""


def check_request(env: EnvironmentFile, req: AuditRequest) -> tuple[list[str], str | None]:
    """The datasets to audit, or why the run cannot go on (then the list is empty)."""
    return choose(req.datasets, env.datasets, kind="dataset")


def audit_dataset(name: str, run: str) -> AuditRecord:
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


def open_incidents(record: AuditRecord) -> dict[str, str]:
    """One run of the matching data flow per breaching anomaly type (idempotent per version: a
    second audit of the same version never opens a second incident). Anomaly → what happened."""
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


def record_history(home: Path, records: list[AuditRecord]) -> AuditHistory:
    """Append this run's records to the audit history; returns the history (for the trend)."""
    history = AuditHistory(home)
    history.append(records)
    return history


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


def write_report(home: Path, records: list[AuditRecord], history: AuditHistory) -> tuple[Path | None, str]:
    """Write ``<home>/audits/data-….md`` (nothing when no dataset was audited); its path and text."""
    report = render_audit(records, history)
    if not records:
        return None, report
    path = home / "audits" / f"data-{records[0].at:%Y%m%d-%H%M%S}.md"
    atomic_write(path, report)
    return path, report


def table_rows(records: list[AuditRecord]) -> list[dict[str, Any]]:
    """The table artifact: one row per dataset."""
    return [
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
    ]


def conclude(records: list[AuditRecord], path: Path | None) -> tuple[bool, str, dict[str, Any]]:
    """Whether every dataset was audited and every incident opened, the message and the data."""
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
        return False, f"{message}; could not audit or open incidents for: {failed}", summary
    return True, message, summary
