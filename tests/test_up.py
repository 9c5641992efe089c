"""`llmedic up` as an operator runs it, driven through the Prefect UI in a real browser.

One stack, one story: ``llmedic up`` serves every deployment with its schedule; a manual run is
started from the latency deployment's parameter form in headless Chromium (and another through the
REST API with the body that form sends); the run stops at the approval gate; ``llmedic up`` is
stopped (nothing left running) and started again; the run is approved from its Resume form; the
restart is applied exactly once and the approver is on the incident. Screenshots of every page are
kept under ``$LLMEDIC_ARTIFACTS`` (default ``.artifacts/`` in the checkout).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from llmedic.incident import Outcome
from llmedic.store.incidents import IncidentStore
from llmedic_sandbox.fleet import free_port
from tests.conftest import Fleet

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Chromium as the machine allows it: no sandbox as root, no GPU, and no background connections
# (this network refuses them, and each refusal slows the page down).
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
EXPECTED_DEPLOYMENTS = {
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


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - a dev dependency
        pytest.fail("playwright is missing: `make test` installs the dev dependencies")
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium missing in CI (make tools installs the Debian package)")
        pytest.skip("chromium is not installed (make tools installs it when run as root)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Path:
    base = Path(os.environ.get("LLMEDIC_ARTIFACTS", ROOT / ".artifacts"))
    out = base / "browser" / request.node.name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    return out


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (children start their own sessions, so walk parent links)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        ppid = int(text.rsplit(")", 1)[1].split()[1])
        parents[int(stat.parent.name)] = ppid
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return found


def alive(pids: set[int]) -> set[int]:
    out = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.add(pid)
    return out


class Up:
    """One `llmedic up` process and the API it serves."""

    def __init__(self, env: dict[str, str], port: int, receiver_port: int, log: Path) -> None:
        self.api = f"http://127.0.0.1:{port}/api"
        self.ui = f"http://127.0.0.1:{port}"
        self.log = log
        self.seen: set[int] = set()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llmedic",
                "up",
                "--port",
                str(port),
                "--receiver-port",
                str(receiver_port),
            ],
            env=env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )

    def wait_served(self, deadline: float) -> dict[str, dict[str, Any]]:
        served: dict[str, dict[str, Any]] = {}
        while set(served) != EXPECTED_DEPLOYMENTS:
            assert self.proc.poll() is None, self.log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, f"served only {sorted(served)}"
            try:
                names = {f["id"]: f["name"] for f in self.post("/flows/filter", {})}
                served = {names.get(d["flow_id"], "?"): d for d in self.post("/deployments/filter", {})}
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.seen |= descendants(self.proc.pid)
        return served

    def post(self, path: str, body: dict[str, Any]) -> Any:
        resp = httpx.post(f"{self.api}{path}", json=body, timeout=10)
        resp.raise_for_status()
        return resp.json()

    def run(self, run_id: str) -> dict[str, Any]:
        resp = httpx.get(f"{self.api}/flow_runs/{run_id}", timeout=10)
        resp.raise_for_status()
        return resp.json()  # type: ignore[no-any-return]

    def wait_run(
        self, run_id: str, done: Callable[[dict[str, Any]], bool], deadline: float
    ) -> dict[str, Any]:
        while True:
            self.seen |= descendants(self.proc.pid)  # flow-run subprocesses come and go
            run = self.run(run_id)
            if done(run):
                return run
            assert time.monotonic() < deadline, (run["state_type"], run["state_name"])
            time.sleep(0.5)

    def stop(self) -> str:
        """SIGTERM, as Ctrl-C or systemd would; every process it started must be gone."""
        self.seen |= descendants(self.proc.pid)
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=90)
        out = self.log.read_text(errors="replace")
        assert self.proc.returncode == 0, out[-3000:]
        assert len(self.seen) >= 3  # server, deployment runner, receiver (at least)
        assert alive(self.seen) == set(), f"orphans after shutdown: {sorted(alive(self.seen))}"
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{self.api}/health", timeout=2)
        return out


def test_up_ui_manual_run_restart_and_approval_from_the_resume_form(
    sandbox: Fleet, clean_environ: Path, tmp_path: Path, browser: Any, shots: Path
) -> None:
    # Smaller probe counts so the story takes seconds; the SLO stays the shipped 2 s.
    books = tmp_path / "playbooks"
    books.mkdir()
    text = (ROOT / "playbooks" / "latency.yaml").read_text()
    for old, new in (
        ("confirm_probes: 8", "confirm_probes: 4"),
        ("reproduce_probes: 12", "reproduce_probes: 4"),
        ("verify_probes: 20", "verify_probes: 8"),
    ):
        assert old in text
        text = text.replace(old, new)
    (books / "latency.yaml").write_text(text)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(
        {
            "LLMEDIC_HOME": str(clean_environ),
            "LLMEDIC_CONFIG": str(sandbox.config),
            "LLMEDIC_PLAYBOOKS_DIR": str(books),
        }
    )
    port, receiver_port = free_port(), free_port()
    deadline = time.monotonic() + 420
    up = Up(env, port, receiver_port, tmp_path / "up.log")
    try:
        served = up.wait_served(deadline)
        # Schedules as llmedic.yaml sets them (embedded defaults here), in UTC.
        crons = {
            name: [(s["schedule"]["cron"], s["schedule"]["timezone"], s["active"]) for s in d["schedules"]]
            for name, d in served.items()
            if d["schedules"]
        }
        assert crons == {
            "llmedic-data-audit": [("0 3 1 * *", "UTC", True)],
            "llmedic-golden-sample": [("0 6 * * *", "UTC", True)],
            "llmedic-capacity-review": [("0 4 1 * *", "UTC", True)],
            "llmedic-backup-verify": [("0 5 * * 0", "UTC", True)],
        }
        scheduled: list[dict[str, Any]] = []
        while not scheduled:
            assert time.monotonic() < deadline
            body = {"deployments": {"id": {"any_": [served["llmedic-data-audit"]["id"]]}}}
            scheduled = up.post("/flow_runs/filter", body)
            time.sleep(0.5)
        assert {(str(r["expected_start_time"])[-13:], r["state_type"]) for r in scheduled} == {
            ("-01T03:00:00Z", "SCHEDULED")
        }
        token = clean_environ / "receiver.token"
        assert oct(token.stat().st_mode & 0o777) == "0o600"
        anonymous = httpx.post(
            f"http://127.0.0.1:{receiver_port}/alerts", json={"anomaly": "latency", "target": "sandbox-0"}
        )
        assert anonymous.status_code == 401

        # 1. A manual run from the deployment's parameter form (the nested IncidentRequest form).
        sandbox.admin("sandbox-2", "faults", {"kind": "slow", "delay_seconds": 2.5})
        latency = served["llmedic-latency"]["id"]
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        sent: list[dict[str, Any]] = []
        page.on(
            "request",
            lambda r: (
                sent.append(json.loads(r.post_data or "{}"))
                if r.method == "POST" and r.url.endswith("/create_flow_run")
                else None
            ),
        )
        page.goto(f"{up.ui}/deployments/deployment/{latency}", wait_until="networkidle", timeout=60_000)
        page.screenshot(path=str(shots / "1-deployment.png"))
        page.get_by_role("button", name="Run", exact=True).click()
        page.get_by_text("Custom run").click()
        page.wait_for_load_state("networkidle")
        for label in ("Alert", "Target", "Dry Run", "Overrides"):  # IncidentRequest's fields, nested
            expect(page.get_by_text(f"{label} (Optional)", exact=True)).to_have_count(1)
        page.locator("textarea").first.fill("sandbox-2")
        page.screenshot(path=str(shots / "2-custom-run-form.png"), full_page=True)
        page.get_by_role("button", name="Submit").click()
        while not sent:
            assert time.monotonic() < deadline, "the form sent nothing"
            page.wait_for_timeout(200)
        (form,) = sent
        assert form["parameters"] == {
            "request": {
                "target": "sandbox-2",
                "dry_run": False,
                "overrides": {"__prefect_kind": "json"},  # an empty JSON editor
                "alert": None,
            }
        }
        page.wait_for_url("**/deployments/deployment/*", timeout=30_000)
        page.screenshot(path=str(shots / "3-run-created.png"))
        (ui_run,) = up.post("/flow_runs/filter", {"deployments": {"id": {"any_": [latency]}}})

        # 2. The same form body through the REST API, for a healthy instance.
        api_body = {**form, "name": "api-manual-run"}
        api_body["parameters"] = {"request": {**form["parameters"]["request"], "target": "sandbox-0"}}
        api_run = up.post(f"/deployments/{latency}/create_flow_run", api_body)
        api_done = up.wait_run(
            api_run["id"], lambda r: r["state_type"] in ("COMPLETED", "FAILED", "CRASHED"), deadline
        )
        assert api_done["state_type"] == "COMPLETED", api_done["state_name"]
        assert api_done["parameters"] == {"request": {"target": "sandbox-0", "dry_run": False, "alert": None}}

        # 3. The UI's run stops at the gate, suspended: it holds no process.
        run_id = ui_run["id"]
        run = up.wait_run(
            run_id, lambda r: r["state_type"] in ("PAUSED", "COMPLETED", "FAILED", "CRASHED"), deadline
        )
        assert (run["state_type"], run["state_name"]) == ("PAUSED", "Suspended")
        store = IncidentStore(clean_environ)
        outcomes = {i.target: i.outcome for i in store.all()}
        assert outcomes == {"sandbox-0": Outcome.FALSE_POSITIVE, "sandbox-2": Outcome.OPEN}
        page.close()
    finally:
        first_log = up.stop()
    assert "llmedic up: 1 service(s)" in first_log

    # 4. Started again on the same state: the run is still waiting, and is approved in the UI.
    up = Up(env, port, receiver_port, tmp_path / "up-2.log")
    try:
        up.wait_served(deadline)
        assert up.run(run_id)["state_name"] == "Suspended"
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        page.goto(f"{up.ui}/runs/flow-run/{run_id}", wait_until="networkidle", timeout=60_000)
        page.screenshot(path=str(shots / "4-suspended-run.png"))
        page.get_by_role("button", name="Resume", exact=True).click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_text("restart_instance").first.wait_for(timeout=30_000)
        dialog.get_by_role("switch").click()
        dialog.locator("textarea").nth(0).fill("oncall-ana")
        dialog.locator("textarea").nth(1).fill("restart it (from the UI)")
        page.screenshot(path=str(shots / "5-resume-form.png"), full_page=True)
        dialog.get_by_role("button", name="Submit").click()
        done = up.wait_run(run_id, lambda r: r["state_type"] in ("COMPLETED", "FAILED", "CRASHED"), deadline)
        page.goto(f"{up.ui}/runs/flow-run/{run_id}", wait_until="networkidle", timeout=60_000)
        page.screenshot(path=str(shots / "6-completed-run.png"))
        page.close()
        assert done["state_type"] == "COMPLETED", done["state_name"]
        incident = next(i for i in store.all() if i.target == "sandbox-2")
        assert incident.outcome == Outcome.RESOLVED
        assert [(a.by, a.approved, a.comment, a.via) for a in incident.approvals] == [
            ("oncall-ana", True, "restart it (from the UI)", "prefect")
        ]
        assert sandbox.state("sandbox-2")["restarts"] == 1  # exactly once across the restart
        # The decision is final: a later approval from the CLI is refused, clearly.
        again = subprocess.run(
            [sys.executable, "-m", "llmedic", "approve", run_id, "--by", "oncall-bo"],
            env={**env, "PREFECT_API_URL": up.api},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert again.returncode == 1
        assert f"error [approval-invalid]: flow run {run_id} is not waiting for an approval" in again.stderr
    finally:
        up.stop()
    assert (clean_environ / "prefect" / "prefect.db").exists()
    assert len(list(shots.glob("*.png"))) == 6
