"""``llmedic approve`` / ``reject``, ``llmedic approvers`` and ``llmedic approvals``: the approval gate from the shell."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from llmedic.config import load_environment, settings_from_env

__all__ = ["approvals_app", "approve", "approvers_app", "reject"]

approvals_app = typer.Typer(help="Runs waiting at an approval gate.", no_args_is_help=True)
approvers_app = typer.Typer(help="Who may decide at approval gates: tokens and routes.", no_args_is_help=True)
out = Console(soft_wrap=True)  # long lines stay whole in logs and pipes


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

    from llmedic.approval import read_secret_file
    from llmedic.errors import ConfigError

    if token_file is not None:
        token = read_secret_file(token_file, "the token file").strip()
        if not token:
            raise ConfigError(f"the token file {token_file} is empty")
        return token
    return os.environ.get("LLMEDIC_APPROVER_TOKEN", "").strip() or None


def _decide(run: str, by: str, comment: str, approve: bool, token_file: Path | None) -> None:
    import hmac
    import os

    from llmedic.approval import pending_gate, read_tokens, resolve_run, submit_decision
    from llmedic.errors import ApprovalError, ApprovalRefused
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


def approve(
    run: Annotated[str, typer.Argument(help="Flow run id (or incident id) waiting for approval.")],
    by: Annotated[str, typer.Option("--by", help="Your name; recorded on the incident.")],
    comment: Annotated[str, typer.Option(help="Why; recorded on the incident.")] = "",
    token_file: TokenFile = None,
) -> None:
    """Approve the risky fix a run is waiting on."""
    _decide(run, by, comment, True, token_file)


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
    from llmedic.approval import add_token

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
    from llmedic.approval import read_tokens
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
    from llmedic.approval import sweep_expired
    from llmedic.store.incidents import IncidentStore

    swept = sweep_expired(IncidentStore.from_settings(settings_from_env()))
    out.print(f"rejected {len(swept)} expired approval(s): {swept}" if swept else "nothing past its deadline")
