"""``llmedic demo``: one latency incident, end to end, on the embedded defaults.

It starts a temporary Prefect server (SQLite under ``.llmedic/``), serves the deployments, starts the
alert receiver and a sandbox fleet with background traffic, and makes one instance slow. When
``prometheus`` and ``prometheus-alertmanager`` are installed, Prometheus (with the shipped rules)
fires and Alertmanager delivers to the receiver; otherwise the demo posts the same Alertmanager
payload to the receiver itself, and says which path it used. It approves the risky restart as user
``demo`` through the same API an operator uses, and prints what happened.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from prefect.client.schemas.objects import FlowRun
from prefect.settings import PREFECT_API_URL, temporary_settings
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llmedic.alerts import labels_fingerprint
from llmedic.approval import submit_decision
from llmedic.config import Settings, load_environment
from llmedic.errors import LlmedicError, OrchestrationError
from llmedic.incident import Incident
from llmedic.monitoring import HistoryPrometheus, MonitoringStack, binaries, free_port
from llmedic.orchestration import stop_process, wait_for_run
from llmedic.receiver.outbox import Outbox
from llmedic.stack import Stack
from llmedic.store.incidents import IncidentStore

__all__ = ["Demo", "alertmanager_payload"]

SLOW_INSTANCE = "sandbox-1"


def alertmanager_payload(instance_label: str, service: str, summary: str) -> dict[str, Any]:
    """An Alertmanager v4 webhook body as Alertmanager would send it for our latency rule."""
    labels = {
        "alertname": "VLLMHighP99Latency",
        "instance": instance_label,
        "service": service,
        "severity": "critical",
    }
    now = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return {
        "version": "4",
        "groupKey": '{}/{severity="critical"}:{alertname="VLLMHighP99Latency"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "llmedic",
        "groupLabels": {"alertname": "VLLMHighP99Latency"},
        "commonLabels": labels,
        "commonAnnotations": {"summary": summary},
        "externalURL": "http://127.0.0.1:9093",
        "notification_reason": "first notification",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": {"summary": summary, "runbook_url": "docs/flows/latency.md"},
                "startsAt": now,
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=vllm%3Ae2e_request_latency_seconds",
                "fingerprint": labels_fingerprint(labels),
            }
        ],
    }


@dataclass
class Demo:
    """The demo's processes and what it observed."""

    settings: Settings
    console: Console = field(default_factory=Console)
    timeout: float = 300.0
    keep: bool = False
    stack: Stack | None = None
    fleet: subprocess.Popen[bytes] | None = None
    marks: dict[str, float] = field(default_factory=dict)
    monitoring: MonitoringStack | None = None
    history: HistoryPrometheus | None = None
    token_file: Path = Path()
    receiver_port: int = 0
    path: str = ""

    @property
    def home(self) -> Path:
        """State directory."""
        return self.settings.home.resolve()

    def _mark(self, name: str) -> None:
        self.marks[name] = time.monotonic()

    def run(self) -> int:
        """Run the demo; return the exit status."""
        started = time.monotonic()
        try:
            incident = self._run()
        except LlmedicError as exc:
            self.console.print(f"[bold red]demo failed[/] \\[{exc.code}]: {escape(str(exc))}")
            self.console.print(f"logs: {self.home / 'logs'}")
            self.cleanup()
            return 1
        ok = self._print(incident, time.monotonic() - started)
        if ok:
            try:
                ok = self._reviews()
            except LlmedicError as exc:
                self.console.print(f"[bold red]the reviews failed[/] \\[{exc.code}]: {escape(str(exc))}")
                ok = False
        if self.keep and ok:
            self.console.print("\n[bold]--keep:[/] everything is still running; press Ctrl-C to stop.")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
        self.cleanup()
        return 0 if ok else 1

    def cleanup(self) -> None:
        """Stop every process the demo started: monitoring, the stack (receiver, runner, server),
        then the sandbox fleet."""
        if self.monitoring is not None:
            self.monitoring.stop()
            self.monitoring = None
        if self.history is not None:
            self.history.stop()
            self.history = None
        if self.stack is not None:
            self.stack.stop()
        if self.fleet is not None:
            stop_process(self.fleet, timeout=20)
            self.fleet = None

    def _run(self) -> Incident:
        c = self.console
        self.home.mkdir(parents=True, exist_ok=True)
        c.print(f"[bold]llmedic demo[/] — state in {self.home}")
        self.stack = Stack(
            self.settings,
            port=free_port(),
            receiver_port=free_port(),
            poll_seconds=1,
            external_api=False,
            own_receiver_token=True,
        )
        with c.status("starting a Prefect server (SQLite) ...") as status:
            self.stack.start_server()
            c.print(f"  Prefect API {self.stack.api_url}")
            self._mark("server")
            config = self._start_fleet(status)
            # The runner, the receiver and this process's flow runs all read the fleet's llmedic.yaml.
            self.stack.config_path = config
            os.environ["LLMEDIC_CONFIG"] = str(config)
            c.print(f"  sandbox fleet described in {config}")
            status.update("serving the deployments ...")
            self.stack.start_runner()
            status.update("starting the alert receiver ...")
            self.stack.start_receiver()
            assert self.stack.receiver_token_file is not None  # own_receiver_token
            self.token_file = self.stack.receiver_token_file
            self.receiver_port = self.stack.receiver_port
            self.stack.wait_receiver()
            c.print(
                f"  alert receiver http://127.0.0.1:{self.receiver_port} (bearer token in {self.token_file})"
            )
            with temporary_settings(updates={PREFECT_API_URL: self.stack.api_url}):
                return self._incident(config, status)

    def _start_fleet(self, status: Any) -> Path:
        """The sandbox fleet (3 instances + 1 standby, background traffic) in its own process; the
        llmedic.yaml it writes once it serves."""
        assert self.stack is not None
        config = self.home / "demo-llmedic.yaml"
        config.unlink(missing_ok=True)
        status.update("starting the sandbox fleet (3 instances + 1 standby, background traffic) ...")
        args = ["--instances", "3", "--standby", "1", "--port", "0", "--load-qps", "8"]
        fh = open(self.stack.logs / "sandbox.log", "ab")  # noqa: SIM115 - the child keeps it
        self.fleet = subprocess.Popen(
            [sys.executable, "-m", "llmedic", "sandbox", *args, "--write-config", str(config)],
            env=self.stack.environment(),
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while not config.exists():
            if time.monotonic() > deadline or self.fleet.poll() is not None:
                raise OrchestrationError(
                    "the sandbox fleet did not start", hint=f"see {self.stack.logs / 'sandbox.log'}"
                )
            time.sleep(0.2)
        return config

    def _incident(self, config: Path, status: Any) -> Incident:
        c = self.console
        env_file = load_environment(config)
        service = env_file.services[0]
        slow = next(i for i in service.instances if i.name == SLOW_INSTANCE)
        assert self.stack is not None
        self.stack.wait_deployments()
        c.print("  deployments served: llmedic-latency/default")
        status.update(f"injecting a latency fault on {slow.name} (+2.5 s per request) ...")
        httpx.post(
            f"{slow.base_url}/admin/faults", json={"kind": "slow", "delay_seconds": 2.5}, timeout=10
        ).raise_for_status()
        started = time.time()
        c.print(f"  fault injected on {slow.name}; its p99 now exceeds the 2 s SLO")
        receiver_url = f"http://127.0.0.1:{self.receiver_port}/alerts/alertmanager"
        self._mark("alert")
        if binaries() is not None:
            self.monitoring = MonitoringStack(
                self.home / "monitoring",
                [i.base_url.split("://", 1)[1] for i in service.instances],
                receiver_url,
                self.token_file,
            )
            self.monitoring.start()
            self.path = "Prometheus (shipped rules) → Alertmanager → receiver → Prefect"
            status.update("waiting for Prometheus to fire and Alertmanager to deliver ...")
        else:
            time.sleep(6)
            payload = alertmanager_payload(
                slow.base_url.split("://", 1)[1], service.name, f"p99 above 2s on {slow.name}"
            )
            resp = httpx.post(
                receiver_url, json=payload, headers={"Authorization": f"Bearer {self.token()}"}, timeout=10
            )
            if resp.status_code != 202:
                raise OrchestrationError(f"the receiver answered HTTP {resp.status_code}: {resp.text[:200]}")
            self.path = (
                "Alertmanager-format payload posted to the receiver (prometheus/alertmanager not installed)"
            )
        c.print(f"  alert path: {self.path}")
        run_id = self._wait_started(started)
        c.print(f"  alert received → flow run {run_id} (llmedic-latency/default)")

        def show(run: FlowRun) -> None:
            state = run.state.name if run.state else "?"
            inc = IncidentStore.from_settings(self.settings).find_by_run(str(run_id))
            last = inc.timeline[-1] if inc and inc.timeline else None
            step = f" — {last.step.value}: {last.summary[:90]}" if last else ""
            status.update(f"flow run {state}{step}")

        status.update("waiting for the flow to reach the approval gate ...")
        remaining = self.timeout - (time.monotonic() - self.marks["server"])
        run = wait_for_run(
            run_id,
            lambda r: bool(r.state and (r.state.is_paused() or r.state.is_final())),
            timeout=remaining,
            on_poll=show,
        )
        if run.state and run.state.is_final():
            raise OrchestrationError(
                f"the flow ended before asking for approval: {run.state.name}: {run.state.message}"
            )
        c.print(f"  flow run is {run.state.name if run.state else '?'}: waiting for approval of the restart")
        self._mark("gate")
        submit_decision(str(run_id), approve=True, by="demo", comment="approved by `llmedic demo`")
        c.print("  approved as user [bold]demo[/] (same call as `llmedic approve RUN_ID --by demo`)")
        remaining = self.timeout - (time.monotonic() - self.marks["server"])
        run = wait_for_run(
            run_id, lambda r: bool(r.state and r.state.is_final()), timeout=remaining, on_poll=show
        )
        self._mark("done")
        inc = IncidentStore.from_settings(self.settings).find_by_run(str(run_id))
        if inc is None:
            raise OrchestrationError(
                f"no incident record for run {run_id} (state {run.state.name if run.state else '?'})"
            )
        return inc

    def token(self) -> str:
        """The receiver's bearer token."""
        return self.token_file.read_text(encoding="utf-8").strip()

    def _wait_started(self, since: float, timeout: float = 150) -> str:
        outbox = Outbox.from_settings(self.settings)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for row in outbox.rows("started", limit=20):
                if row.received_at >= since and row.flow_run_id:
                    return row.flow_run_id
            time.sleep(0.5)
        raise OrchestrationError(
            f"no flow run started within {timeout:g}s of the fault",
            hint=f"see {self.home / 'logs/receiver.log'} and `llmedic alerts list`",
        )

    def _reviews(self) -> bool:
        """The scheduled prevention flows on the demo's fleet: the capacity review over a synthetic
        month backfilled into Prometheus, and the verification of fresh backups. Skipped (and said
        so) when Prometheus is not installed."""
        from urllib.parse import urlsplit

        import yaml
        from prefect.logging.handlers import APILogWorker
        from prefect.settings import PREFECT_API_URL, temporary_settings

        from flows.backup_verify import backup_verify
        from flows.capacity_review import capacity_review
        from llmedic.config import BackupArtifact
        from llmedic.reviews.backups import make_backup
        from llmedic_sandbox.history import HistorySpec, backfill, write_openmetrics
        from llmedic_sandbox.knowledge import golden_path

        c = self.console
        if binaries() is None:
            c.print("reviews skipped: the capacity review needs Prometheus (apt-get install prometheus)")
            return True
        config = Path(os.environ["LLMEDIC_CONFIG"])
        env = yaml.safe_load(config.read_text())
        svc = env["services"][0]
        netlocs = tuple(urlsplit(i["url"]).netloc for i in svc["instances"])
        work = self.home / "history"
        shutil.rmtree(work, ignore_errors=True)
        with c.status("capacity review: backfilling a synthetic month into Prometheus ..."):
            # Two weeks keep the demo brisk (promtool writes one block per two hours of history); the
            # scheduled review reads 30 days, as capacity.lookback_days says.
            spec = HistorySpec(
                instances=netlocs, end=time.time() // 1800 * 1800, days=14, step_seconds=1800, imbalance=1.6
            )
            write_openmetrics(spec, work / "history.om")
            backfill(work / "history.om", work / "tsdb")
            self.history = HistoryPrometheus(work, work / "tsdb", targets=list(netlocs))
            self.history.start()
        copies = self.home / "backups"
        backups = {
            "serving-config": BackupArtifact(kind="config", source=config, backups=copies / "serving-config"),
            "golden-set": BackupArtifact(kind="dataset", source=golden_path(), backups=copies / "golden-set"),
        }
        for art in backups.values():
            make_backup(art)
        env["metrics"] = {"kind": "prometheus", "url": self.history.url, "timeout_seconds": 30}
        env["capacity"] = {
            "lookback_days": 14,
            "services": {svc["name"]: {"max_qps_per_instance": 6, "latency_slo_seconds": 2.0}},
        }
        env["backups"] = {n: json.loads(a.model_dump_json()) for n, a in backups.items()}
        reviews_config = self.home / "demo-reviews.yaml"
        reviews_config.write_text(yaml.safe_dump(env, sort_keys=False))
        previous = os.environ["LLMEDIC_CONFIG"]
        os.environ["LLMEDIC_CONFIG"] = str(reviews_config)
        try:
            assert self.stack is not None
            with temporary_settings(updates={PREFECT_API_URL: self.stack.api_url}):
                cap = capacity_review(return_state=True)
                bak = backup_verify(return_state=True)
                # Send the runs' logs now: the server stops with the demo, and logs still queued
                # then would only produce "Error logging to API" at exit.
                APILogWorker.drain_all(timeout=10)
        finally:
            os.environ["LLMEDIC_CONFIG"] = previous
            self.history.stop()
        cap_data: Any = cap.result(raise_on_failure=False)
        bak_data: Any = bak.result(raise_on_failure=False)
        table = Table(title="scheduled reviews (run now)", show_header=False)
        table.add_column("field", style="bold")
        table.add_column("value")
        table.add_row("capacity review", cap.message or "")
        for name, actions in (cap_data.get("recommendations") or {}).items():
            table.add_row("  recommendations", f"{name}: {', '.join(actions) or 'none'}")
        table.add_row("  report", str(cap_data.get("report")))
        table.add_row("  review incidents", ", ".join(cap_data.get("incidents", {}).values()) or "none")
        table.add_row("backup verification", bak.message or "")
        table.add_row("  report", str(bak_data.get("report")))
        c.print(table)
        return bool(cap_data.get("report")) and not cap_data.get("errors") and bak.is_completed()

    def _print(self, inc: Incident, total: float) -> bool:
        c = self.console
        appr = inc.approvals[-1] if inc.approvals else None
        fix = next((a for a in inc.actions if a.name not in ("drain_instance", "undrain_instance")), None)
        table = Table(title="llmedic demo — summary", show_header=False)
        table.add_column("field", style="bold")
        table.add_column("value")
        ui = self.stack.server.ui_url if self.stack and self.stack.server else ""
        rows = [
            ("incident", inc.id),
            ("type", f"{inc.anomaly.value} ({inc.category.value}, team {inc.team.value})"),
            ("target", f"{inc.target} (service {inc.service})"),
            ("diagnosis", inc.diagnosis),
            ("fix", f"{fix.name}: {fix.result}" if fix else "—"),
            (
                "approval",
                f"{'approved' if appr.approved else 'rejected'} by {appr.by} at {appr.decided_at:%H:%M:%S} UTC"
                if appr
                else "—",
            ),
            ("verified", "yes" if inc.verification and inc.verification.passed else "no"),
            ("outcome", inc.outcome.value + (" (escalated)" if inc.escalated else "")),
            ("alert path", self.path),
            ("fault → gate", f"{self.marks['gate'] - self.marks['alert']:.1f}s"),
            ("approval → done", f"{self.marks['done'] - self.marks['gate']:.1f}s"),
            ("incident duration", f"{inc.duration_seconds or 0:.1f}s"),
            ("demo total", f"{total:.1f}s"),
            ("report", inc.report_path or "—"),
            ("Prefect UI", f"http://127.0.0.1:4200/runs/flow-run/{inc.flow_run_id} after `make up`"),
            ("", f"(the demo's own server, {ui}, stays up only with `llmedic demo --keep`)"),
        ]
        for k, v in rows:
            table.add_row(k, v)
        c.print(table)
        steps = Table(title="timeline")
        for col in ("step", "took", "status", "summary"):
            steps.add_column(col)
        for r in inc.timeline:
            steps.add_row(r.step.value, f"{r.seconds:.1f}s", r.status, r.summary[:100])
        c.print(steps)
        ok = (
            inc.outcome.value == "resolved"
            and appr is not None
            and appr.approved
            and appr.by == "demo"
            and bool(inc.report_path)
            and Path(inc.report_path or "").exists()
        )
        if ok:
            c.print(
                "[bold green]resolved[/]: latency incident confirmed, fixed after approval, verified and archived."
            )
        else:
            c.print(
                f"[bold red]the incident did not end as expected[/] (outcome {inc.outcome.value}); see {inc.report_path}"
            )
        return ok
