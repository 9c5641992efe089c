"""Scale-out as the operator guide describes it: a Prefect server on PostgreSQL, the process work
pool and deployment from ``deployments/prefect.yaml``, and a separate ``prefect worker`` process
that picks the run up and runs the flow against the sandbox."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from llmedic.incident import Outcome
from llmedic.orchestration import PrefectServer, prefect_env, stop_process, wait_for_run
from llmedic.store.incidents import IncidentStore
from llmedic_sandbox.fleet import free_port
from tests.conftest import Fleet

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[1]


def prefect(env: dict[str, str], *args: str) -> str:
    cli = Path(sys.executable).parent / "prefect"
    done = subprocess.run(
        [str(cli), "--no-prompt", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_a_flow_runs_on_a_separate_worker_of_a_postgresql_backed_server(
    postgres_url: str, sandbox: Fleet, clean_environ: Path, tmp_path: Path
) -> None:
    server = PrefectServer(
        tmp_path / "server",
        port=free_port(),
        database_url=postgres_url.replace("postgresql://", "postgresql+asyncpg://"),
    )
    server.start(timeout=180)
    worker: subprocess.Popen[bytes] | None = None
    try:
        # The worker host: its own Prefect home, the shared llmedic home and configuration.
        env = prefect_env(clean_environ, server.api_url)
        env.update(
            {
                "PREFECT_HOME": str(tmp_path / "worker-prefect"),
                "LLMEDIC_CONFIG": str(sandbox.config),
                "LLMEDIC_CHECKOUT": str(ROOT),
                "PREFECT_WORKER_QUERY_SECONDS": "1",
                "PREFECT_WORKER_PREFETCH_SECONDS": "1",
            }
        )
        prefect(env, "work-pool", "create", "llmedic", "--type", "process")
        out = prefect(
            env,
            "deploy",
            "--prefect-file",
            "deployments/prefect.yaml",
            "--name",
            "latency/default",  # Prefect matches the entrypoint function
        )
        assert "llmedic-latency/default" in out
        log = (tmp_path / "worker.log").open("wb")
        worker = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "prefect"),
                "worker",
                "start",
                "--pool",
                "llmedic",
                "--limit",
                "1",
            ],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            from prefect.deployments import run_deployment

            run = run_deployment(
                "llmedic-latency/default",
                parameters={"request": {"target": "sandbox-0", "dry_run": False, "overrides": {}}},
                timeout=0,
            )
            done = wait_for_run(run.id, lambda r: bool(r.state and r.state.is_final()), timeout=240)
        assert done.state is not None and done.state.is_completed(), (
            done.state,
            (tmp_path / "worker.log").read_text(errors="replace")[-3000:],
        )
        assert (done.work_pool_name, done.infrastructure_pid is not None) == ("llmedic", True)
        assert worker.poll() is None
        assert str(run.id) in (tmp_path / "worker.log").read_text(errors="replace")
        (incident,) = IncidentStore(clean_environ).all()
        assert (incident.flow_run_id, incident.outcome, incident.target) == (
            str(run.id),
            Outcome.FALSE_POSITIVE,
            "sandbox-0",
        )
        assert sandbox.state("sandbox-0")["actions"] == []  # a healthy instance is left alone
        # The run lives in PostgreSQL, not in a SQLite file.
        with psycopg.connect(postgres_url) as db:
            row = db.execute("SELECT state_type FROM flow_run WHERE id = %s", (str(run.id),)).fetchone()
        assert row == ("COMPLETED",)
        assert not list((tmp_path / "server").rglob("*.db"))
    finally:
        if worker is not None:
            stop_process(worker)
        server.stop()
    assert os.path.exists(tmp_path / "worker.log")
