"""Run an anomaly flow in a thread under the Prefect harness and play the operator at its gate."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmedic.approval import submit_decision
from llmedic.incident import Incident, IncidentRequest
from llmedic.orchestration import read_run
from llmedic.store.incidents import IncidentStore


def store() -> IncidentStore:
    return IncidentStore(Path(os.environ["LLMEDIC_HOME"]))


def run_flow(
    flow: Callable[..., Any],
    req: IncidentRequest,
    decide: Callable[[Incident], None] | None = None,
    timeout: float = 120,
) -> tuple[Any, Incident]:
    """The flow's final state and the one incident it recorded (incidents of earlier runs aside)."""
    before = {i.id for i in store().all()}
    out: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: out.setdefault("state", flow(req, return_state=True)))
    thread.start()
    deadline = time.monotonic() + timeout
    decided = False
    while thread.is_alive() and time.monotonic() < deadline:
        if decide and not decided:
            waiting = store().pending_approvals()
            if waiting:
                state = read_run(waiting[0].flow_run_id).state
                if state is not None and state.is_paused():
                    decide(waiting[0])
                    decided = True
        time.sleep(0.3)
    thread.join(10)
    assert not thread.is_alive(), "flow did not finish"
    incidents = [i for i in store().all() if i.id not in before]
    assert len(incidents) == 1
    return out["state"], incidents[0]


def approve(by: str = "alice") -> Callable[[Incident], None]:
    return lambda inc: submit_decision(inc.flow_run_id, approve=True, by=by, comment="looks right")


def approve_cli(by: str = "alice", token_file: Path | None = None) -> Callable[[Incident], None]:
    """Approve as an operator at a terminal: `llmedic approve RUN --by NAME --comment ...`
    (with `--token-file` when given)."""

    def decide(inc: Incident) -> None:
        from typer.testing import CliRunner

        from llmedic.cli import app

        more = ["--token-file", str(token_file)] if token_file else []
        res = CliRunner().invoke(
            app, ["approve", inc.flow_run_id, "--by", by, "--comment", "looks right", *more]
        )
        assert res.exit_code == 0, res.output
        signed = " with a token proof" if token_file else ""
        assert res.output.strip() == f"approved flow run {inc.flow_run_id} as {by}{signed}"

    return decide


def reject(by: str = "bob") -> Callable[[Incident], None]:
    return lambda inc: submit_decision(inc.flow_run_id, approve=False, by=by, comment="not now")
