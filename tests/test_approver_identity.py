"""Approver identity through real latency flow runs under the Prefect harness (the gate pauses
in-process): one-time codes from the Prefect UI form, token proofs from the CLI and HTTP, the
sweeper's key, and what is refused, recorded and shown when a decision does not prove who took it.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.flow_runs import resume_flow_run
from typer.testing import CliRunner

from llmedic.approval import add_token, make_proof, pending_gate, submit_decision
from llmedic.cli import app
from llmedic.errors import ApprovalError, ApprovalRefused, ConfigError
from llmedic.incident import Incident, IncidentRequest, Outcome
from llmedic.orchestration import read_run
from tests.conftest import Fleet
from tests.flowrun import approve, approve_cli, run_flow, store
from tests.test_flow_latency import SLOW, request

pytestmark = pytest.mark.usefixtures("prefect_harness")

CODE = re.compile(r"\b[A-HJ-NP-Z2-9]{4}(?:-[A-HJ-NP-Z2-9]{4}){3}\b")
GATED = {"approvers": ["alice", "bob"]}


@pytest.fixture
def inbox(sandbox: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Alice's own webhook (a capture server on 127.0.0.1); bob has no route. Yields the texts posted."""
    posts: list[str] = []

    class Hook(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return None

        def do_POST(self) -> None:
            posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"])))["text"])
            self.send_response(200)
            self.end_headers()

    web = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    config = yaml.safe_load(sandbox.config.read_text())
    config["approvers"] = {"alice": {"webhook_url": f"http://127.0.0.1:{web.server_address[1]}/alice"}}
    path = tmp_path / "llmedic.yaml"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("LLMEDIC_CONFIG", str(path))
    yield posts
    web.shutdown()


def run(req: IncidentRequest, decide: Callable[[Incident], None] | None = None) -> tuple[Any, Incident]:
    from flows.latency import latency

    return run_flow(latency, req, decide, timeout=150)


def code_in(posts: list[str]) -> str:
    (text,) = [p for p in posts if "[approval-code]" in p]
    found = CODE.search(text)
    assert found is not None, text
    return found.group(0)


def refused_again(inc: Incident, count: int) -> None:
    """Wait until ``count`` refused attempts are on the record and the gate waits again."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = next(i for i in store().all() if i.id == inc.id)
        state = read_run(inc.flow_run_id).state
        if sum(1 for a in now.approvals if a.refused) == count and state is not None and state.is_paused():
            return
        time.sleep(0.2)
    raise AssertionError(f"attempt {count} was not refused in time")


def token_file(tmp_path: Path, name: str, token: str) -> Path:
    path = tmp_path / f"{name}.token"
    path.write_text(token)
    path.chmod(0o600)
    return path


def test_ui_code_approves_verified_and_is_never_recorded(inbox: list[str], sandbox: Fleet) -> None:
    sandbox.admin("sandbox-1", "faults", SLOW)
    state, inc = run(
        request(approval=GATED),
        lambda i: submit_decision(i.flow_run_id, approve=True, by="alice", comment="ok", code=code_in(inbox)),
    )
    assert state.is_completed() and inc.outcome == Outcome.RESOLVED
    (appr,) = inc.approvals
    assert (appr.by, appr.approved, appr.verified, appr.identity, appr.refused, appr.via) == (
        "alice",
        True,
        True,
        "code",
        "",
        "prefect",
    )
    code = code_in(inbox)
    assert f"as alice is {code}" in inbox[0] and f"for flow run {inc.flow_run_id} only" in inbox[0]
    sent = [n for n in inc.notifications if n.kind == "approval-code"]
    assert [(n.team, [d.status for d in n.deliveries]) for n in sent] == [("approver alice", ["delivered"])]
    assert [(d.topic, d.choice) for d in inc.decisions if d.topic == "approval-code"] == [
        ("approval-code", "sent"),
        ("approval-code", "not sent"),  # bob has no route of his own: never the team's channel
    ]
    report = Path(inc.report_path or "").read_text()
    assert "by `alice` via prefect, verified by code" in report
    record = store().load(inc.id).model_dump_json()  # what the store keeps
    assert code not in record and code.replace("-", "") not in record and code not in report


@pytest.mark.fault(
    tried="impersonating an approver: wrong and reused codes, a forged proof, a wrong token, an outsider, a typed llmedic-timeout",
    survives="each refused, recorded and shown; the gate waits; a real token then approves",
)
def test_refused_attempts_are_recorded_shown_and_never_reject(
    inbox: list[str], sandbox: Fleet, tmp_path: Path
) -> None:
    home = Path(os.environ["LLMEDIC_HOME"])
    alice = add_token(home / "approvers.yaml", "alice")
    add_token(home / "approvers.yaml", "bob")
    sandbox.admin("sandbox-1", "faults", SLOW)
    # An earlier run's code, approved and spent.
    run(
        request(approval=GATED),
        lambda i: submit_decision(i.flow_run_id, approve=True, by="alice", code=code_in(inbox)),
    )
    reused = code_in(inbox)
    inbox.clear()
    restarts = sandbox.state("sandbox-1")["restarts"]
    sandbox.admin("sandbox-1", "faults", SLOW)

    def forged_proof(inc: Incident) -> None:  # an HTTP client signing with a guessed token
        nonce = pending_gate(uuid.UUID(inc.flow_run_id), store())["nonce"]
        proof = make_proof(
            "guessed",
            run_id=inc.flow_run_id,
            action="restart_instance",
            approver="alice",
            approve=True,
            comment="",
            nonce=nonce,
        )
        submit_decision(inc.flow_run_id, approve=True, by="alice", code=proof)

    def wrong_token_cli(inc: Incident) -> None:
        bad = token_file(tmp_path, "mallory", "not-alices-token")
        res = CliRunner().invoke(app, ["approve", inc.flow_run_id, "--by", "alice", "--token-file", str(bad)])
        assert isinstance(res.exception, ApprovalRefused), res.output
        assert res.exception.message == (
            "refused: the token is not 'alice''s; the attempt is recorded on the incident and the gate keeps waiting"
        )

    def no_token_cli(inc: Incident) -> None:
        res = CliRunner().invoke(app, ["reject", inc.flow_run_id, "--by", "bob"])
        assert isinstance(res.exception, ApprovalRefused), res.output  # refused before anything is sent
        assert "a decision needs your token" in res.exception.message

    attempts: list[tuple[Callable[[Incident], None], str, str, str]] = [
        (
            lambda i: submit_decision(i.flow_run_id, approve=True, by="alice", code="AAAA-BBBB-CCCC-DDDD"),
            "alice",
            "code",
            "the approval code is not valid for 'alice' at this gate (wrong, or from another gate or run)",
        ),
        (
            lambda i: submit_decision(i.flow_run_id, approve=True, by="alice", code=reused),
            "alice",
            "code",
            "the approval code is not valid for 'alice' at this gate (wrong, or from another gate or run)",
        ),
        (
            lambda i: submit_decision(i.flow_run_id, approve=False, by="mallory", code=reused),
            "mallory",
            "none",
            "'mallory' is not one of the approvers (alice, bob)",
        ),
        (
            forged_proof,
            "alice",
            "token",
            "the token proof for 'alice' does not match (a wrong token, or a proof made for another run, "
            "action, decision or comment)",
        ),
        (
            wrong_token_cli,
            "alice",
            "token",
            "the token proof for 'alice' does not match (a wrong token, or a proof made for another run, "
            "action, decision or comment)",
        ),
        (
            # A person typing the sweeper's name into the form (the CLI refuses the name itself).
            lambda i: resume_flow_run(
                uuid.UUID(i.flow_run_id), run_input={"approve": False, "approver": "llmedic-timeout"}
            ),
            "llmedic-timeout",
            "none",
            "'llmedic-timeout' is the sweeper's name: without its proof it counts only after the deadline",
        ),
    ]

    def decide(inc: Incident) -> None:
        no_token_cli(inc)
        for n, (attempt, _, _, _) in enumerate(attempts, start=1):
            attempt(inc)
            refused_again(inc, n)
        approve_cli("alice", token_file(tmp_path, "alice", alice))(inc)

    state, inc = run(request(approval=GATED), decide)
    assert state.is_completed() and inc.outcome == Outcome.RESOLVED
    *refused, final = inc.approvals
    assert [(a.by, a.identity, a.approved) for a in refused] == [
        (by, ident, False) for _, by, ident, _ in attempts
    ]
    for a, (_, _, _, reason) in zip(refused, attempts, strict=True):
        assert a.refused.startswith(reason) and not a.verified
    assert (final.by, final.approved, final.verified, final.identity, final.refused) == (
        "alice",
        True,
        True,
        "token",
        "",
    )
    assert sandbox.state("sandbox-1")["restarts"] == restarts + 1  # type: ignore[operator]
    report = Path(inc.report_path or "").read_text()
    assert (
        report.count("**refused**") == len(attempts) and "by `alice` via prefect, verified by token" in report
    )

    from prefect.input.actions import read_flow_run_input

    shown = read_flow_run_input(
        f"paused-approve-restart-instance-{len(attempts) + 1}-description", inc.flow_run_id
    )
    assert "**The last attempt was refused** — by 'llmedic-timeout'" in shown
    assert f"this is attempt {len(attempts) + 1} of 10" in shown


@pytest.mark.fault(
    tried="a right one-time code used after the gate's deadline",
    survives="refused as expired; rejected by timeout, escalated",
)
def test_an_expired_code_is_refused_and_the_gate_times_out(
    inbox: list[str], sandbox: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tasks.approve

    sandbox.admin("sandbox-1", "faults", SLOW)

    def late(inc: Incident) -> None:
        deadline = pending_gate(uuid.UUID(inc.flow_run_id), store())["deadline"]
        after = datetime.fromisoformat(deadline) + timedelta(seconds=1)
        monkeypatch.setattr(tasks.approve, "utcnow", lambda: after)  # the flow's clock: past the deadline
        submit_decision(inc.flow_run_id, approve=True, by="alice", code=code_in(inbox))

    state, inc = run(request(approval=GATED), late)
    assert state.is_failed() and inc.outcome == Outcome.REJECTED and inc.escalated
    expired, final = inc.approvals
    assert expired.refused.startswith("the gate's deadline") and expired.refused.endswith(
        "has passed: the code or proof has expired"
    )
    assert (final.by, final.via, final.identity, final.approved) == (
        "llmedic-timeout",
        "timeout",
        "system",
        False,
    )
    assert inc.escalation_reason == "no decision on restart_instance before the deadline"
    assert sandbox.state("sandbox-1")["restarts"] == 0


@pytest.mark.fault(
    tried="garbage typed into the form until the attempts run out",
    survives="rejected and escalated by policy, nothing changed",
)
def test_too_many_refused_attempts_reject_and_escalate(inbox: list[str], sandbox: Fleet) -> None:
    sandbox.admin("sandbox-1", "faults", SLOW)

    def garbage(inc: Incident) -> None:
        submit_decision(inc.flow_run_id, approve=True, by="alice", code="WRONG")
        refused_again(inc, 1)
        submit_decision(inc.flow_run_id, approve=True, by="alice", code="WRONG")

    state, inc = run(request(approval={**GATED, "max_attempts": 2}), garbage)
    assert state.is_failed() and inc.outcome == Outcome.REJECTED and inc.escalated
    assert [(a.by, bool(a.refused), a.via) for a in inc.approvals] == [
        ("alice", True, "prefect"),
        ("alice", True, "prefect"),
        ("llmedic", False, "policy"),
    ]
    assert inc.escalation_reason == "2 refused approval attempts on restart_instance"


def test_without_approvers_any_name_counts_unverified(sandbox: Fleet) -> None:
    sandbox.admin("sandbox-1", "faults", SLOW)
    state, inc = run(request(), approve(by="carol"))
    assert state.is_completed() and inc.outcome == Outcome.RESOLVED
    (appr,) = inc.approvals
    assert (appr.by, appr.approved, appr.verified, appr.identity) == ("carol", True, False, "none")
    assert "by `carol` via prefect, unverified" in Path(inc.report_path or "").read_text()


@pytest.mark.parametrize(
    ("args", "what"),
    [
        (["approvers", "list"], "the approver tokens file"),
        (["approvers", "add", "bob"], "the approver tokens file"),
    ],
)
@pytest.mark.fault(
    tried="an approver tokens file readable by group and others",
    survives="refused with the mode and how to fix it",
)
def test_a_tokens_file_others_can_read_is_refused(args: list[str], what: str, clean_environ: Path) -> None:
    path = clean_environ / "approvers.yaml"
    add_token(path, "alice")
    path.chmod(0o644)
    res = CliRunner().invoke(app, args)
    assert isinstance(res.exception, ConfigError)
    assert res.exception.message == (
        f"{what} {path} is readable by group or others (mode 0644); llmedic will not use secrets from it"
    )
    assert (
        res.exception.hint
        == f"chmod 600 {path}, and replace the secrets in it: anyone on the host could read them"
    )


def test_approvers_add_prints_the_token_once_and_stores_it_private(clean_environ: Path) -> None:
    res = CliRunner().invoke(app, ["approvers", "add", "alice"])
    assert res.exit_code == 0, res.output
    token = res.stdout.strip()
    path = clean_environ / "approvers.yaml"
    assert path.stat().st_mode & 0o777 == 0o600
    assert yaml.safe_load(path.read_text()) == {"approvers": {"alice": token}}
    again = CliRunner().invoke(app, ["approvers", "add", "alice"])
    assert isinstance(again.exception, ApprovalError)  # already has one
    listed = CliRunner().invoke(app, ["approvers", "list", "--json"])
    assert json.loads(listed.stdout) == [{"name": "alice", "token": True, "code_route": []}]
    assert token not in listed.stdout
