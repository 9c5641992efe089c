"""The receiver as its own process (bearer auth) in front of a real Prefect server, under faults:
the Prefect API down while alerts arrive, and the receiver SIGKILLed between accepting and
dispatching — nothing is lost and no run starts twice, on either outbox backend.

(The happy path through real Prometheus and Alertmanager is tests/test_demo.py: `make demo`.)
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from prefect.settings import PREFECT_API_URL, temporary_settings

from llmedic.orchestration import PrefectServer, prefect_env, stop_process, stop_runner
from llmedic.receiver.outbox import Outbox
from llmedic_sandbox.fleet import free_port
from tests.conftest import Fleet

pytestmark = pytest.mark.e2e
SHIPPED = Path(__file__).resolve().parents[1] / "playbooks" / "latency.yaml"
TOKEN = "e2e-token-123"


class Stack:
    def __init__(self, home: Path, fleet: Fleet, tmp: Path) -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.fleet = fleet
        books = tmp / "playbooks"
        books.mkdir()
        text = SHIPPED.read_text()
        for old, new in (
            ("confirm_probes: 8", "confirm_probes: 4"),
            ("reproduce_probes: 12", "reproduce_probes: 4"),
            ("verify_probes: 20", "verify_probes: 8"),
        ):
            text = text.replace(old, new)
        (books / "latency.yaml").write_text(text)
        self.token_file = tmp / "token"
        self.token_file.write_text(TOKEN + "\n")
        self.api_port = free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}/api"
        self.env = prefect_env(home, self.api_url, poll_seconds=1)
        self.env.update(
            {
                "LLMEDIC_CONFIG": str(self._ungrouped(fleet.config, tmp)),
                "LLMEDIC_PLAYBOOKS_DIR": str(books),
                "LLMEDIC_RECEIVER_TOKEN_FILE": str(self.token_file),
            }
        )
        self.receiver_port = free_port()
        self.server: PrefectServer | None = None
        self.procs: list[subprocess.Popen[bytes]] = []

    @staticmethod
    def _ungrouped(config: Path, tmp: Path) -> Path:
        """The fleet's environment with alert grouping off: these tests count one run per alert (each
        about another instance), which is what durability is judged by; grouping has its own tests."""
        env = yaml.safe_load(config.read_text())
        env.setdefault("receiver", {})["group_window_seconds"] = 0
        out = tmp / "llmedic.yaml"
        out.write_text(yaml.safe_dump(env))
        return out

    @property
    def receiver_url(self) -> str:
        return f"http://127.0.0.1:{self.receiver_port}"

    def start_server(self) -> None:
        self.server = PrefectServer(self.home, port=self.api_port)
        self.server.start()

    def spawn(self, args: list[str], log: str) -> subprocess.Popen[bytes]:
        fh = open(self.home / log, "ab")  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, *args], env=self.env, stdout=fh, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def start_runner(self) -> subprocess.Popen[bytes]:
        return self.spawn(["-m", "flows"], "runner.log")

    def start_receiver(self) -> subprocess.Popen[bytes]:
        proc = self.spawn(["-m", "llmedic", "receiver", "--port", str(self.receiver_port)], "receiver.log")
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.receiver_url}/healthz", timeout=1).status_code in (200, 503):
                    return proc
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (
                self.home / "receiver.log"
            ).read_text()
            time.sleep(0.2)

    def wait_deployment(self) -> None:
        deadline = time.monotonic() + 90
        while True:
            try:
                resp = httpx.post(f"{self.api_url}/deployments/filter", json={}, timeout=5)
                if any(d["name"] == "default" for d in resp.json()):
                    return
            except (httpx.HTTPError, ValueError):
                pass
            assert time.monotonic() < deadline, "deployment never appeared"
            time.sleep(0.5)

    def flow_runs(self) -> list[dict[str, object]]:
        """Runs the receiver started (not the scheduler's coming runs of the scheduled flows)."""
        runs = httpx.post(f"{self.api_url}/flow_runs/filter", json={}, timeout=10).json()
        return [r for r in runs if "scheduled" not in r.get("tags", [])]

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                stop_process(proc, timeout=20)
        if self.server is not None:
            self.server.stop()


@pytest.fixture
def stack(sandbox: Fleet, clean_environ: Path, tmp_path: Path) -> Iterator[Stack]:
    s = Stack(clean_environ, sandbox, tmp_path)
    with temporary_settings(updates={PREFECT_API_URL: s.api_url}):
        yield s
    s.stop()


def alert_body(instance: str, start: str) -> dict[str, object]:
    return {
        "version": "4",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "VLLMHighP99Latency", "anomaly": "latency", "instance": instance},
                "startsAt": start,
                "endsAt": "0001-01-01T00:00:00Z",
            }
        ],
    }


@pytest.mark.fault(
    tried="alerts while the Prefect API is down, then the receiver SIGKILLed before dispatch",
    survives="every accepted alert replayed once Prefect is back; no run started twice",
)
# PostgreSQL (the shared production outbox) in `make test`; the SQLite outbox's outbox logic is the
# same and runs in tests/test_receiver.py on both backends, so its end-to-end run is in `make soak`.
@pytest.mark.parametrize("backend", [pytest.param("sqlite", marks=pytest.mark.soak), "postgres"])
def test_prefect_down_and_sigkill_lose_nothing_and_duplicate_nothing(
    stack: Stack, sandbox: Fleet, backend: str, request: pytest.FixtureRequest
) -> None:
    if backend == "postgres":
        stack.env["LLMEDIC_OUTBOX_URL"] = request.getfixturevalue("postgres_url")
    # 1. Prefect is down; alerts arrive; every one is accepted into the outbox.
    receiver = stack.start_receiver()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    bodies = [
        alert_body(sandbox.urls[n].split("://", 1)[1], "2026-11-24T10:00:00Z")
        for n in ("sandbox-0", "sandbox-1", "sandbox-2")
    ]
    for body in bodies + bodies:  # every notification twice (Alertmanager retry / HA pair)
        resp = httpx.post(f"{stack.receiver_url}/alerts/alertmanager", json=body, headers=headers, timeout=10)
        assert resp.status_code == 202
    url = stack.env.get("LLMEDIC_OUTBOX_URL")
    outbox = Outbox(url=url) if url else Outbox(stack.home / "llmedic.db")
    deadline = time.monotonic() + 60
    while not all(r.attempts >= 1 for r in outbox.rows("pending")):
        assert time.monotonic() < deadline, [(r.attempts, r.error) for r in outbox.rows()]
        time.sleep(0.5)
    pending = outbox.rows("pending")
    assert len(pending) == 3 and all(r.seen == 2 for r in pending)
    assert all("cannot reach the Prefect API" in (r.error or "") for r in pending)

    # 2. The receiver is killed between accept and dispatch.
    receiver.send_signal(signal.SIGKILL)
    receiver.wait(10)

    # 3. Prefect comes back; the receiver restarts and replays its outbox.
    stack.start_server()
    runner = stack.start_runner()
    stack.wait_deployment()
    stack.start_receiver()
    deadline = time.monotonic() + 90
    while outbox.depth():
        assert time.monotonic() < deadline, [(r.state, r.error) for r in outbox.rows()]
        time.sleep(0.5)
    # Repeats after recovery start nothing new.
    for body in bodies:
        httpx.post(f"{stack.receiver_url}/alerts/alertmanager", json=body, headers=headers, timeout=10)
    time.sleep(3)
    runs = stack.flow_runs()
    assert len(runs) == 3
    assert sorted(r.state for r in outbox.rows()) == ["started", "started", "started"]
    stop_runner(runner)
