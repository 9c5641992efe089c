"""Real Prometheus and Alertmanager as child processes, configured from the shipped files.

Used by ``llmedic demo`` (when both programs are installed) and the end-to-end tests. The shipped
rules are used as they are, except that windows and ``for:`` durations are shortened (``fast``) so
an alert fires within seconds instead of minutes.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import yaml

from llmedic.errors import OrchestrationError
from llmedic.orchestration import stop_process

__all__ = ["HistoryPrometheus", "MonitoringStack", "binaries", "fast_rules", "wait_ready"]


def binaries() -> tuple[str, str] | None:
    """Paths of ``prometheus`` and Alertmanager, or None when either is missing."""
    prom = shutil.which("prometheus")
    am = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    return (prom, am) if prom and am else None


def shipped(name: str) -> str:
    """Text of a file under ``deployments/``."""
    return resources.files("deployments").joinpath(name).read_text(encoding="utf-8")


def fast_rules(text: str, window: str = "15s", hold: str = "2s") -> str:
    """The shipped rules with short range windows and ``for:`` durations (demo and tests)."""
    text = re.sub(r"\[(\d+)m\]", f"[{window}]", text)
    return re.sub(r"for: \d+[smh]", f"for: {hold}", text)


def wait_ready(urls: list[str], procs: list[subprocess.Popen[bytes]], logs: Path, timeout: float) -> None:
    """Wait until every URL answers ``/-/ready`` (raises if a process exits or time runs out)."""
    deadline = time.monotonic() + timeout
    for url in urls:
        while True:
            if any(p.poll() is not None for p in procs):
                raise OrchestrationError(
                    "Prometheus or Alertmanager exited while starting", hint=f"see {logs}"
                )
            try:
                if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise OrchestrationError(
                    f"{url} did not become ready within {timeout:g}s", hint=f"see {logs}"
                )
            time.sleep(0.3)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (here, not from the sandbox: production never imports it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class HistoryPrometheus:
    """A Prometheus serving a backfilled data directory (the capacity review's history), optionally
    scraping ``targets`` as well; retention long enough to keep the backfilled month."""

    workdir: Path
    tsdb: Path
    targets: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Prometheus base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> None:
        """Start Prometheus and wait until it is ready."""
        found = binaries()
        if found is None:
            raise OrchestrationError(
                "prometheus is not installed", hint="apt-get install prometheus (make tools does it as root)"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        cfg: dict[str, Any] = {"global": {"scrape_interval": "15s"}}
        if self.targets:
            cfg["scrape_configs"] = [{"job_name": "vllm", "static_configs": [{"targets": self.targets}]}]
        path = self.workdir / "prometheus-history.yml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        cmd = [
            found[0],
            f"--config.file={path}",
            f"--storage.tsdb.path={self.tsdb}",
            "--storage.tsdb.retention.time=400d",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        fh = open(self.workdir / "prometheus-history.log", "ab")  # noqa: SIM115 - the child keeps it
        self.procs.append(subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True))
        try:
            wait_ready([self.url], self.procs, self.workdir, timeout)
        except OrchestrationError:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop it."""
        for proc in self.procs:
            stop_process(proc, timeout=10)
        self.procs.clear()


@dataclass
class MonitoringStack:
    """Prometheus scraping ``targets`` with llmedic's rules, Alertmanager posting to the receiver."""

    workdir: Path
    targets: list[str]
    receiver_url: str
    token_file: Path
    prometheus_port: int = field(default_factory=free_port)
    alertmanager_port: int = field(default_factory=free_port)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def prometheus_url(self) -> str:
        """Prometheus base URL."""
        return f"http://127.0.0.1:{self.prometheus_port}"

    @property
    def alertmanager_url(self) -> str:
        """Alertmanager base URL."""
        return f"http://127.0.0.1:{self.alertmanager_port}"

    def write_configs(self) -> tuple[Path, Path]:
        """prometheus.yml + rules and alertmanager.yml, from the shipped files."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        rules = self.workdir / "llmedic-rules.yml"
        rules.write_text(fast_rules(shipped("prometheus/llmedic-rules.yml")))
        prom = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "alerting": {
                "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{self.alertmanager_port}"]}]}]
            },
            "scrape_configs": [{"job_name": "vllm", "static_configs": [{"targets": self.targets}]}],
        }
        prom_path = self.workdir / "prometheus.yml"
        prom_path.write_text(yaml.safe_dump(prom, sort_keys=False))
        am = yaml.safe_load(shipped("alertmanager/alertmanager.yml"))
        am["route"].update({"group_wait": "1s", "group_interval": "2s", "repeat_interval": "1h"})
        for receiver in am["receivers"]:
            for hook in receiver.get("webhook_configs", []):
                hook["url"] = self.receiver_url
                hook["http_config"]["authorization"]["credentials_file"] = str(self.token_file)
        am_path = self.workdir / "alertmanager.yml"
        am_path.write_text(yaml.safe_dump(am, sort_keys=False))
        return prom_path, am_path

    def start(self, timeout: float = 60.0) -> None:
        """Start both and wait until they answer ``/-/ready``."""
        found = binaries()
        if found is None:
            raise OrchestrationError(
                "prometheus and prometheus-alertmanager are not installed",
                hint="apt-get install prometheus prometheus-alertmanager (make tools does it as root)",
            )
        prom_bin, am_bin = found
        prom_cfg, am_cfg = self.write_configs()
        logs = self.workdir
        am_cmd = [
            am_bin,
            f"--config.file={am_cfg}",
            f"--storage.path={self.workdir / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{self.alertmanager_port}",
            "--cluster.listen-address=",
        ]
        prom_cmd = [
            prom_bin,
            f"--config.file={prom_cfg}",
            f"--storage.tsdb.path={self.workdir / 'prom-data'}",
            f"--web.listen-address=127.0.0.1:{self.prometheus_port}",
        ]
        for cmd, log in ((am_cmd, "alertmanager.log"), (prom_cmd, "prometheus.log")):
            fh = open(logs / log, "ab")  # noqa: SIM115 - the child keeps it
            self.procs.append(
                subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
            )
        try:
            wait_ready([self.alertmanager_url, self.prometheus_url], self.procs, logs, timeout)
        except OrchestrationError:
            self.stop()
            raise

    def firing(self) -> list[dict[str, object]]:
        """Alerts Alertmanager holds right now."""
        return list(httpx.get(f"{self.alertmanager_url}/api/v2/alerts", timeout=5).json())

    def stop(self) -> None:
        """Stop both."""
        for proc in reversed(self.procs):
            stop_process(proc, timeout=10)
        self.procs.clear()
