"""Game days: inject a fault, let the alert arrive, and score what llmedic did about it.

A scenario file (YAML) says what to break in the sandbox (or in a dataset, or the model registry),
which alert should follow, and what a good response looks like: the anomaly type, the diagnosis, the
fix, the outcome. :class:`GameDay` starts the whole stack once — a Prefect server, the deployment
runner, the alert receiver (its own process, bearer auth), a sandbox fleet with traffic and fake
GPUs — and runs each scenario through it: the alert is posted to the receiver as Alertmanager would
post it (or, with ``via: prometheus`` and the binaries installed, real Prometheus fires it and
Alertmanager delivers it), gates are decided as the scenario says, and a scorecard row records
confirmed / diagnosed / fixed / verified and the time to recover.

No-fault controls must end ``false_positive`` and touch nothing; compound scenarios inject several
faults and expect several incidents (or a hand-off).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from prefect.settings import PREFECT_API_URL, temporary_settings

from llmedic.config import LimitsConfig, Settings, load_environment
from llmedic.errors import ConfigError, LlmedicError, OrchestrationError
from llmedic.incident import Incident, Outcome, utcnow
from llmedic.limits import BlastRadius
from llmedic.monitoring import MonitoringStack, binaries, free_port
from llmedic.orchestration import read_run
from llmedic.playbook import load_playbook
from llmedic.stack import Stack
from llmedic.store.db import Store
from llmedic.store.incidents import IncidentStore
from llmedic_sandbox.faultproxy import FaultProxy
from llmedic_sandbox.gameday.scenario import (
    APPROVER,
    AlertSpec,
    DatasetFault,
    DepsFault,
    GpuFault,
    LinkFault,
    SandboxFault,
    Scenario,
    alertmanager_body,
)
from llmedic_sandbox.gameday.score import ScoreRow, score
from llmedic_sandbox.gameday.timed import AnyFault, DelayedFaults, gate_key
from llmedic_sandbox.pyenv import BrokenEnv

__all__ = ["GameDay", "refuse_invisible"]


def refuse_invisible(scenario: str, fault: DatasetFault, frame: Any) -> None:
    """A data fault must change what a consumer reads: the faulted version must differ from the
    one it is made from (mojibake on ASCII-only text, say, changes nothing). Raises
    :class:`ConfigError` naming the scenario, the fault and why, instead of letting a fault that
    changes nothing pass as a false positive."""
    from llmedic_sandbox.data_faults import corrupt

    bad = corrupt(frame, fault.fault, fault.column, fault.share, fault.seed)
    if bad.shape == frame.shape and bad.astype(str).equals(frame.astype(str)):
        where = f" on column {fault.column!r}" if fault.column else ""
        raise ConfigError(
            f"scenario {scenario!r}: fault {fault.fault!r}{where} of dataset {fault.dataset!r} changes "
            f"nothing (the faulted version is identical to the current one, {len(frame)} rows), so no "
            "user could see it and any alert would be a false positive",
            hint="pick a fault and a column it visibly breaks (mojibake needs non-ASCII text), "
            "or a larger share",
        )


@dataclass
class GameDay:
    """The stack a game day runs on, and the scenarios it ran."""

    settings: Settings
    scenarios: list[Scenario]
    log: Any = print
    stack: Stack | None = None
    fleet_stop: threading.Event = field(default_factory=threading.Event)
    fleet_thread: threading.Thread | None = None
    urls: dict[str, str] = field(default_factory=dict)
    config: Path = Path()
    token_file: Path = Path()
    receiver_url: str = ""
    rows: list[ScoreRow] = field(default_factory=list)
    pyenv: BrokenEnv | None = None
    proxy: FaultProxy | None = None
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    """The sandbox admin API's bearer token: a secret in llmedic.yaml, as a real fleet's would be."""

    @property
    def home(self) -> Path:
        """State directory of the game day."""
        return self.settings.home.resolve()

    # -- the stack -----------------------------------------------------------------------------

    def start(self) -> None:
        """The sandbox fleet, then the stack (Prefect server, deployment runner, receiver) with the
        fleet's llmedic.yaml and the scenarios' playbooks; returns once all answer."""
        from llmedic_sandbox.fleet import FleetSpec, start_fleet

        self.home.mkdir(parents=True, exist_ok=True)
        logs = self.home / "logs"
        logs.mkdir(exist_ok=True)
        base = self.home / "sandbox"
        self.config = base / "llmedic.yaml"
        spec = FleetSpec(
            instances=3,
            standby=1,
            port=0,
            load_qps=4,
            knowledge=base / "published" / "knowledge.jsonl",
            lab_results=base / "published" / "lab_results.csv",
            gpu_scenario=base / "gpu" / "gpu.json",
            log_dir=base / "logs",
            admin_token=self.admin_token,
        )
        self.fleet_thread, self.urls = start_fleet(spec, self.config, self.fleet_stop)
        self.log(f"sandbox fleet: {', '.join(self.urls)} ({self.config})")
        self._extend_sandbox(base)

        self.stack = Stack(
            Settings(home=self.home),
            port=free_port(),
            receiver_port=free_port(),
            config_path=self.config,
            poll_seconds=1,
            external_api=False,
            own_receiver_token=True,
            child_env={"LLMEDIC_PLAYBOOKS_DIR": str(self._playbooks())},
        )
        self.stack.start_server()
        self.log(f"Prefect API {self.stack.api_url}")
        self.stack.start_runner()
        self.stack.start_receiver()
        assert self.stack.receiver_token_file is not None  # own_receiver_token
        self.token_file = self.stack.receiver_token_file
        self.receiver_url = self.stack.receiver_url
        self.stack.wait_receiver()
        self.stack.wait_deployments(timeout=120)
        self.log("deployments served; receiver ready")

    def _kinds(self) -> set[str]:
        return {f.kind for s in self.scenarios for f in s.inject}

    def _extend_sandbox(self, base: Path) -> None:
        """What only some scenarios need: the service's virtual environment (``deps``) and a network
        link with a backup (``link``), declared in the fleet's llmedic.yaml."""
        env = yaml.safe_load(self.config.read_text())
        if "deps" in self._kinds():
            from llmedic_sandbox.pyenv import service_env

            self.pyenv = service_env(base / "pyenv")
            env["services"][0].update(
                {
                    "python": str(self.pyenv.python),
                    "lock_file": str(self.pyenv.lock),
                    "wheelhouse": str(self.pyenv.wheelhouse),
                    "imports": ["vertical_core"],
                }
            )
            self.log(f"service environment: {self.pyenv.python} (lock {self.pyenv.lock})")
        if "link" in self._kinds():
            from urllib.parse import urlsplit

            far = urlsplit(self.urls["sandbox-3"])
            self.proxy = FaultProxy((far.hostname or "127.0.0.1", far.port or 80))
            env.setdefault("network", {})["links"] = {
                "registry": {
                    "url": f"{self.proxy.url}/health",
                    "backup_url": f"{self.urls['sandbox-3']}/health",
                    "consumers": [env["services"][0]["name"]],
                }
            }
            self.log(f"network link registry: {self.proxy.url} (backup {self.urls['sandbox-3']})")
        tmp = self.config.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(env, sort_keys=False))
        tmp.replace(self.config)

    def _playbooks(self, scenario: Scenario | None = None) -> Path:
        """The playbook directory the runs read: the shipped playbooks with ``scenario``'s overrides
        only. It is rewritten before each scenario (a run reads its playbook when it starts, and a
        scenario's runs end before the next scenario begins), so scenarios that override a playbook
        differently run in one game day; without a scenario, every override is checked to load."""
        out = self.home / "playbooks"
        out.mkdir(exist_ok=True)
        for old in out.glob("*.yaml"):
            old.unlink()
        for s in [scenario] if scenario else self.scenarios:
            for anomaly, override in s.overrides.items():
                book = load_playbook(anomaly, Settings(home=self.home), override)
                if scenario:
                    (out / f"{anomaly.value}.yaml").write_text(
                        yaml.safe_dump(book.model_dump(mode="json"), sort_keys=False)
                    )
        return out

    def stop(self) -> None:
        """Stop everything the game day started."""
        if self.stack is not None:
            self.stack.stop()
            self.stack = None
        if self.proxy is not None:
            self.proxy.close()
            self.proxy = None
        self.fleet_stop.set()
        if self.fleet_thread is not None:
            self.fleet_thread.join(10)

    # -- one scenario --------------------------------------------------------------------------

    def admin(self, instance: str, action: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """Call a sandbox instance's admin API."""
        if instance not in self.urls:
            raise ConfigError(f"no sandbox instance {instance!r}", hint=f"known: {', '.join(self.urls)}")
        resp = httpx.post(
            f"{self.urls[instance]}/admin/{action}",
            json=body or {},
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=10,
        )
        resp.raise_for_status()
        return resp.json()  # type: ignore[no-any-return]

    def reset(self) -> None:
        """The fleet back to healthy: faults cleared, GPUs healthy, logs empty, knowledge as shipped."""
        from llmedic_sandbox.fleet import write_healthy_gpus

        for name in self.urls:
            self.admin(name, "reset")
        base = self.config.parent
        write_healthy_gpus(base / "gpu" / "gpu.json", len(self.urls))
        for log in (base / "logs").glob("*.log"):
            log.write_text("")
        # Scenarios are independent experiments: one scenario's drains and restarts must not count
        # against the next one's blast-radius limit (limits.window_minutes spans several scenarios).
        BlastRadius(Store.from_settings(self._settings()), LimitsConfig()).forget()
        if self.pyenv is not None:
            self.pyenv.install("-r", str(self.pyenv.lock))
            for name in self.urls:
                self.admin(name, "env", {"python": str(self.pyenv.python), "imports": ["vertical_core"]})
        if self.proxy is not None:
            from llmedic.anomalies.network.active import set_active_url

            self.proxy.mode = "pass"
            set_active_url(self.home, "registry", f"{self.proxy.url}/health", by=APPROVER)
        # Datasets back to their first version, so one scenario's repair is not the next one's start.
        from llmedic.adapters.datastore import DataStore

        env = load_environment(self.config, self._settings())
        store = DataStore(self._settings().datasets_dir)
        for name, cfg in env.datasets.items():
            store.ensure_seeded(name, cfg)
            first, cur = store.versions(name)[0], store.current(name)
            if cur is not None and cur.id != first.id:
                store.set_current(name, first.id, cfg, by=APPROVER, why="game day: reset between scenarios")

    def inject(self, fault: AnyFault, scenario_name: str = "") -> None:
        """Apply one fault (a data fault that changes nothing is refused: :func:`refuse_invisible`)."""
        if isinstance(fault, SandboxFault):
            self.admin(fault.instance, "faults", fault.fault)
        elif isinstance(fault, GpuFault):
            scenario = self.config.parent / "gpu" / "gpu.json"
            data = json.loads(scenario.read_text())
            if fault.device >= len(data["devices"]):
                raise ConfigError(
                    f"the sandbox has {len(data['devices'])} GPUs; there is no GPU {fault.device}"
                )
            data["devices"][fault.device].update(fault.set)
            scenario.write_text(json.dumps(data))
            if fault.xid is not None:
                with scenario.with_name("kern.log").open("a") as fh:
                    fh.write(
                        f"[ 4711.2] NVRM: Xid (PCI:0000:{0x10 + fault.device:02X}:00): {fault.xid}, "
                        "pid=2345, injected by the game day\n"
                    )
        elif isinstance(fault, DatasetFault):
            from llmedic.adapters.datastore import DataStore
            from llmedic_sandbox.data_faults import inject

            env = load_environment(self.config, self._settings())
            store = DataStore(self._settings().datasets_dir)
            store.ensure_seeded(fault.dataset, env.dataset(fault.dataset))
            refuse_invisible(scenario_name, fault, store.read(fault.dataset, env.dataset(fault.dataset))[1])
            inject(
                store,
                fault.dataset,
                env.dataset(fault.dataset),
                fault.fault,
                column=fault.column,
                share=fault.share,
                seed=fault.seed,
                by=APPROVER,
            )
        elif isinstance(fault, DepsFault):
            if self.pyenv is None:  # pragma: no cover - built at start when a scenario has deps
                raise ConfigError("no service environment in this game day")
            self.pyenv.install(*fault.install)
            self.admin(fault.instance, "restart")
        elif isinstance(fault, LinkFault):
            if self.proxy is None:  # pragma: no cover - built at start when a scenario has link
                raise ConfigError("no network link in this game day")
            self.proxy.mode = fault.mode
        else:
            from llmedic.registry import ModelRegistry

            env = load_environment(self.config, self._settings())
            reg = ModelRegistry.from_settings(self._settings())
            reg.ensure_seeded(fault.service, env.service(fault.service).model)
            reg.record_release(
                fault.service, fault.version, config=fault.config, by=APPROVER, note="game day"
            )
            for inst in env.service(fault.service).instances:
                if fault.fault:
                    self.admin(inst.name, "faults", {**fault.fault, "model_version": fault.version})
                self.admin(inst.name, "model", {"version": fault.version})

    def _settings(self) -> Settings:
        return Settings(home=self.home, config=self.config)

    def _baseline(self) -> None:
        from llmedic.evaluation import Evaluation
        from llmedic.playbook import AccuracySettings

        env = load_environment(self.config, self._settings())
        for svc in env.services:
            ev = Evaluation(env, self._settings(), svc.name, AccuracySettings())
            cur = ev.registry.current(svc.name)
            name, _ = ev.golden
            if cur is not None and ev.registry.baseline(svc.name, cur.version, name) is not None:
                continue
            card = ev.score()
            ev.record_baseline(card, by=APPROVER, note="game day: healthy fleet")
            self.log(f"  baseline for {svc.name}: {card.accuracy:.0%} on {name}")

    def _post(self, spec: AlertSpec) -> None:
        token = self.token_file.read_text().strip()
        resp = httpx.post(
            f"{self.receiver_url}/alerts/alertmanager",
            json=alertmanager_body(spec),
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        if resp.status_code != 202:
            raise OrchestrationError(f"the receiver answered HTTP {resp.status_code}: {resp.text[:200]}")

    def run_scenario(self, scenario: Scenario) -> list[ScoreRow]:
        """Inject, alert, decide gates, score. Never raises for a scenario that goes wrong: the
        scorecard says what went wrong."""
        self.log(f"\n== {scenario.name}: {scenario.description}")
        self.reset()
        self._playbooks(scenario)
        store = IncidentStore.from_settings(self._settings())
        before = {i.id for i in store.all()}
        rows = [
            ScoreRow(scenario.name, e.anomaly.value, e.target, expected_outcome=e.outcome.value)
            for e in scenario.expect
        ]
        monitoring: MonitoringStack | None = None
        delayed = DelayedFaults(lambda f: self.inject(f, scenario.name), self.log)
        try:
            if "accuracy_baseline" in scenario.setup:
                self._baseline()
            injected_at, started = utcnow(), time.monotonic()
            for fault in scenario.inject:
                if fault.after_seconds > 0:
                    delayed.schedule(fault, started)
                    continue
                self.inject(fault, scenario.name)
                self.log(f"  injected {fault.kind}: {fault.model_dump(exclude={'kind'}, exclude_none=True)}")
            paths = []
            for spec in scenario.alerts:
                time.sleep(spec.after_seconds)
                if spec.via == "prometheus" and binaries() is not None:
                    if monitoring is None:
                        targets = [u.split("://", 1)[1] for n, u in self.urls.items()]
                        monitoring = MonitoringStack(
                            self.home / "monitoring",
                            targets,
                            f"{self.receiver_url}/alerts/alertmanager",
                            self.token_file,
                        )
                        monitoring.start()
                    paths.append("prometheus → alertmanager → receiver")
                else:
                    self._post(spec)
                    paths.append(
                        "alertmanager payload → receiver"
                        + (" (prometheus/alertmanager not installed)" if spec.via == "prometheus" else "")
                    )
                self.log(f"  alert {spec.labels.get('alertname', '?')} via {paths[-1]}")
            new = self._follow(scenario, store, before)
        except LlmedicError as exc:
            for row in rows:
                row.problems.append(f"game day error [{exc.code}]: {exc}")
            return rows
        finally:
            late = delayed.stop()  # before scoring, and on an early return too
            for row in rows:
                row.problems.extend(late)
            if monitoring is not None:
                monitoring.stop()
        score(scenario, rows, new, injected_at, paths, self._instance_actions)
        return rows

    def _follow(self, scenario: Scenario, store: IncidentStore, before: set[str]) -> list[Incident]:
        """Answer gates until every new incident is closed (or the scenario times out)."""
        from llmedic.approval import submit_decision

        assert self.stack is not None
        decisions = {(e.anomaly, e.target): e.approve for e in scenario.expect}
        answered: set[tuple[str, str]] = set()
        deadline = time.monotonic() + scenario.timeout_seconds
        with temporary_settings(updates={PREFECT_API_URL: self.stack.api_url}):
            while True:
                new = [i for i in store.all() if i.id not in before]
                for inc in new:
                    gate = gate_key(inc)
                    if gate is not None and gate not in answered and inc.pending_approval:
                        state = read_run(inc.flow_run_id).state
                        if state is not None and state.is_paused():
                            approve = decisions.get((inc.anomaly, inc.target), False)
                            submit_decision(
                                inc.flow_run_id,
                                approve=approve,
                                by=APPROVER,
                                comment=f"game day {scenario.name}",
                            )
                            answered.add(gate)
                            self.log(
                                f"  {'approved' if approve else 'rejected'} {inc.pending_approval['action']} ({inc.id})"
                            )
                expected = len(scenario.expect)
                if len(new) >= expected and all(i.outcome != Outcome.OPEN for i in new):
                    time.sleep(1)  # a hand-off incident may still be opening
                    again = [i for i in store.all() if i.id not in before]
                    if len(again) == len(new):
                        return new
                if time.monotonic() > deadline:
                    return new
                time.sleep(0.5)

    def _instance_actions(self) -> dict[str, list[str]]:
        """Each instance's actions since the last reset (``/admin/state``), injections left out."""
        found: dict[str, list[str]] = {}
        for name, url in self.urls.items():
            resp = httpx.get(
                f"{url}/admin/state", headers={"Authorization": f"Bearer {self.admin_token}"}, timeout=10
            )
            state: dict[str, Any] = resp.json()
            found[name] = [a["action"] for a in state["actions"] if a["action"] not in ("inject", "env")]
        return found

    def run(self) -> list[ScoreRow]:
        """Start the stack, run every scenario, stop; the scorecard rows."""
        try:
            self.start()
            for scenario in self.scenarios:
                self.rows.extend(self.run_scenario(scenario))
        finally:
            self.stop()
        return self.rows
