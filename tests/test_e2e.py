"""End to end over real processes: a Prefect server (SQLite), the deployment runner (`python -m
flows`), the sandbox fleet over HTTP, an Alertmanager payload, and the `llmedic` CLI.

The run waits at the approval gate *suspended*; the runner is stopped and started again; the
approval then resumes it, and the restart is applied exactly once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from llmedic.alerts import parse_alertmanager
from llmedic.config import load_environment
from llmedic.demo import alertmanager_payload
from llmedic.incident import IncidentStore, Outcome
from llmedic.orchestration import (
    PrefectServer,
    dispatch_alerts,
    prefect_env,
    read_run,
    stop_process,
    stop_runner,
    wait_for_run,
)
from llmedic.sandbox.fleet import free_port
from tests.conftest import Fleet

pytestmark = pytest.mark.e2e
SHIPPED = Path(__file__).resolve().parents[1] / "playbooks" / "latency.yaml"


@pytest.fixture
def stack(sandbox: Fleet, clean_environ: Path, tmp_path: Path) -> Iterator[dict[str, object]]:
    books = tmp_path / "playbooks"
    books.mkdir()
    text = SHIPPED.read_text()
    for old, new in (
        ("slo_p99_seconds: 2.0", "slo_p99_seconds: 0.5"),
        ("confirm_probes: 8", "confirm_probes: 4"),
        ("reproduce_probes: 12", "reproduce_probes: 4"),
        ("verify_probes: 20", "verify_probes: 8"),
    ):
        assert old in text
        text = text.replace(old, new)
    (books / "latency.yaml").write_text(text)
    server = PrefectServer(clean_environ, port=free_port())
    server.start()
    env = prefect_env(clean_environ, server.api_url, poll_seconds=1)
    env.update({"LLMEDIC_CONFIG": str(sandbox.config), "LLMEDIC_PLAYBOOKS_DIR": str(books)})
    runners: list[subprocess.Popen[bytes]] = []

    def start_runner() -> subprocess.Popen[bytes]:
        log = open(clean_environ / f"runner-{len(runners)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "flows"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        runners.append(proc)
        return proc

    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        yield {"server": server, "env": env, "start_runner": start_runner, "home": clean_environ}
    for proc in runners:
        stop_process(proc)
    server.stop()


def wait_deployment(timeout: float = 90) -> None:
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    while True:
        try:
            with get_client(sync_client=True) as client:
                client.read_deployment_by_name("llmedic-latency/default")
                return
        except Exception:
            assert time.monotonic() < deadline, "deployment never appeared"
            time.sleep(0.5)


def test_alert_to_resolution_survives_a_runner_restart(stack: dict[str, object], sandbox: Fleet) -> None:
    start_runner = stack["start_runner"]
    env = stack["env"]
    home = stack["home"]
    assert callable(start_runner) and isinstance(env, dict) and isinstance(home, Path)
    runner = start_runner()
    wait_deployment()

    sandbox.admin("sandbox-2", "faults", {"kind": "slow", "delay_seconds": 0.8})
    time.sleep(3)
    netloc = sandbox.urls["sandbox-2"].split("://", 1)[1]
    payload = alertmanager_payload(netloc, "pharma-qa", "p99 above SLO on sandbox-2")
    alerts = parse_alertmanager(payload, load_environment(sandbox.config).alert_rules)
    (first,) = dispatch_alerts(alerts)
    (again,) = dispatch_alerts(alerts)  # Alertmanager repeat / retry: same idempotency key
    assert (first.status, again.status) == ("started", "duplicate")
    assert first.flow_run_id == again.flow_run_id and first.flow_run_id is not None
    run_id = first.flow_run_id

    run = wait_for_run(
        run_id, lambda r: bool(r.state and (r.state.is_paused() or r.state.is_final())), timeout=180
    )
    assert run.state is not None and run.state.name == "Suspended", run.state

    stop_runner(runner)  # SIGTERM: graceful shutdown of the serving process, as `llmedic up` does it
    assert runner.returncode is not None
    state = read_run(run_id).state
    assert state is not None and state.is_paused()  # still waiting, nothing holds it
    store = IncidentStore(home / "incidents")
    assert [i.pending_approval["action"] for i in store.pending_approvals() if i.pending_approval] == [
        "restart_instance"
    ]

    start_runner()
    cli = subprocess.run(
        [sys.executable, "-m", "llmedic", "approve", run_id, "--by", "oncall-ana", "--comment", "restart it"],
        env={**env, "LLMEDIC_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.strip() == f"approved flow run {run_id} as oncall-ana"

    run = wait_for_run(run_id, lambda r: bool(r.state and r.state.is_final()), timeout=180)
    assert run.state is not None and run.state.is_completed(), run.state
    (incident,) = store.all()
    assert incident.outcome == Outcome.RESOLVED
    assert [(a.by, a.approved, a.comment) for a in incident.approvals] == [("oncall-ana", True, "restart it")]
    assert sandbox.state("sandbox-2")["restarts"] == 1  # the fix ran exactly once across the restart
    assert [a["action"] for a in sandbox.state("sandbox-2")["actions"]] == [
        "inject",
        "drain",
        "restart",
        "undrain",
    ]  # type: ignore[index]
    assert incident.report_path and Path(incident.report_path).exists()

    # The decision is final: a second approval is refused with a clear message.
    again_cli = subprocess.run(
        [sys.executable, "-m", "llmedic", "approve", run_id, "--by", "oncall-ana"],
        env={**env, "LLMEDIC_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again_cli.returncode == 1
    assert f"error [approval-invalid]: flow run {run_id} is not waiting for an approval" in again_cli.stderr


def test_cli_errors_are_clear(tmp_path: Path) -> None:
    bad = tmp_path / "llmedic.yaml"
    bad.write_text("services:\n  - name: x\n    instances: []\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMEDIC_")}
    result = subprocess.run(
        [sys.executable, "-m", "llmedic", "config", "check", str(bad)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines()[:2] == [
        f"error [config-invalid]: {bad}: 1 problem",
        f"  {bad}:3: services[0].instances: List should have at least 1 item after validation, not 0",
    ]
