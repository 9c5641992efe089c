"""Shared fixtures: a hermetic environment, one sandbox fleet and one Prefect harness per session."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from llmedic_sandbox.fleet import FleetSpec, start_fleet, write_healthy_gpus
from llmedic_sandbox.knowledge import shipped_path
from tests.sshd import Sshd, running_sshd


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No LLMEDIC_* from the developer's shell; a fresh home per test."""
    for key in list(os.environ):
        if key.startswith("LLMEDIC_"):
            monkeypatch.delenv(key)
    home = tmp_path / "home"
    monkeypatch.setenv("LLMEDIC_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    return home


@dataclass
class Fleet:
    """A running sandbox fleet and the llmedic.yaml that describes it."""

    config: Path
    urls: dict[str, str]
    knowledge: Path
    """The published copy of the drug-interactions dataset the fleet answers from."""
    gpu_scenario: Path
    """The fake-NVML scenario of the fleet's host (one GPU per instance); ``kern.log`` beside it."""

    def admin(self, name: str, action: str, body: dict[str, object] | None = None) -> dict[str, object]:
        resp = httpx.post(f"{self.urls[name]}/admin/{action}", json=body or {}, timeout=10)
        resp.raise_for_status()
        return resp.json()  # type: ignore[no-any-return]

    def state(self, name: str) -> dict[str, object]:
        return httpx.get(f"{self.urls[name]}/admin/state", timeout=10).json()  # type: ignore[no-any-return]

    def reset(self) -> None:
        for name in self.urls:
            self.admin(name, "reset")
        shipped = shipped_path().read_bytes()
        if self.knowledge.read_bytes() != shipped:
            self.knowledge.write_bytes(shipped)
        write_healthy_gpus(self.gpu_scenario, len(self.urls))
        for log in self.gpu_scenario.parent.parent.joinpath("logs").glob("*.log"):
            log.write_text("")


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """Three instances + one standby on free ports, with light background traffic."""
    base = tmp_path_factory.mktemp("fleet")
    config = base / "llmedic.yaml"
    stop = threading.Event()
    spec = FleetSpec(
        instances=3,
        standby=1,
        port=0,
        load_qps=4,
        knowledge=base / "published" / "knowledge.jsonl",
        gpu_scenario=base / "gpu" / "gpu.json",
        log_dir=base / "logs",
    )
    thread, urls = start_fleet(spec, config, stop, timeout=30)
    yield Fleet(config, urls, base / "published" / "knowledge.jsonl", base / "gpu" / "gpu.json")
    stop.set()
    thread.join(10)


@pytest.fixture
def sandbox(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> Fleet:
    """The fleet, reset to its start-up state, and LLMEDIC_CONFIG pointing at it."""
    fleet.reset()
    monkeypatch.setenv("LLMEDIC_CONFIG", str(fleet.config))
    return fleet


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One Prefect test server (SQLite) for the session; heartbeats off (they add ~1 s per flow);
    no telemetry (the harness passes the settings it runs under to its server process)."""
    from prefect.settings import (
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        PREFECT_SERVER_ANALYTICS_ENABLED,
        temporary_settings,
    )
    from prefect.testing.utilities import prefect_test_harness

    with (
        temporary_settings(updates={PREFECT_SERVER_ANALYTICS_ENABLED: False}),
        prefect_test_harness(server_startup_timeout=90),
        temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
    ):
        yield


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL server (Debian's binaries) on a free port; yields an admin URL."""
    import glob
    import shutil
    import subprocess
    import tempfile

    from llmedic_sandbox.fleet import free_port

    bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    bindir = bindirs[-1] if bindirs else str(Path(shutil.which("initdb") or "/nonexistent").parent)
    if not Path(bindir, "initdb").exists():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries missing in CI (make tools installs postgresql)")
        pytest.skip("PostgreSQL server binaries are not installed")
    root = Path(tempfile.mkdtemp(prefix="llmedic-pg-", dir="/tmp"))
    root.chmod(0o755)
    as_root = os.geteuid() == 0
    if as_root:
        shutil.chown(root, "postgres")

    def run(*cmd: str) -> None:
        full = ["runuser", "-u", "postgres", "--", *cmd] if as_root else list(cmd)
        subprocess.run(full, check=True, capture_output=True, timeout=120)

    port = free_port()
    run(f"{bindir}/initdb", "-D", f"{root}/data", "-U", "llmedic", "--auth=trust", "-E", "UTF8")
    run(
        f"{bindir}/pg_ctl",
        "-D",
        f"{root}/data",
        "-l",
        f"{root}/log",
        "-w",
        "start",
        "-o",
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1",
    )
    try:
        yield f"postgresql://llmedic@127.0.0.1:{port}"
    finally:
        run(f"{bindir}/pg_ctl", "-D", f"{root}/data", "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A fresh database on the session's PostgreSQL server."""
    import uuid

    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    return f"{postgres_server}/{name}"


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """A real OpenSSH server on 127.0.0.1 (key auth, generated keys) for the session."""
    with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


# --- the fault and security suite: what each fault test tried, and whether llmedic survived it ---

_FAULTS: list[tuple[str, str, str, str]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Remember the outcome of every test marked ``fault`` (its call phase, or a failed set-up)."""
    marker = getattr(report, "fault", None)
    if marker and (report.when == "call" or (report.when == "setup" and not report.passed)):
        tried, survives = marker
        _FAULTS.append((report.nodeid.split("::", 1)[1], tried, survives, report.outcome))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    marker = item.get_closest_marker("fault")
    if marker is not None:
        outcome.get_result().fault = (marker.kwargs["tried"], marker.kwargs["survives"])  # type: ignore[attr-defined]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the fault suite: what was tried, what must survive, and whether it did."""
    if not _FAULTS:
        return
    tr = terminalreporter
    tr.section("fault and security suite")
    grouped: dict[str, list[tuple[str, str, str]]] = {}
    for name, tried, survives, result in _FAULTS:  # parametrised cases as one line
        grouped.setdefault(name.split("[", 1)[0], []).append((tried, survives, result))
    for name, runs in grouped.items():
        ok = sum(r == "passed" for _, _, r in runs)
        verdict = "survived" if ok == len(runs) else "FAILED"
        cases = f" ({ok}/{len(runs)} cases)" if len(runs) > 1 else ""
        tried, survives, _ = runs[0]
        tr.write_line(f"[{verdict}] {name}{cases}\n    tried:   {tried}\n    survive: {survives}")
