"""``llmedic incidents``: the incident record and the knowledge base."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from llmedic.config import settings_from_env

__all__ = ["incidents_app"]

incidents_app = typer.Typer(help="The incident record and knowledge base.", no_args_is_help=True)
out = Console(soft_wrap=True)  # long lines stay whole in logs and pipes


@incidents_app.command("list")
def incidents_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every incident, newest last."""
    from llmedic.store.incidents import IncidentStore

    items = IncidentStore.from_settings(settings_from_env()).all()
    if as_json:
        out.print_json(json.dumps([json.loads(i.model_dump_json()) for i in items]))
        return
    table = Table("incident", "type", "target", "outcome", "opened", "report")
    for i in items:
        table.add_row(
            i.id,
            i.anomaly.value,
            i.target,
            i.outcome.value,
            f"{i.opened_at:%Y-%m-%d %H:%M}",
            i.report_path or "",
        )
    out.print(table if items else "no incidents yet")


@incidents_app.command("search")
def incidents_search(
    anomaly: Annotated[str | None, typer.Option("--type", help="Anomaly type, e.g. latency.")] = None,
    target: Annotated[str | None, typer.Option(help="Instance, service, dataset or link.")] = None,
    label: Annotated[list[str] | None, typer.Option(help="Alert label KEY=VALUE (repeatable).")] = None,
    text: Annotated[
        str | None, typer.Option(help="Words in the title, diagnosis, evidence, decisions.")
    ] = None,
    since: Annotated[str | None, typer.Option(help="Opened on or after (YYYY-MM-DD).")] = None,
    until: Annotated[str | None, typer.Option(help="Opened before (YYYY-MM-DD).")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Search the knowledge base of archived incidents (newest first), with what fixed each."""
    from datetime import UTC, datetime

    from llmedic.errors import ConfigError
    from llmedic.store.knowledge import KnowledgeBase

    def day(v: str | None, flag: str) -> datetime | None:
        if v is None:
            return None
        try:
            return datetime.fromisoformat(v).replace(tzinfo=UTC)
        except ValueError:
            raise ConfigError(f"{flag} {v!r} is not a date", hint="use YYYY-MM-DD") from None

    labels: dict[str, str] = {}
    for pair in label or []:
        k, sep, v = pair.partition("=")
        if not sep:
            raise ConfigError(f"--label {pair!r} is not KEY=VALUE")
        labels[k] = v
    found = KnowledgeBase.from_settings(settings_from_env()).search(
        anomaly=anomaly,
        target=target,
        labels=labels,
        text=text,
        since=day(since, "--since"),
        until=day(until, "--until"),
    )
    rows = [
        {
            "incident": i.id,
            "type": i.anomaly.value,
            "target": i.target,
            "outcome": i.outcome.value,
            "opened": i.opened_at.isoformat(),
            "diagnosis": i.diagnosis,
            "fixed_by": next((a.name for a in i.actions if a.applied and not a.dry_run), None),
            "report": i.report_path,
        }
        for i in found
    ]
    if as_json:
        out.print_json(json.dumps(rows))
        return
    for r in rows:
        out.print(
            f"{r['incident']}  {r['outcome']}  {str(r['diagnosis'])[:80]}  (fixed by {r['fixed_by'] or 'nothing'})"
        )
    if not rows:
        out.print("no incident matches")


@incidents_app.command("show")
def incidents_show(incident_id: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """One incident: the report (Markdown) or the record (--json)."""
    from llmedic.report import render_markdown
    from llmedic.store.incidents import IncidentStore

    inc = IncidentStore.from_settings(settings_from_env()).load(incident_id)
    if as_json:
        out.print_json(inc.model_dump_json())
    else:
        sys.stdout.write(render_markdown(inc))


@incidents_app.command("reconcile")
def incidents_reconcile(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Close, escalated, every open incident whose flow run ended or is gone (archive, notify).

    ``llmedic up`` does this every ``approval_sweep_seconds``; runs that are live (scheduled,
    running, waiting at a gate) are never touched, and nothing is closed when the Prefect API
    cannot be reached (exit 1).
    """
    from llmedic.errors import OrchestrationError
    from llmedic.reconcile import reconcile

    done = reconcile(settings_from_env())
    if as_json:
        out.print_json(done.model_dump_json())
    else:
        for item in done.closed:
            out.print(f"closed {item.incident_id} escalated: flow run {item.flow_run_id} is {item.run_state}")
        if not done.closed and done.unreachable is None:
            out.print(f"nothing to close ({done.checked} open incident(s) with a live run)")
    if done.unreachable is not None:
        raise OrchestrationError(
            f"the Prefect API could not be asked, nothing more was closed: {done.unreachable}",
            hint="start it with `llmedic up`, or set PREFECT_API_URL",
        )
