"""``llmedic audit``: the scheduled audits (data, golden sample), run now, and their history."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from llmedic.cli.reviews import report_run
from llmedic.config import settings_from_env

__all__ = ["audit_app"]

audit_app = typer.Typer(help="Scheduled audits, run now.", no_args_is_help=True)
out = Console(soft_wrap=True)  # long lines stay whole in logs and pipes


@audit_app.command("data")
def audit_data(
    dataset: Annotated[
        list[str] | None, typer.Option("--dataset", help="Audit only these (repeatable).")
    ] = None,
    open_incidents: Annotated[
        bool, typer.Option(help="Start the data flows for breaches (needs `llmedic up`).")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Run the monthly data audit now. Exit 0 when every dataset is clean, 1 otherwise."""
    from flows.data_audit import AuditRequest, data_audit

    state = data_audit(AuditRequest(datasets=dataset or [], open_incidents=open_incidents), return_state=True)
    summary = report_run(state, as_json, failed="audit")
    assert summary is not None  # report_run exits when there is none
    raise typer.Exit(0 if state.is_completed() and not summary["breaching"] else 1)


@audit_app.command("golden")
def audit_golden(
    service: Annotated[list[str] | None, typer.Option("--service", help="Only these (repeatable).")] = None,
    sample: Annotated[int | None, typer.Option(help="Items per service (default: all).")] = None,
    open_incidents: Annotated[
        bool, typer.Option(help="Start accuracy_drop runs for real drops (needs `llmedic up`).")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Run the daily golden sample now. Exit 0 when no service dropped, 1 otherwise."""
    from flows.golden_sample import GoldenSampleRequest, golden_sample

    req = GoldenSampleRequest(services=service or [], sample_size=sample, open_incidents=open_incidents)
    state = golden_sample(req, return_state=True)
    summary = report_run(state, as_json, failed="golden sample")
    assert summary is not None  # report_run exits when there is none
    dropped = any(r["dropped"] for r in summary["records"])
    raise typer.Exit(0 if state.is_completed() and not dropped else 1)


@audit_app.command("history")
def audit_history(dataset: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The trend of one dataset's audits."""
    from llmedic.auditing import AuditHistory

    records = AuditHistory.from_settings(settings_from_env()).records(dataset)
    if as_json:
        out.print_json(json.dumps([r.model_dump(mode="json") for r in records]))
        return
    table = Table("audited", "version", "rows", "clean cells", "missing", "invalid", "breaches")
    for r in records:
        table.add_row(
            f"{r.at:%Y-%m-%d %H:%M}",
            r.version or "—",
            str(r.rows),
            f"{r.clean_cell_share:.2%}" if r.clean_cell_share is not None else "—",
            str(r.missing_cells),
            str(r.invalid_cells),
            str(sum(r.breaches.values())) if not r.error else r.error,
        )
    out.print(table if records else f"no audits of {dataset} yet")
