"""Scale-out as the operator guide describes it: a Prefect server on PostgreSQL, the process work
pool and deployment from ``deployments/prefect.yaml``, and two separate ``prefect worker`` hosts —
each with its own ``LLMEDIC_HOME`` and nothing shared on disk — whose llmedic state is one
PostgreSQL state store (``LLMEDIC_STORE_URL``). The incident a run opens on one worker is read,
listed and searched from the other worker's home."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from llmedic.incident import Outcome
from llmedic.orchestration import PrefectServer, prefect_env, stop_process, wait_for_run
from llmedic_sandbox.fleet import free_port
from tests.conftest import Fleet

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def new_database(postgres_server: str) -> str:
    name = f"store_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    return f"{postgres_server}/{name}"


def worker_env(home: Path, api_url: str, store_url: str, sandbox: Fleet) -> dict[str, str]:
    """One worker host: its own llmedic and Prefect homes; only the databases are shared."""
    env = prefect_env(home, api_url)
    env.update(
        {
            "LLMEDIC_STORE_URL": store_url,
            "LLMEDIC_CONFIG": str(sandbox.config),
            "LLMEDIC_CHECKOUT": str(ROOT),
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_WORKER_PREFETCH_SECONDS": "1",
        }
    )
    return env


def start_workers(envs: list[dict[str, str]], tmp_path: Path) -> list[subprocess.Popen[bytes]]:
    """The work pool and the latency deployment from ``deployments/prefect.yaml``, and one
    ``prefect worker`` per host (logs in ``worker-N.log``)."""
    prefect = [str(BIN / "prefect"), "--no-prompt"]
    run(envs[0], *prefect, "work-pool", "create", "llmedic", "--type", "process")
    out = run(
        envs[0], *prefect, "deploy", "--prefect-file", "deployments/prefect.yaml", "--name", "latency/default"
    )
    assert "llmedic-latency/default" in out  # Prefect matches the entrypoint function
    return [
        subprocess.Popen(
            [prefect[0], "worker", "start", "--pool", "llmedic", "--limit", "1", "--name", f"host-{n}"],
            env=env,
            cwd=tmp_path,
            stdout=(tmp_path / f"worker-{n}.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for n, env in enumerate(envs, start=1)
    ]


def assert_seen_from(env: dict[str, str], run_id: str) -> None:
    """The run's incident, as ``llmedic incidents list / show / search`` on that host show it."""
    llmedic = str(BIN / "llmedic")
    (listed,) = json.loads(run(env, llmedic, "incidents", "list", "--json"))
    assert (listed["flow_run_id"], listed["outcome"], listed["target"]) == (
        run_id,
        Outcome.FALSE_POSITIVE.value,
        "sandbox-0",
    )
    assert json.loads(run(env, llmedic, "incidents", "show", listed["id"], "--json"))["id"] == listed["id"]
    (found,) = json.loads(run(env, llmedic, "incidents", "search", "--target", "sandbox-0", "--json"))
    assert found["incident"] == listed["id"]


def test_two_workers_on_separate_homes_share_incidents_through_one_postgresql_store(
    postgres_server: str, postgres_url: str, sandbox: Fleet, clean_environ: Path, tmp_path: Path
) -> None:
    store_url = new_database(postgres_server)  # llmedic's state; Prefect's tables are in postgres_url
    server = PrefectServer(
        tmp_path / "server",
        port=free_port(),
        database_url=postgres_url.replace("postgresql://", "postgresql+asyncpg://"),
    )
    server.start(timeout=180)
    homes = [tmp_path / "host-1", tmp_path / "host-2"]
    envs = [worker_env(h, server.api_url, store_url, sandbox) for h in homes]
    workers: list[subprocess.Popen[bytes]] = []
    try:
        workers = start_workers(envs, tmp_path)
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            from prefect.deployments import run_deployment

            flow_run = run_deployment(
                "llmedic-latency/default",
                parameters={"request": {"target": "sandbox-0", "dry_run": False, "overrides": {}}},
                timeout=0,
            )
            done = wait_for_run(flow_run.id, lambda r: bool(r.state and r.state.is_final()), timeout=240)
        logs = [(tmp_path / f"worker-{n}.log").read_text(errors="replace") for n in (1, 2)]
        assert done.state is not None and done.state.is_completed(), (
            done.state,
            logs[0][-2000:],
            logs[1][-2000:],
        )
        assert all(w.poll() is None for w in workers)
        # Both workers may try to submit it; only the one that ran it shows the flow's own log.
        ran = [f"/runs/flow-run/{flow_run.id}" in log for log in logs]
        assert sorted(ran) == [False, True], ran
        other = envs[ran.index(False)]  # the host that did not run it, reading its own home

        assert_seen_from(other, str(flow_run.id))
        assert sandbox.state("sandbox-0")["actions"] == []  # a healthy instance is left alone
        # Nothing went through a shared disk: neither home holds an incident file or a SQLite store.
        for home in homes:
            assert not list(home.rglob("incidents/*.json")) and not list(home.rglob("*.db"))
        # The run lives in PostgreSQL, and so does the incident.
        with psycopg.connect(postgres_url) as db:
            row = db.execute("SELECT state_type FROM flow_run WHERE id = %s", (str(flow_run.id),)).fetchone()
        assert row == ("COMPLETED",)
        with psycopg.connect(store_url) as db:
            assert db.execute("SELECT flow_run_id FROM incidents").fetchall() == [(str(flow_run.id),)]
        assert not list((tmp_path / "server").rglob("*.db"))
    finally:
        for w in workers:
            stop_process(w)
        server.stop()
