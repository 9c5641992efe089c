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
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
import yaml
from prefect.settings import PREFECT_API_URL, temporary_settings
from pydantic import BaseModel, ConfigDict, Field

from llmedic.alerts import labels_fingerprint
from llmedic.catalog import AnomalyType
from llmedic.config import Settings, load_environment
from llmedic.errors import ConfigError, LlmedicError, OrchestrationError
from llmedic.incident import Incident, IncidentStore, Outcome, Step, utcnow
from llmedic.monitoring import MonitoringStack, binaries
from llmedic.orchestration import PrefectServer, prefect_env, read_run, stop_process, stop_runner
from llmedic.playbook import load_playbook
from llmedic.receiver.server import ensure_token_file
from llmedic.sandbox.data_faults import DataFault
from llmedic.sandbox.faultproxy import FaultProxy
from llmedic.sandbox.pyenv import BAD_DEPLOY, BrokenEnv
from llmedic.yamlfile import load_model

__all__ = ["GameDay", "Scenario", "ScoreRow", "load_scenarios", "scorecard", "shipped_scenarios"]

SCENARIO_DIR = Path(__file__).resolve().parent / "sandbox" / "gameday"
APPROVER = "gameday"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class SandboxFault(_Strict):
    """A fault in one sandbox instance (``POST /admin/faults``)."""

    kind: Literal["sandbox"]
    instance: str
    fault: dict[str, Any]
    """The fault body, e.g. ``{kind: slow, delay_seconds: 2.5}`` or ``{kind: leak, bytes_per_request: 5e7}``."""


class GpuFault(_Strict):
    """A change to one fake GPU of the sandbox host, and optionally an XID in its kernel log."""

    kind: Literal["gpu"]
    device: int = Field(ge=0)
    set: dict[str, Any] = Field(default_factory=dict)
    """Fields of the fake-NVML device, e.g. ``{ecc_uncorrected: 2, last_xid: 48}``."""
    xid: int | None = None
    """Append ``NVRM: Xid … <xid>`` to the host's kernel log."""


class DatasetFault(_Strict):
    """A corrupted new version of a declared dataset (``llmedic.sandbox.data_faults``)."""

    kind: Literal["dataset"]
    dataset: str
    fault: DataFault
    column: str | None = None
    share: float = Field(0.1, gt=0, le=1)
    seed: int = 0


class ModelRelease(_Strict):
    """A new model version released to every instance in rotation, recorded in the registry."""

    kind: Literal["model_release"]
    service: str
    version: str
    config: dict[str, str | int | float | bool | None] = Field(default_factory=dict)
    """Its serving configuration (what the incident's configuration diff compares)."""
    fault: dict[str, Any] | None = None
    """How the new version misbehaves in the sandbox, e.g. ``{kind: wrong_answers, tags: [statin]}``."""


class DepsFault(_Strict):
    """A bad deploy into the service's virtual environment (``llmedic.sandbox.pyenv``), after which
    ``instance`` restarts into it."""

    kind: Literal["deps"]
    instance: str
    install: list[str] = Field(default_factory=lambda: [BAD_DEPLOY], min_length=1)
    """Pins installed off the lock (default: the release of ``vertical-utils`` that breaks ``vertical-core``)."""


class LinkFault(_Strict):
    """The sandbox's network link ``registry`` (a fault-injecting proxy in front of an endpoint the
    service depends on, with a backup endpoint) put into a failure mode."""

    kind: Literal["link"]
    link: Literal["registry"] = "registry"
    mode: Literal["drop", "stall", "reset", "slow", "flaky"]


Fault = Annotated[
    SandboxFault | GpuFault | DatasetFault | ModelRelease | DepsFault | LinkFault, Field(discriminator="kind")
]


class AlertSpec(_Strict):
    """The alert that should follow the fault."""

    labels: dict[str, str] = Field(min_length=1)
    """Alert labels; ``alertname`` and ``target`` (instance, service or dataset) at least."""
    summary: str = ""
    after_seconds: float = Field(3.0, ge=0, le=600)
    """Wait this long after the faults before alerting (the service needs traffic to show them)."""
    via: Literal["receiver", "prometheus"] = "receiver"
    """``receiver``: post the Alertmanager webhook body to the receiver; ``prometheus``: wait for the
    shipped rules to fire and Alertmanager to deliver (falls back to ``receiver`` when Prometheus or
    Alertmanager is not installed, and says so)."""


class Expect(_Strict):
    """One incident the scenario should produce, and how it should go."""

    anomaly: AnomalyType
    target: str
    outcome: Outcome
    diagnosis: str | None = None
    """Prefix the incident's diagnosis must start with."""
    fix: str | None = None
    """Name of the fix that must have been applied."""
    approve: bool = True
    """How the game day answers this incident's approval gates."""
    touches_nothing: bool = False
    """No action on the incident, none on any sandbox instance (controls)."""
    evidence: list[str] = Field(default_factory=list)
    """Evidence items that must be on the incident (e.g. a data hand-off)."""


class Scenario(_Strict):
    """One game-day scenario."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    description: str
    setup: list[Literal["accuracy_baseline"]] = Field(default_factory=list)
    """Preparation on the healthy fleet before any fault (``accuracy_baseline``: score the golden set
    and keep it as the baseline when there is none)."""
    inject: list[Fault] = Field(default_factory=list)
    """What to break; empty for a no-fault control."""
    alerts: list[AlertSpec] = Field(min_length=1)
    expect: list[Expect] = Field(min_length=1)
    overrides: dict[AnomalyType, dict[str, Any]] = Field(default_factory=dict)
    """Playbook overrides for the game day (e.g. shorter leak observation windows)."""
    timeout_seconds: float = Field(300, gt=0, le=3600)


@dataclass
class ScoreRow:
    """What happened to one expected incident."""

    scenario: str
    anomaly: str
    target: str
    confirmed: bool = False
    diagnosed: bool = False
    fixed: bool = False
    verified: bool = False
    outcome: str = "none"
    expected_outcome: str = ""
    seconds_to_recover: float | None = None
    flow_run_id: str = ""
    alert_path: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Everything the scenario expected happened."""
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {**self.__dict__, "passed": self.passed}


def scorecard(rows: list[ScoreRow]) -> str:
    """The scorecard as plain fixed-width text (readable in a terminal and in CI logs alike),
    each failed expectation's problems under the table."""
    head = (
        "scenario",
        "anomaly",
        "target",
        "confirmed",
        "diagnosed",
        "fixed",
        "verified",
        "outcome",
        "recover",
        "result",
    )
    body = [
        (
            r.scenario,
            r.anomaly,
            r.target,
            *("yes" if v else "-" for v in (r.confirmed, r.diagnosed, r.fixed, r.verified)),
            r.outcome,
            f"{r.seconds_to_recover:.0f} s" if r.seconds_to_recover is not None else "-",
            "pass" if r.passed else "FAIL",
        )
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=True)]
    lines = [
        "  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip()
        for line in (head, *body)
    ]
    for r in rows:
        lines.extend(f"{r.scenario} {r.anomaly} {r.target}: {p}" for p in r.problems)
    met = sum(r.passed for r in rows)
    lines.append(f"{met}/{len(rows)} expectations met over {len({r.scenario for r in rows})} scenario(s)")
    return "\n".join(lines)


def shipped_scenarios() -> list[Path]:
    """The scenario files that ship with llmedic."""
    return sorted(SCENARIO_DIR.glob("*.yaml"))


def load_scenarios(paths: list[Path] | None = None, names: list[str] | None = None) -> list[Scenario]:
    """Scenarios from files or directories (default: the shipped ones), filtered by name."""
    files: list[Path] = []
    for p in paths or [SCENARIO_DIR]:
        if p.is_dir():
            files.extend(sorted(p.glob("*.yaml")))
        elif p.exists():
            files.append(p)
        else:
            raise ConfigError(f"{p}: no such scenario file or directory")
    scenarios = [load_model(Scenario, f, error=ConfigError) for f in files]
    seen: set[str] = set()
    for s in scenarios:
        if s.name in seen:
            raise ConfigError(f"scenario name {s.name!r} is used twice", hint="names must be unique")
        seen.add(s.name)
    if names:
        unknown = sorted(set(names) - seen)
        if unknown:
            raise ConfigError(
                f"no scenario named {', '.join(unknown)}",
                hint=f"known: {', '.join(sorted(seen))} (`llmedic gameday --list`)",
            )
        scenarios = [s for s in scenarios if s.name in names]
    return scenarios


def alertmanager_body(spec: AlertSpec) -> dict[str, Any]:
    """An Alertmanager v4 webhook body carrying one firing alert with ``spec``'s labels."""
    now = utcnow().replace(microsecond=0).isoformat().replace("+00:00", "Z")
    labels = dict(spec.labels)
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{labels.get("alertname", "")}"}}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "llmedic",
        "groupLabels": {"alertname": labels.get("alertname", "")},
        "commonLabels": labels,
        "commonAnnotations": {"summary": spec.summary},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": {"summary": spec.summary or "game day"},
                "startsAt": now,
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": labels_fingerprint(labels),
            }
        ],
    }


@dataclass
class GameDay:
    """The stack a game day runs on, and the scenarios it ran."""

    settings: Settings
    scenarios: list[Scenario]
    log: Any = print
    server: PrefectServer | None = None
    children: list[Any] = field(default_factory=list)
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
        """Fleet, Prefect server, deployment runner and receiver; returns once all answer."""
        from llmedic.sandbox.fleet import FleetSpec, free_port, start_fleet

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

        self.server = PrefectServer(self.home, port=free_port(), log_path=logs / "prefect-server.log")
        self.server.start()
        self.log(f"Prefect API {self.server.api_url}")
        env = prefect_env(self.home, self.server.api_url, poll_seconds=1)
        env["LLMEDIC_CONFIG"] = str(self.config)
        env["LLMEDIC_PLAYBOOKS_DIR"] = str(self._playbooks())
        self.token_file = ensure_token_file(self.home / "receiver.token")
        env["LLMEDIC_RECEIVER_TOKEN_FILE"] = str(self.token_file)
        self._spawn([sys.executable, "-m", "flows"], env, logs / "runner.log")
        port = free_port()
        self._spawn(
            [sys.executable, "-m", "llmedic", "receiver", "--port", str(port)], env, logs / "receiver.log"
        )
        self.receiver_url = f"http://127.0.0.1:{port}"
        self._wait(
            lambda: httpx.get(f"{self.receiver_url}/healthz", timeout=1).status_code == 200, "receiver"
        )
        with temporary_settings(updates={PREFECT_API_URL: self.server.api_url}):
            from prefect.client.orchestration import get_client

            def served() -> bool:
                with get_client(sync_client=True) as client:
                    client.read_deployment_by_name("llmedic-latency/default")
                    return True

            self._wait(served, "the deployment runner", timeout=120)
        self.log("deployments served; receiver ready")

    def _kinds(self) -> set[str]:
        return {f.kind for s in self.scenarios for f in s.inject}

    def _extend_sandbox(self, base: Path) -> None:
        """What only some scenarios need: the service's virtual environment (``deps``) and a network
        link with a backup (``link``), declared in the fleet's llmedic.yaml."""
        env = yaml.safe_load(self.config.read_text())
        if "deps" in self._kinds():
            from llmedic.sandbox.pyenv import service_env

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

    def _spawn(self, args: list[str], env: dict[str, str], log: Path) -> None:
        import subprocess

        fh = log.open("ab")
        self.children.append(
            subprocess.Popen(args, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        )

    def _wait(self, ready: Any, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if ready():
                    return
            except Exception:
                pass
            if time.monotonic() > deadline:
                raise OrchestrationError(
                    f"{what} did not come up within {timeout:g}s", hint=f"see {self.home / 'logs'}"
                )
            time.sleep(0.3)

    def _playbooks(self) -> Path:
        """Shipped playbooks with every scenario's overrides applied (one merged file per type)."""
        out = self.home / "playbooks"
        out.mkdir(exist_ok=True)
        merged: dict[AnomalyType, dict[str, Any]] = {}
        for s in self.scenarios:
            for anomaly, override in s.overrides.items():
                if anomaly in merged and merged[anomaly] != override:
                    raise ConfigError(
                        f"scenario {s.name!r} overrides the {anomaly.value} playbook differently from another scenario",
                        hint="run them in separate game days, or give them the same overrides",
                    )
                merged[anomaly] = override
        for anomaly, override in merged.items():
            book = load_playbook(anomaly, Settings(home=self.home), override)
            (out / f"{anomaly.value}.yaml").write_text(
                yaml.safe_dump(book.model_dump(mode="json"), sort_keys=False)
            )
        return out

    def stop(self) -> None:
        """Stop everything the game day started."""
        for proc in reversed(self.children):
            if proc.args[-1] == "flows":
                stop_runner(proc)
            else:
                stop_process(proc, timeout=20)
        self.children.clear()
        if self.server is not None:
            self.server.stop()
            self.server = None
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
        from llmedic.sandbox.fleet import write_healthy_gpus

        for name in self.urls:
            self.admin(name, "reset")
        base = self.config.parent
        write_healthy_gpus(base / "gpu" / "gpu.json", len(self.urls))
        for log in (base / "logs").glob("*.log"):
            log.write_text("")
        if self.pyenv is not None:
            self.pyenv.install("-r", str(self.pyenv.lock))
            for name in self.urls:
                self.admin(name, "env", {"python": str(self.pyenv.python), "imports": ["vertical_core"]})
        if self.proxy is not None:
            from llmedic.network import set_active_url

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

    def inject(
        self, fault: SandboxFault | GpuFault | DatasetFault | ModelRelease | DepsFault | LinkFault
    ) -> None:
        """Apply one fault."""
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
            from llmedic.sandbox.data_faults import inject

            env = load_environment(self.config, self._settings())
            store = DataStore(self._settings().datasets_dir)
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
            from llmedic.models import ModelRegistry

            env = load_environment(self.config, self._settings())
            reg = ModelRegistry(self._settings().models_dir)
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
        store = IncidentStore(self._settings().incidents_dir)
        before = {i.id for i in store.all()}
        rows = [
            ScoreRow(scenario.name, e.anomaly.value, e.target, expected_outcome=e.outcome.value)
            for e in scenario.expect
        ]
        monitoring: MonitoringStack | None = None
        try:
            if "accuracy_baseline" in scenario.setup:
                self._baseline()
            injected_at = utcnow()
            for fault in scenario.inject:
                self.inject(fault)
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
            if monitoring is not None:
                monitoring.stop()
        self._score(scenario, rows, new, injected_at, paths)
        return rows

    def _follow(self, scenario: Scenario, store: IncidentStore, before: set[str]) -> list[Incident]:
        """Answer gates until every new incident is closed (or the scenario times out)."""
        from llmedic.approvals import submit_decision

        assert self.server is not None
        decisions = {(e.anomaly, e.target): e.approve for e in scenario.expect}
        answered: set[str] = set()
        deadline = time.monotonic() + scenario.timeout_seconds
        with temporary_settings(updates={PREFECT_API_URL: self.server.api_url}):
            while True:
                new = [i for i in store.all() if i.id not in before]
                for inc in new:
                    if (
                        inc.pending_approval
                        and inc.flow_run_id not in answered
                        and inc.outcome == Outcome.OPEN
                    ):
                        state = read_run(inc.flow_run_id).state
                        if state is not None and state.is_paused():
                            approve = decisions.get((inc.anomaly, inc.target), False)
                            submit_decision(
                                inc.flow_run_id,
                                approve=approve,
                                by=APPROVER,
                                comment=f"game day {scenario.name}",
                            )
                            answered.add(inc.flow_run_id)
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

    def _score(
        self, scenario: Scenario, rows: list[ScoreRow], new: list[Incident], injected: Any, paths: list[str]
    ) -> None:
        unmatched = list(new)
        for exp, row in zip(scenario.expect, rows, strict=True):
            row.alert_path = "; ".join(sorted(set(paths)))
            inc = next(
                (i for i in unmatched if i.anomaly == exp.anomaly and exp.target in (i.target, i.service)),
                None,
            )
            if inc is None:
                row.problems.append(f"no {exp.anomaly.value} incident on {exp.target}")
                continue
            unmatched.remove(inc)
            row.flow_run_id = inc.flow_run_id
            row.outcome = inc.outcome.value
            row.confirmed = inc.outcome not in (Outcome.FALSE_POSITIVE, Outcome.OPEN)
            row.diagnosed = bool(exp.diagnosis and inc.diagnosis.startswith(exp.diagnosis))
            applied = [a.name for a in inc.actions if a.applied]
            chosen = [d.choice for d in inc.decisions if d.topic == "fix"]
            fix_ran = any(r.step == Step.FIX and r.status == "ok" for r in inc.timeline)
            row.fixed = bool(exp.fix and exp.fix in chosen and fix_ran)
            row.verified = bool(inc.verification and inc.verification.passed)
            if inc.outcome == Outcome.RESOLVED and inc.closed_at is not None:
                row.seconds_to_recover = round((inc.closed_at - injected).total_seconds(), 1)
            if inc.outcome != exp.outcome:
                row.problems.append(
                    f"outcome {inc.outcome.value}, expected {exp.outcome.value}"
                    + (f" ({inc.escalation_reason})" if inc.escalation_reason else "")
                )
            if exp.diagnosis and not row.diagnosed:
                row.problems.append(f"diagnosis {inc.diagnosis!r}, expected {exp.diagnosis!r}…")
            if exp.fix and not row.fixed:
                row.problems.append(
                    f"fix {exp.fix} not applied (chosen: {chosen or 'none'}; actions applied: {applied or 'none'})"
                )
            if exp.outcome == Outcome.RESOLVED and not row.verified:
                row.problems.append("not verified")
            missing = sorted(set(exp.evidence) - {e.name for e in inc.evidence})
            if missing:
                row.problems.append(f"evidence missing: {', '.join(missing)}")
            if exp.touches_nothing:
                touched = {
                    n: [
                        a["action"] for a in self._state(n)["actions"] if a["action"] not in ("inject", "env")
                    ]
                    for n in self.urls
                }
                touched = {n: a for n, a in touched.items() if a}
                if inc.actions or touched:
                    row.problems.append(f"touched: incident actions {applied}, instances {touched}")
        for extra in unmatched:
            rows[0].problems.append(
                f"unexpected {extra.anomaly.value} incident on {extra.target} ({extra.outcome.value})"
            )

    def _state(self, instance: str) -> dict[str, Any]:
        resp = httpx.get(
            f"{self.urls[instance]}/admin/state",
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=10,
        )
        return resp.json()  # type: ignore[no-any-return]

    def run(self) -> list[ScoreRow]:
        """Start the stack, run every scenario, stop; the scorecard rows."""
        try:
            self.start()
            for scenario in self.scenarios:
                self.rows.extend(self.run_scenario(scenario))
        finally:
            self.stop()
        return self.rows
