"""`llmedic up` as a user runs it: server + deployments come up; SIGTERM stops everything cleanly."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from llmedic.sandbox.fleet import free_port
from tests.conftest import Fleet

pytestmark = pytest.mark.e2e


def test_up_serves_deployments_and_stops_on_sigterm(sandbox: Fleet, clean_environ: Path) -> None:
    port, receiver_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update({"LLMEDIC_HOME": str(clean_environ), "LLMEDIC_CONFIG": str(sandbox.config)})
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmedic", "up", "--port", str(port), "--receiver-port", str(receiver_port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 120
        found = False
        while time.monotonic() < deadline and not found:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                resp = httpx.post(f"{api}/deployments/filter", json={}, timeout=5)
                found = resp.status_code == 200 and any(d["name"] == "default" for d in resp.json())
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        assert found, "the latency deployment was not served"
        expected = {
            "llmedic-latency",
            "llmedic-memory-leak",
            "llmedic-data-missing",
            "llmedic-data-format",
            "llmedic-data-quality",
            "llmedic-data-audit",
            "llmedic-accuracy-drop",
            "llmedic-golden-sample",
            "llmedic-release-gate",
            "llmedic-capacity-review",
            "llmedic-backup-verify",
            "llmedic-gpu-fault",
            "llmedic-dependency-conflict",
            "llmedic-network-interruption",
        }
        served: dict[str, dict[str, object]] = {}
        while time.monotonic() < deadline and set(served) != expected:
            names = {f["id"]: f["name"] for f in httpx.post(f"{api}/flows/filter", json={}, timeout=5).json()}
            deps = httpx.post(f"{api}/deployments/filter", json={}, timeout=5).json()
            served = {names.get(d["flow_id"], "?"): d for d in deps}
            time.sleep(0.3)
        assert set(served) == expected
        (schedule,) = served["llmedic-data-audit"]["schedules"]  # type: ignore[misc]
        assert (schedule["schedule"]["cron"], schedule["schedule"]["timezone"], schedule["active"]) == (
            "0 3 1 * *",
            "UTC",
            True,
        )
        (daily,) = served["llmedic-golden-sample"]["schedules"]  # type: ignore[misc]
        assert (daily["schedule"]["cron"], daily["active"]) == ("0 6 * * *", True)
        assert served["llmedic-release-gate"]["schedules"] == []
        crons = {
            name: served[name]["schedules"][0]["schedule"]["cron"]  # type: ignore[index]
            for name in ("llmedic-capacity-review", "llmedic-backup-verify")
        }
        assert crons == {"llmedic-capacity-review": "0 4 1 * *", "llmedic-backup-verify": "0 5 * * 0"}
        # The scheduler has already created the coming monthly runs: 03:00 UTC on the 1st.
        runs: list[dict[str, object]] = []
        while time.monotonic() < deadline and not runs:
            body = {"deployments": {"id": {"any_": [served["llmedic-data-audit"]["id"]]}}}
            runs = httpx.post(f"{api}/flow_runs/filter", json=body, timeout=5).json()
            time.sleep(0.5)
        assert runs and all(str(r["expected_start_time"]).endswith("-01T03:00:00Z") for r in runs)
        assert {r["state_type"] for r in runs} == {"SCHEDULED"}
        token = clean_environ / "receiver.token"
        assert oct(token.stat().st_mode & 0o777) == "0o600"
        receiver = f"http://127.0.0.1:{receiver_port}"
        health = {}
        while time.monotonic() < deadline and not health:
            try:
                health = httpx.get(f"{receiver}/healthz", timeout=2).json()
            except httpx.HTTPError:
                time.sleep(0.3)
        assert health["status"] == "ok"
        unauthenticated = httpx.post(
            f"{receiver}/alerts", json={"anomaly": "latency", "target": "sandbox-0"}, timeout=5
        )
        assert unauthenticated.status_code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out.decode()
    assert b"llmedic up: 1 service(s)" in out
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{api}/health", timeout=2)
    assert (clean_environ / "prefect" / "prefect.db").exists()
