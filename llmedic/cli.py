"""The ``llmedic`` command."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from llmedic.cli_models import golden_app, model_app
from llmedic.cli_reviews import backup_app, report_run, review_app
from llmedic.cli_system import gpu_app, host_app
from llmedic.config import load_environment, settings_from_env
from llmedic.errors import AuthoringError, LlmedicError

app = typer.Typer(help="Remediation playbooks for vertical LLM services, on Prefect.", no_args_is_help=True)
approvals_app = typer.Typer(help="Runs waiting at an approval gate.", no_args_is_help=True)
approvers_app = typer.Typer(help="Who may decide at approval gates: tokens and routes.", no_args_is_help=True)
incidents_app = typer.Typer(help="The incident record and knowledge base.", no_args_is_help=True)
alert_app = typer.Typer(help="Deliver alerts by hand.", no_args_is_help=True)
playbooks_app = typer.Typer(help="Playbook files.", no_args_is_help=True)
config_app = typer.Typer(help="The environment file (llmedic.yaml).", no_args_is_help=True)
app.add_typer(approvals_app, name="approvals")
app.add_typer(approvers_app, name="approvers")
app.add_typer(incidents_app, name="incidents")
app.add_typer(alert_app, name="alert")
app.add_typer(playbooks_app, name="playbooks")
app.add_typer(config_app, name="config")
data_app = typer.Typer(help="Versioned datasets: validate, ingest, history, rollback.", no_args_is_help=True)
audit_app = typer.Typer(help="Scheduled audits, run now.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(audit_app, name="audit")
app.add_typer(model_app, name="model")
app.add_typer(golden_app, name="golden")
app.add_typer(review_app, name="review")
app.add_typer(backup_app, name="backup")
app.add_typer(gpu_app, name="gpu")
app.add_typer(host_app, name="host")
out = Console(soft_wrap=True)  # long lines stay whole in logs and pipes


@app.command()
def up(
    port: Annotated[int, typer.Option(help="Prefect server port.")] = 4200,
    host: Annotated[str, typer.Option(help="Prefect server address.")] = "127.0.0.1",
    receiver_port: Annotated[int, typer.Option(help="Alert receiver port.")] = 9095,
    config: Annotated[Path | None, typer.Option(help="Environment file (default: llmedic.yaml).")] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            envvar="LLMEDIC_PREFECT_DATABASE_URL",
            help="The Prefect server's database, e.g. postgresql+asyncpg://user:pass@db/prefect (default: SQLite in the state directory).",
        ),
    ] = None,
) -> None:
    """Start the Prefect server (unless PREFECT_API_URL is set), every deployment and the approval sweeper."""
    from llmedic.up import Stack

    settings = settings_from_env()
    env = load_environment(config, settings)
    stack = Stack(
        settings,
        host=host,
        port=port,
        config_path=config,
        receiver_port=receiver_port,
        database_url=database_url,
    )
    out.print(f"llmedic up: {len(env.services)} service(s); state in {stack.home}")
    out.print(f"Prefect UI: http://{host}:{port}  (Ctrl-C to stop; waiting approvals survive a restart)")
    out.print(f"alert receiver: http://{host}:{receiver_port}/alerts/alertmanager")
    if stack.api_auth() is not None:
        where = stack.auth_path or "PREFECT_API_AUTH_STRING / PREFECT_SERVER_API_AUTH_STRING"
        out.print(f"Prefect API: basic auth required; the user:password (the UI's login) is in {where}")
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


TokenFile = Annotated[
    Path | None,
    typer.Option(
        "--token-file",
        help="File (mode 0600) holding your approver token; default: the LLMEDIC_APPROVER_TOKEN variable. "
        "Needed when the playbook names approvers.",
    ),
]


def _approver_token(token_file: Path | None) -> str | None:
    """The token from ``--token-file`` or ``LLMEDIC_APPROVER_TOKEN`` (never from the command line:
    it would land in shell history and ``ps``)."""
    import os

    from llmedic.errors import ConfigError
    from llmedic.identity import read_secret_file

    if token_file is not None:
        token = read_secret_file(token_file, "the token file").strip()
        if not token:
            raise ConfigError(f"the token file {token_file} is empty")
        return token
    return os.environ.get("LLMEDIC_APPROVER_TOKEN", "").strip() or None


def _decide(run: str, by: str, comment: str, approve: bool, token_file: Path | None) -> None:
    import hmac
    import os

    from llmedic.approvals import pending_gate, resolve_run, submit_decision
    from llmedic.errors import ApprovalError, ApprovalRefused
    from llmedic.identity import read_tokens
    from llmedic.store.incidents import IncidentStore

    settings = settings_from_env()
    store = IncidentStore.from_settings(settings)
    try:
        approvers = list(pending_gate(resolve_run(run, store), store).get("approvers") or [])
    except ApprovalError:  # not found here: Prefect says whether the run waits
        approvers = []
    token = _approver_token(token_file) if approvers else None
    if approvers and token is None:
        raise ApprovalRefused(
            f"this gate's playbook names approvers ({', '.join(approvers)}): a decision needs your token",
            hint="pass --token-file PATH or set LLMEDIC_APPROVER_TOKEN (`llmedic approvers add NAME` makes one)",
        )
    # Pre-check what the flow will check, to answer the person at once. The attempt is still sent,
    # so the flow records who tried; it does not count and the gate keeps waiting.
    problem = ""
    if approvers and token is not None:
        who = by.strip()
        path = settings.approvers_path()
        if who not in approvers:
            problem = f"{who!r} is not one of the approvers ({', '.join(approvers)})"
        elif path.exists() and os.access(path, os.R_OK):
            known = read_tokens(path).get(who)
            if known is None or not hmac.compare_digest(known.encode(), token.encode()):
                problem = f"the token is not {who!r}'s"
    run_id = submit_decision(run, approve=approve, by=by, comment=comment, store=store, token=token)
    if problem:
        raise ApprovalRefused(
            f"refused: {problem}; the attempt is recorded on the incident and the gate keeps waiting",
            hint="decide as yourself, with your own token",
        )
    signed = " with a token proof" if token is not None else ""
    out.print(f"{'approved' if approve else 'rejected'} flow run {run_id} as {by}{signed}")


@app.command()
def approve(
    run: Annotated[str, typer.Argument(help="Flow run id (or incident id) waiting for approval.")],
    by: Annotated[str, typer.Option("--by", help="Your name; recorded on the incident.")],
    comment: Annotated[str, typer.Option(help="Why; recorded on the incident.")] = "",
    token_file: TokenFile = None,
) -> None:
    """Approve the risky fix a run is waiting on."""
    _decide(run, by, comment, True, token_file)


@app.command()
def reject(
    run: Annotated[str, typer.Argument(help="Flow run id (or incident id) waiting for approval.")],
    by: Annotated[str, typer.Option("--by", help="Your name; recorded on the incident.")],
    comment: Annotated[str, typer.Option(help="Why; recorded on the incident.")] = "",
    token_file: TokenFile = None,
) -> None:
    """Reject the risky fix a run is waiting on (the incident ends `rejected`)."""
    _decide(run, by, comment, False, token_file)


@approvers_app.command("add")
def approvers_add(
    name: Annotated[
        str, typer.Argument(help="The approver's name, as in the playbook's approval.approvers.")
    ],
    rotate: Annotated[bool, typer.Option(help="Replace the token NAME already has.")] = False,
) -> None:
    """Give NAME an approver token: stored in the tokens file (mode 0600), printed once."""
    from llmedic.identity import add_token

    path = settings_from_env().approvers_path()
    token = add_token(path, name, rotate=rotate)
    typer.echo(token)
    sys.stderr.write(
        f"the token of {name.strip()} (shown only now) is stored in {path}; they keep it in a mode-0600 file "
        "for `llmedic approve --token-file`, or in LLMEDIC_APPROVER_TOKEN\n"
    )


@approvers_app.command("list")
def approvers_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Approvers with a token and/or a personal route for one-time codes (never the tokens)."""
    from llmedic.identity import read_tokens
    from llmedic.notify import redact_webhook

    settings = settings_from_env()
    tokens = read_tokens(settings.approvers_path())
    routes = load_environment(settings=settings).approvers
    rows: list[dict[str, Any]] = []
    for name in sorted({*tokens, *routes}):
        route = routes.get(name)
        where = [redact_webhook(str(route.webhook_url))] if route and route.webhook_url else []
        where += list(route.email) if route else []
        rows.append({"name": name, "token": name in tokens, "code_route": where})
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table("approver", "token", "one-time codes go to")
    for r in rows:
        table.add_row(
            r["name"], "yes" if r["token"] else "no", ", ".join(r["code_route"]) or "nowhere (CLI only)"
        )
    out.print(
        table
        if rows
        else f"no approvers (tokens file {settings.approvers_path()}, approvers: in llmedic.yaml)"
    )


@approvals_app.command("list")
def approvals_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Incidents waiting at an approval gate."""
    from llmedic.store.incidents import IncidentStore

    pending = IncidentStore.from_settings(settings_from_env()).pending_approvals()
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
    from llmedic.store.incidents import IncidentStore

    swept = sweep_expired(IncidentStore.from_settings(settings_from_env()))
    out.print(f"rejected {len(swept)} expired approval(s): {swept}" if swept else "nothing past its deadline")


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


@config_app.command("reference")
def config_reference() -> None:
    """Print the configuration reference (Markdown), generated from the validating models."""
    from llmedic.configdoc import render_reference

    sys.stdout.write(render_reference())


# --- data -----------------------------------------------------------------------------------------


def _dataset(name: str) -> tuple[Any, Any]:
    from llmedic.adapters.datastore import DataStore

    settings = settings_from_env()
    cfg = load_environment(settings=settings).dataset(name)
    store = DataStore(settings.datasets_dir)
    store.ensure_seeded(name, cfg)
    return store, cfg


def _print_findings(audit: Any) -> None:
    """One plain line per finding (readable in CI logs, where tables get squeezed)."""
    if not audit.findings:
        out.print("no findings")
    for f in audit.findings:
        mark = "BREACH" if f.breach else "note  "
        patterns = f" [{'; '.join(f.patterns[:4])}]" if f.patterns else ""
        out.print(
            f"{mark} {f.anomaly.value:12} {f.kind:14} {f.share:7.2%} (limit {f.threshold:.2%})  {f.message}{patterns}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


@data_app.command("list")
def data_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Declared datasets and their current versions."""
    from llmedic.adapters.datastore import DataStore

    settings = settings_from_env()
    env = load_environment(settings=settings)
    store = DataStore(settings.datasets_dir)
    rows: list[dict[str, Any]] = []
    for name, cfg in sorted(env.datasets.items()):
        state = store.state(name)
        rows.append(
            {
                "dataset": name,
                "format": cfg.format,
                "versions": len(store.versions(name)),
                "current": state.current,
                "reference": state.reference,
                "quarantined": sorted(state.quarantined),
            }
        )
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table("dataset", "format", "versions", "current", "reference", "quarantined")
    for r in rows:
        table.add_row(
            r["dataset"],
            r["format"],
            str(r["versions"]),
            r["current"] or "—",
            r["reference"] or "—",
            ", ".join(r["quarantined"]),
        )
    out.print(table if rows else "no datasets declared in llmedic.yaml")


@data_app.command("versions")
def data_versions(dataset: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every version of a dataset with its lineage (who, why, which pipeline step)."""
    store, _ = _dataset(dataset)
    info = store.describe(dataset)
    if as_json:
        out.print_json(json.dumps(info))
        return
    table = Table("version", "", "rows", "created", "by", "producer", "parent", "why")
    for v in info["versions"]:
        mark = "current" if v["id"] == info["current"] else ""
        if v["id"] in info["quarantined"]:
            mark = "quarantined"
        if v["id"] == info["reference"]:
            mark = (mark + " reference").strip()
        prod = v["producer"]
        table.add_row(
            v["id"],
            mark,
            str(v["rows"]),
            v["created_at"][:19],
            v["by"],
            prod["step"] + (f"/{prod['job']}" if prod["job"] else ""),
            v["parent"] or "",
            v["why"][:60],
        )
    out.print(table)


@data_app.command("validate")
def data_validate(
    dataset: str,
    file: Path,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable report.")] = False,
) -> None:
    """ETL gate: validate a candidate batch against the declared schema and the reference version.

    Exit 0 when nothing breaches, 1 when something does or the file cannot be used as the dataset.
    """
    from llmedic.adapters.datastore import check_columns, read_table
    from llmedic.analysis.data_audit import audit_frame
    from llmedic.errors import DatasetError

    store, cfg = _dataset(dataset)
    try:
        frame = read_table(file, cfg.format, cfg.encoding)
        check_columns(frame, cfg, str(file))
    except DatasetError as exc:
        if as_json:
            out.print_json(
                json.dumps(
                    {
                        "dataset": dataset,
                        "file": str(file),
                        "passed": False,
                        "error": {"code": exc.code, "message": exc.message, "hint": exc.hint},
                    }
                )
            )
        else:
            sys.stderr.write(
                f"FAIL {file}: [{exc.code}] {exc.message}\n" + (f"  fix: {exc.hint}\n" if exc.hint else "")
            )
        raise typer.Exit(1) from None
    state = store.state(dataset)
    reference = store.read(dataset, cfg, state.reference)[1] if state.reference else None
    audit = audit_frame(
        frame, cfg, dataset=dataset, version=str(file), reference=reference, reference_version=state.reference
    )
    passed = not audit.breaches()
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "dataset": dataset,
                    "file": str(file),
                    "passed": passed,
                    "audit": json.loads(audit.model_dump_json()),
                }
            )
        )
    else:
        out.print(
            f"{'PASS' if passed else 'FAIL'} {file} as {dataset}: {audit.rows} rows, {len(audit.breaches())} breach(es)"
            + (f", reference {state.reference}" if state.reference else "")
        )
        _print_findings(audit)
    raise typer.Exit(0 if passed else 1)


@data_app.command("ingest")
def data_ingest(
    dataset: str,
    file: Path,
    by: Annotated[str, typer.Option(help="Who delivers the batch.")],
    why: Annotated[str, typer.Option(help="Why (shown in the version history).")] = "batch",
    step: Annotated[str, typer.Option(help="Pipeline step that produced it (lineage).")] = "manual",
    job: Annotated[str, typer.Option(help="Job / run id of that step.")] = "",
    force: Annotated[bool, typer.Option(help="Make it current even if it breaches.")] = False,
) -> None:
    """Add a batch as a new version. A batch that breaches is kept but quarantined (exit 1)."""
    from llmedic.adapters.datastore import Producer
    from llmedic.auditing import audit_version
    from llmedic.models import ModelRegistry

    store, cfg = _dataset(dataset)
    registry = ModelRegistry(settings_from_env().models_dir)
    for service in cfg.consumers:
        registry.check_not_frozen(service, f"ingest into {dataset}")
    v = store.commit(
        dataset, file, cfg, by=by, why=why, producer=Producer(step=step, job=job), make_current=False
    )
    audit = audit_version(store, dataset, cfg, v.id)
    breaches = audit.breaches()
    if breaches and not force:
        store.quarantine(
            dataset, v.id, cfg, by=by, why=f"failed validation on ingest: {len(breaches)} breach(es)"
        )
        out.print(
            f"{v.id} stored but QUARANTINED ({len(breaches)} breach(es)); consumers stay on {store.state(dataset).current}"
        )
        _print_findings(audit)
        raise typer.Exit(1)
    store.set_current(dataset, v.id, cfg, by=by, why=why)
    out.print(
        f"{v.id} is current ({v.rows} rows)"
        + (f"; forced past {len(breaches)} breach(es)" if breaches else "")
    )


@data_app.command("rollback")
def data_rollback(
    dataset: str,
    version: str,
    by: Annotated[str, typer.Option(help="Who decides.")],
    why: Annotated[str, typer.Option(help="Why (kept in the history).")] = "manual rollback",
) -> None:
    """Point consumers at an earlier version (nothing is deleted)."""
    store, cfg = _dataset(dataset)
    before = store.state(dataset).current
    v = store.set_current(dataset, version, cfg, by=by, why=why)
    out.print(f"{dataset}: {before} → {v.id}")


@data_app.command("quarantine")
def data_quarantine(
    dataset: str,
    version: str,
    by: Annotated[str, typer.Option()],
    why: Annotated[str, typer.Option()] = "manual",
) -> None:
    """Hold a version back from consumers."""
    store, cfg = _dataset(dataset)
    moved = store.quarantine(dataset, version, cfg, by=by, why=why)
    out.print(f"quarantined {version}" + (f"; consumers moved to {moved.id}" if moved else ""))


@data_app.command("release")
def data_release(
    dataset: str,
    version: str,
    by: Annotated[str, typer.Option()],
    why: Annotated[str, typer.Option()] = "manual",
) -> None:
    """Lift a quarantine (the version does not become current by itself)."""
    store, _ = _dataset(dataset)
    v = store.release(dataset, version, by=by, why=why)
    out.print(f"released {v.id}")


@data_app.command("reference")
def data_reference(
    dataset: str,
    version: str,
    by: Annotated[str, typer.Option()],
    why: Annotated[str, typer.Option()] = "new baseline",
) -> None:
    """Make a version the reference drift is measured against."""
    store, _ = _dataset(dataset)
    v = store.set_reference(dataset, version, by=by, why=why)
    out.print(f"{dataset}: reference is now {v.id}")


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

    records = AuditHistory(settings_from_env().home / "audits" / "data.jsonl").records(dataset)
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


PLUGIN_GROUP = "llmedic.commands"
"""Entry-point group of commands other packages add to ``llmedic`` (the sandbox's: demo, gameday …).

An entry point's name is the command's (``gameday``) or ``GROUP.COMMAND`` for a command of an
existing group (``data.inject``); its value a typer app (added as a group) or a command function."""


def load_plugins(root: typer.Typer) -> list[str]:
    """Add every command registered under :data:`PLUGIN_GROUP` to ``root``; the names added.

    A plugin that cannot be loaded is reported on stderr and left out: the rest of ``llmedic``
    keeps working."""
    from importlib.metadata import entry_points

    groups = {g.name: g.typer_instance for g in root.registered_groups if g.name and g.typer_instance}
    added: list[str] = []
    for ep in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        group, _, name = ep.name.rpartition(".")
        try:
            target = groups[group] if group else root
            obj = ep.load()
        except Exception as exc:  # a broken plugin must not take the whole command down
            sys.stderr.write(f"llmedic: command plugin {ep.name} ({ep.value}) not loaded: {exc!r}\n")
            continue
        if isinstance(obj, typer.Typer):
            target.add_typer(obj, name=name)
        else:
            target.command(name)(obj)
        added.append(ep.name)
    return added


load_plugins(app)


def main() -> None:
    """Entry point: run the app; print llmedic errors without a traceback."""
    import contextlib

    from llmedic.prefect_auth import adopt_api_auth

    try:
        # `llmedic approve` & co. send the installation's Prefect API auth string (if any); a bad
        # LLMEDIC_* value is reported by the command that reads the settings.
        with contextlib.suppress(LlmedicError):
            adopt_api_auth(settings_from_env().home)
        # Without standalone mode click hands back the code of a `typer.Exit` instead of exiting.
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
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
