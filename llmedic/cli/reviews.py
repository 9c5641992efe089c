"""``llmedic review`` and ``llmedic backup``: the scheduled reviews, run now, and their incidents."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from llmedic.config import load_environment, settings_from_env
from llmedic.errors import ConfigError

__all__ = ["backup_app", "report_run", "review_app"]

review_app = typer.Typer(
    help="Capacity and backup reviews: run them now, see their incidents.", no_args_is_help=True
)
backup_app = typer.Typer(help="Backups of the artifacts declared under backups:.", no_args_is_help=True)
out = Console(soft_wrap=True)


def report_run(state: Any, as_json: bool, *, failed: str | None = None) -> dict[str, Any] | None:
    """Print what a scheduled flow run said (its summary as JSON, or its message and report path)
    and return the summary. A run with no summary: with ``failed``, "<failed> failed: …" on stderr
    and exit 1; otherwise its message is printed and None returned."""
    data: Any = state.result(raise_on_failure=False) if state.data is not None else None
    if not isinstance(data, dict):
        if failed is not None:
            sys.stderr.write(f"{failed} failed: {state.message}\n")
            raise typer.Exit(1)
        out.print(state.message or "")
        return None
    if as_json:
        out.print_json(json.dumps(data, default=str))
    else:
        out.print(state.message or "")
        if data.get("report"):
            out.print(f"report: {data['report']}")
    return data


@review_app.command("incidents")
def review_incidents(
    all_: Annotated[bool, typer.Option("--all", help="Closed ones too.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Open review incidents (capacity shortfalls, failed backups)."""
    from llmedic.reviews.incidents import ReviewIncidents

    recs = ReviewIncidents.from_settings(settings_from_env()).all(None if all_ else "open")
    if as_json:
        out.print_json(json.dumps([r.model_dump(mode="json") for r in recs]))
        return
    table = Table("id", "status", "opened", "title", "findings")
    for r in recs:
        table.add_row(r.id, r.status, f"{r.opened_at:%Y-%m-%d %H:%M}", r.title, "; ".join(r.findings)[:100])
    out.print(table if recs else "no review incidents")


@review_app.command("close")
def review_close(rid: str, by: Annotated[str, typer.Option(help="Who closes it.")]) -> None:
    """Close a review incident (it is kept)."""
    from llmedic.reviews.incidents import ReviewIncidents

    rec = ReviewIncidents.from_settings(settings_from_env()).close(rid, by=by)
    out.print(f"{rec.id} closed by {by}")


@backup_app.command("make")
def backup_make(name: str) -> None:
    """Back up a declared artifact now (a new directory with its SHA-256 manifest)."""
    from llmedic.reviews.backups import make_backup

    env = load_environment(settings=settings_from_env())
    if name not in env.backups:
        raise ConfigError(f"no artifact {name!r} under backups:", hint=f"declared: {sorted(env.backups)}")
    out.print(f"{name}: {make_backup(env.backups[name])}")
