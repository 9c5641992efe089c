"""``llmedic audit``: the scheduled audits (data, golden sample), run now, and their history."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from llmedic.config import settings_from_env

__all__ = ["audit_app"]

audit_app = typer.Typer(help="Scheduled audits, run now.", no_args_is_help=True)
out = Console(soft_wrap=True)  # long lines stay whole in logs and pipes


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
