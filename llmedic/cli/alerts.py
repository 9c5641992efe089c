"""``llmedic alerts`` (what the receiver did with each alert) and ``llmedic alert send``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from llmedic.config import load_environment, settings_from_env

__all__ = ["alert_app", "alerts_app"]

alerts_app = typer.Typer(help="Alerts the receiver accepted.", no_args_is_help=True)
alert_app = typer.Typer(help="Deliver alerts by hand.", no_args_is_help=True)
out = Console(soft_wrap=True)  # long lines stay whole in logs and pipes


@alerts_app.command("unrouted")
def alerts_unrouted(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Alerts no rule routes to an anomaly type (kept, never dropped)."""
    from llmedic.receiver.outbox import Outbox

    rows = Outbox.from_settings(settings_from_env()).rows("unrouted")
    data = [
        {
            "received": r.received_at,
            "alertname": r.alert.alertname if r.alert else "",
            "target": r.target,
            "labels": r.alert.labels if r.alert else {},
            "seen": r.seen,
        }
        for r in rows
    ]
    if as_json:
        out.print_json(json.dumps(data))
        return
    table = Table("alertname", "target", "seen", "labels")
    for d in data:
        # Text(): labels are shown as sent, never read as rich markup ("[bold]" stays "[bold]").
        table.add_row(
            *(Text(str(d[k])) for k in ("alertname", "target", "seen")),
            Text(json.dumps(d["labels"], sort_keys=True, ensure_ascii=False)),
        )
    out.print(table if data else "no unrouted alerts")


@alerts_app.command("list")
def alerts_list(
    state: Annotated[
        str | None,
        typer.Option(
            help="pending, started, duplicate, attached, throttled, unrouted, invalid, unknown-target, dead"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """What the receiver did with each notification (newest first); ``reason`` says why an alert
    is invalid, unknown-target or dead, ``raw`` (with --json) is the alert as it was sent."""
    from llmedic.errors import ConfigError
    from llmedic.receiver.outbox import STATES, Outbox

    if state is not None and state not in STATES:
        raise ConfigError(f"unknown --state {state!r}", hint=f"use one of {', '.join(STATES)}")
    rows = Outbox.from_settings(settings_from_env()).rows(state)
    data = [
        {
            "key": r.key,
            "state": r.state,
            "anomaly": r.anomaly,
            "target": r.target,
            "status": r.status,
            "seen": r.seen,
            "flow_run_id": r.flow_run_id,
            "attempts": r.attempts,
            "reason": r.error,
            "raw": r.raw,
        }
        for r in rows
    ]
    if as_json:
        out.print_json(json.dumps(data, ensure_ascii=False))
        return
    table = Table("state", "anomaly", "target", "status", "seen", "flow run", "reason", "key")
    for d in data:
        table.add_row(
            *(
                Text(str(d[k] or ""))
                for k in ("state", "anomaly", "target", "status", "seen", "flow_run_id", "reason", "key")
            )
        )
    out.print(table if data else "no alerts received")


@alerts_app.command("retry")
def alerts_retry(
    keys: Annotated[list[str] | None, typer.Argument(help="Keys from `llmedic alerts list`.")] = None,
    dead: Annotated[bool, typer.Option("--dead", help="Every dead alert (after a long outage).")] = False,
) -> None:
    """Put dead, throttled or unknown-target alerts back in the queue (pending, no attempts counted);
    the running receiver's dispatcher picks them up."""
    from llmedic.errors import ConfigError
    from llmedic.receiver.outbox import Outbox

    outbox = Outbox.from_settings(settings_from_env())
    chosen = list(keys or []) + ([r.key for r in outbox.rows("dead", limit=1_000_000)] if dead else [])
    if not chosen:
        raise ConfigError("name the alerts to retry", hint="pass KEY ... or --dead")
    for key in dict.fromkeys(chosen):
        row = outbox.requeue(key)
        out.print(f"{row.state:8} {row.key}", markup=False, highlight=False)


@alert_app.command("send")
def alert_send(
    file: Annotated[Path, typer.Argument(help="JSON body, or - for standard input.")],
    kind: Annotated[str, typer.Option("--format", help="alertmanager, grafana or generic")] = "alertmanager",
    dry_run: Annotated[
        bool, typer.Option(help="Runs record what the fix would do, without doing it.")
    ] = False,
) -> None:
    """Parse an alert body like the receiver does and start the matching flow runs."""
    from llmedic.alerts import parse_alertmanager, parse_generic, parse_grafana
    from llmedic.errors import AlertPayloadError
    from llmedic.orchestration import dispatch_alerts

    parsers = {"alertmanager": parse_alertmanager, "grafana": parse_grafana, "generic": parse_generic}
    if kind not in parsers:
        raise AlertPayloadError(f"unknown --format {kind!r}", hint=f"use one of {sorted(parsers)}")
    text = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
    try:
        body: Any = json.loads(text)
    except ValueError as exc:
        raise AlertPayloadError(f"{file}: not JSON ({exc})") from None
    env = load_environment(settings=settings_from_env())
    for d in dispatch_alerts(parsers[kind](body, env.alert_rules), dry_run=dry_run):
        anomaly = d.alert.anomaly.value if d.alert.anomaly else "unrouted"
        out.print(f"{d.status:9} {anomaly:20} {d.alert.target:24} {d.flow_run_id or ''}")
