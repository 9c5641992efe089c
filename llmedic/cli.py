"""The ``llmedic`` command."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from llmedic.config import load_environment, settings_from_env
from llmedic.errors import AuthoringError, LlmedicError

app = typer.Typer(help="Remediation playbooks for vertical LLM services, on Prefect.", no_args_is_help=True)
approvals_app = typer.Typer(help="Runs waiting at an approval gate.", no_args_is_help=True)
incidents_app = typer.Typer(help="The incident record and knowledge base.", no_args_is_help=True)
alert_app = typer.Typer(help="Deliver alerts by hand.", no_args_is_help=True)
playbooks_app = typer.Typer(help="Playbook files.", no_args_is_help=True)
config_app = typer.Typer(help="The environment file (llmedic.yaml).", no_args_is_help=True)
app.add_typer(approvals_app, name="approvals")
app.add_typer(incidents_app, name="incidents")
app.add_typer(alert_app, name="alert")
app.add_typer(playbooks_app, name="playbooks")
app.add_typer(config_app, name="config")
out = Console()


@app.command()
def demo(
    keep: Annotated[
        bool, typer.Option(help="Keep everything running afterwards to browse the Prefect UI.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.")] = 300.0,
) -> None:
    """Run one latency incident end to end on the embedded defaults."""
    from llmedic.demo import Demo

    raise typer.Exit(Demo(settings_from_env(), timeout=timeout, keep=keep).run())


@app.command()
def up(
    port: Annotated[int, typer.Option(help="Prefect server port.")] = 4200,
    host: Annotated[str, typer.Option(help="Prefect server address.")] = "127.0.0.1",
    receiver_port: Annotated[int, typer.Option(help="Alert receiver port.")] = 9095,
    config: Annotated[Path | None, typer.Option(help="Environment file (default: llmedic.yaml).")] = None,
) -> None:
    """Start the Prefect server (unless PREFECT_API_URL is set), every deployment and the approval sweeper."""
    from llmedic.up import Stack

    settings = settings_from_env()
    env = load_environment(config, settings)
    stack = Stack(settings, host=host, port=port, config_path=config, receiver_port=receiver_port)
    out.print(f"llmedic up: {len(env.services)} service(s); state in {stack.home}")
    out.print(f"Prefect UI: http://{host}:{port}  (Ctrl-C to stop; waiting approvals survive a restart)")
    out.print(f"alert receiver: http://{host}:{receiver_port}/alerts/alertmanager")
    raise typer.Exit(stack.run_forever())


@app.command()
def receiver(
    port: Annotated[int, typer.Option(help="Listen port.")] = 9095,
    host: Annotated[str, typer.Option(help="Listen address.")] = "127.0.0.1",
    insecure: Annotated[
        bool, typer.Option(help="Accept alerts without credentials (local demos only).")
    ] = False,
    no_dispatch: Annotated[bool, typer.Option(help="Only accept into the outbox; start no runs.")] = False,
) -> None:
    """The alert webhook receiver (durable outbox + dispatcher into Prefect runs)."""
    import os

    # The outbox retries with its own backoff; the Prefect client's retries would only make one
    # row hold up the others while the API is down.
    os.environ.setdefault("PREFECT_CLIENT_MAX_RETRIES", "1")
    from llmedic.receiver.server import Receiver, auth_from_settings

    settings = settings_from_env()
    env = load_environment(settings=settings)
    auth = auth_from_settings(settings, insecure=insecure)
    out.print(f"llmedic receiver on http://{host}:{port}")
    Receiver(settings, env, auth, host=host, port=port, dispatch=not no_dispatch).serve()


alerts_app = typer.Typer(help="Alerts the receiver accepted.", no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")


@alerts_app.command("unrouted")
def alerts_unrouted(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Alerts no rule routes to an anomaly type (kept, never dropped)."""
    from llmedic.receiver.outbox import Outbox

    rows = Outbox.from_settings(settings_from_env()).rows("unrouted")
    data = [
        {
            "received": r.received_at,
            "alertname": r.alert.alertname,
            "target": r.target,
            "labels": r.alert.labels,
            "seen": r.seen,
        }
        for r in rows
    ]
    if as_json:
        out.print_json(json.dumps(data))
        return
    table = Table("alertname", "target", "seen", "labels")
    for d in data:
        table.add_row(
            str(d["alertname"]), str(d["target"]), str(d["seen"]), json.dumps(d["labels"], sort_keys=True)
        )
    out.print(table if data else "no unrouted alerts")


@alerts_app.command("list")
def alerts_list(
    state: Annotated[
        str | None, typer.Option(help="pending, started, duplicate, attached, throttled, unrouted")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """What the receiver did with each notification (newest first)."""
    from llmedic.receiver.outbox import Outbox

    rows = Outbox.from_settings(settings_from_env()).rows(state)
    data = [
        {
            "state": r.state,
            "anomaly": r.anomaly,
            "target": r.target,
            "status": r.status,
            "seen": r.seen,
            "flow_run_id": r.flow_run_id,
            "attempts": r.attempts,
            "error": r.error,
        }
        for r in rows
    ]
    if as_json:
        out.print_json(json.dumps(data))
        return
    table = Table("state", "anomaly", "target", "status", "seen", "flow run", "error")
    for d in data:
        table.add_row(
            *(
                str(d[k] or "")
                for k in ("state", "anomaly", "target", "status", "seen", "flow_run_id", "error")
            )
        )
    out.print(table if data else "no alerts received")


@app.command()
def sandbox(
    instances: Annotated[int, typer.Option(min=1, max=32)] = 3,
    standby: Annotated[int, typer.Option(min=0, max=8)] = 1,
    port: Annotated[int, typer.Option(help="First port (0: free ports).")] = 8100,
    host: str = "127.0.0.1",
    load_qps: Annotated[float, typer.Option(help="Background requests per second across the fleet.")] = 0.0,
    admin_token: Annotated[str | None, typer.Option(help="Require this bearer token on /admin.")] = None,
    write_config: Annotated[
        Path | None, typer.Option(help="Write the llmedic.yaml describing the fleet here.")
    ] = None,
) -> None:
    """Run a simulated vertical LLM service fleet (clinical drug interactions)."""
    from llmedic.sandbox.fleet import FleetSpec, run_fleet

    spec = FleetSpec(
        instances=instances, standby=standby, host=host, port=port, load_qps=load_qps, admin_token=admin_token
    )
    run_fleet(spec, write_config)


def _decide(run: str, by: str, comment: str, approve: bool) -> None:
    from llmedic.approvals import submit_decision
    from llmedic.incident import IncidentStore

    settings = settings_from_env()
    run_id = submit_decision(
        run, approve=approve, by=by, comment=comment, store=IncidentStore(settings.incidents_dir)
    )
    out.print(f"{'approved' if approve else 'rejected'} flow run {run_id} as {by}")


@app.command()
def approve(
    run: Annotated[str, typer.Argument(help="Flow run id (or incident id) waiting for approval.")],
    by: Annotated[str, typer.Option("--by", help="Your name; recorded on the incident.")],
    comment: Annotated[str, typer.Option(help="Why; recorded on the incident.")] = "",
) -> None:
    """Approve the risky fix a run is waiting on."""
    _decide(run, by, comment, True)


@app.command()
def reject(
    run: Annotated[str, typer.Argument(help="Flow run id (or incident id) waiting for approval.")],
    by: Annotated[str, typer.Option("--by", help="Your name; recorded on the incident.")],
    comment: Annotated[str, typer.Option(help="Why; recorded on the incident.")] = "",
) -> None:
    """Reject the risky fix a run is waiting on (the incident ends `rejected`)."""
    _decide(run, by, comment, False)


@approvals_app.command("list")
def approvals_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Incidents waiting at an approval gate."""
    from llmedic.incident import IncidentStore

    pending = IncidentStore(settings_from_env().incidents_dir).pending_approvals()
    rows = [
        {
            "incident": i.id,
            "target": i.target,
            **(i.pending_approval or {}),
            "alert_resolved_at": i.resolved_alerts[-1].isoformat() if i.resolved_alerts else None,
        }
        for i in pending
    ]
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table("incident", "target", "action", "risk", "deadline", "flow run", "alert resolved")
    for r in rows:
        table.add_row(
            r["incident"],
            r["target"],
            str(r.get("action")),
            str(r.get("risk")),
            str(r.get("deadline")),
            str(r.get("flow_run_id")),
            str(r["alert_resolved_at"] or "no"),
        )
    out.print(table if rows else "no approvals pending")


@approvals_app.command("sweep")
def approvals_sweep() -> None:
    """Reject approvals past their deadline now (``llmedic up`` does this on its own)."""
    from llmedic.approvals import sweep_expired
    from llmedic.incident import IncidentStore

    swept = sweep_expired(IncidentStore(settings_from_env().incidents_dir))
    out.print(f"rejected {len(swept)} expired approval(s): {swept}" if swept else "nothing past its deadline")


@incidents_app.command("list")
def incidents_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every incident, newest last."""
    from llmedic.incident import IncidentStore

    items = IncidentStore(settings_from_env().incidents_dir).all()
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


@incidents_app.command("show")
def incidents_show(incident_id: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """One incident: the report (Markdown) or the record (--json)."""
    from llmedic.incident import IncidentStore
    from llmedic.report import render_markdown

    inc = IncidentStore(settings_from_env().incidents_dir).load(incident_id)
    if as_json:
        out.print_json(inc.model_dump_json())
    else:
        sys.stdout.write(render_markdown(inc))


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


@playbooks_app.command("check")
def playbooks_check() -> None:
    """Validate every playbook (shipped and overrides)."""
    from llmedic.playbook import load_all_playbooks, playbook_files

    settings = settings_from_env()
    books = load_all_playbooks(settings)
    files = playbook_files(settings)
    for kind, book in books.items():
        out.print(f"ok  {kind.value:22} {len(book.fixes)} fix(es)  {files[kind]}")


@config_app.command("check")
def config_check(path: Annotated[Path | None, typer.Argument()] = None) -> None:
    """Validate the environment file."""
    settings = settings_from_env()
    target = path or settings.config_path()
    env = load_environment(path, settings)
    out.print(
        f"ok  {target}: {len(env.services)} service(s), {len(env.hosts)} host(s), "
        f"{len(env.commands)} command template(s), metrics from {env.metrics.kind}"
    )


def main() -> None:
    """Entry point: run the app; print llmedic errors without a traceback."""
    try:
        app(standalone_mode=False)
    except LlmedicError as exc:
        # Plain text: error lines must not be wrapped or styled when stderr is a file or a pipe.
        sys.stderr.write(f"error [{exc.code}]: {exc.message}\n")
        if exc.hint:
            sys.stderr.write(f"  fix: {exc.hint}\n")
        sys.exit(2 if isinstance(exc, AuthoringError) else 1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
