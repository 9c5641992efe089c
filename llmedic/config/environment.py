"""The environment file ``llmedic.yaml``: *what* llmedic looks after, and how it is loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AnyHttpUrl, Field, model_validator

from llmedic.config._base import Name, _Strict
from llmedic.config.datasets import DatasetConfig, GoldenSetConfig
from llmedic.config.limits import LimitsConfig
from llmedic.config.network import NetworkConfig
from llmedic.config.reviews import BackupArtifact, CapacityConfig, ScheduleConfig
from llmedic.config.routing import AlertRule, NotifyConfig, ReceiverConfig, SmtpConfig, TeamRoute
from llmedic.config.services import CommandTemplate, HostConfig, InstanceConfig, MetricsConfig, ServiceConfig
from llmedic.config.settings import Settings
from llmedic.errors import ConfigError
from llmedic.yamlfile import load_model

__all__ = ["EnvironmentFile", "load_environment"]


class EnvironmentFile(_Strict):
    """The content of ``llmedic.yaml``."""

    services: list[ServiceConfig] = Field(default_factory=list)
    metrics: MetricsConfig = MetricsConfig()
    hosts: list[HostConfig] = Field(default_factory=lambda: [HostConfig(name="local")])
    commands: dict[Name, CommandTemplate] = Field(default_factory=dict)
    datasets: dict[Name, DatasetConfig] = Field(default_factory=dict)
    golden_sets: dict[Name, GoldenSetConfig] = Field(default_factory=dict)
    teams: dict[Literal["data", "algorithm", "ops", "escalation"], TeamRoute] = Field(default_factory=dict)
    """Where each team is told (by category: data, algorithm, ops); ``escalation`` also gets every
    escalation (approval timeouts, failed verifications, errors)."""
    smtp: SmtpConfig | None = None
    notify: NotifyConfig = NotifyConfig()
    """Retries and time bounds of every notification."""
    alert_rules: list[AlertRule] = Field(default_factory=list)
    receiver: ReceiverConfig = ReceiverConfig()
    schedules: ScheduleConfig = ScheduleConfig()
    capacity: CapacityConfig = CapacityConfig()
    backups: dict[Name, BackupArtifact] = Field(default_factory=dict)
    network: NetworkConfig = NetworkConfig()
    limits: LimitsConfig = LimitsConfig()
    """The blast-radius limit on drains, restarts and resets, over every concurrent incident."""
    prefect_ui_url: AnyHttpUrl | None = None
    """Base URL of the Prefect UI, used for links in notifications and reports."""
    approvers: dict[Name, TeamRoute] = Field(default_factory=dict)
    """Each approver's own route (name → ``webhook_url`` / ``email``), where the one-time approval
    code of a gate is sent. An approver without one gets no code (never the team's channel, where
    others would read it) and decides with the CLI and their token."""

    @model_validator(mode="after")
    def _references_resolve(self) -> EnvironmentFile:
        hosts = {h.name for h in self.hosts}
        if len(hosts) != len(self.hosts):
            raise ValueError("host names must be unique")
        names = [s.name for s in self.services]
        if len(set(names)) != len(names):
            raise ValueError("service names must be unique")
        for svc in self.services:
            for inst in [*svc.instances, *svc.standby]:
                if inst.host not in hosts:
                    raise ValueError(
                        f"service {svc.name!r} instance {inst.name!r} names host {inst.host!r}, "
                        f"which is not under hosts: (known: {sorted(hosts)})"
                    )
            if svc.logs is not None and svc.logs not in self.commands:
                raise ValueError(
                    f"service {svc.name!r} names logs command {svc.logs!r}, which is not under commands: "
                    f"(known: {sorted(self.commands)})"
                )
            for action, tmpl in svc.control.commands.items():
                if tmpl not in self.commands:
                    raise ValueError(
                        f"service {svc.name!r} maps {action!r} to command {tmpl!r}, "
                        f"which is not under commands: (known: {sorted(self.commands)})"
                    )
            if svc.control.kind == "commands" and not svc.control.commands:
                raise ValueError(f"service {svc.name!r}: control kind 'commands' needs commands:")
        for h in self.hosts:
            for what, ref in (
                ("kernel_log", h.kernel_log),
                ("gpu_snapshot", h.gpu_snapshot),
                ("host_check", h.host_check),
            ):
                if ref is not None and ref not in self.commands:
                    raise ValueError(
                        f"host {h.name!r} names {what} command {ref!r}, which is not under commands: "
                        f"(known: {sorted(self.commands)})"
                    )
        for name, link in self.network.links.items():
            unknown_hosts = [h for h in link.probe_from if h not in hosts]
            if unknown_hosts:
                raise ValueError(f"network link {name!r} probes from unknown hosts {unknown_hosts}")
            if link.probe_from and "net_probe" not in self.commands:
                raise ValueError(f"network link {name!r} has probe_from but there is no net_probe command")
        for name, ds in self.datasets.items():
            unknown_consumers = [c for c in ds.consumers if c not in names]
            if unknown_consumers:
                raise ValueError(f"dataset {name!r} names unknown consumers {unknown_consumers}")
        for name, gs in self.golden_sets.items():
            if gs.service not in names:
                raise ValueError(f"golden set {name!r} names unknown service {gs.service!r}")
        return self

    def service(self, name: str) -> ServiceConfig:
        """The service called ``name``."""
        for svc in self.services:
            if svc.name == name:
                return svc
        raise ConfigError(
            f"no service named {name!r} in the environment file",
            hint=f"known services: {[s.name for s in self.services]}",
        )

    def golden_for(self, service: str) -> tuple[str, GoldenSetConfig]:
        """(name, declaration) of the golden set scored against ``service``."""
        for name, gs in sorted(self.golden_sets.items()):
            if gs.service == service:
                return name, gs
        raise ConfigError(
            f"service {service!r} has no golden set",
            hint="declare one under golden_sets: in llmedic.yaml (path: JSONL, service: "
            f"{service}); see docs/flows/accuracy_drop.md",
        )

    def datasets_of(self, service: str) -> list[str]:
        """The declared datasets ``service`` consumes (``datasets[].consumers``)."""
        return sorted(n for n, ds in self.datasets.items() if service in ds.consumers)

    def host(self, name: str) -> HostConfig:
        """The host called ``name``."""
        for h in self.hosts:
            if h.name == name:
                return h
        raise ConfigError(
            f"no host named {name!r} under hosts:", hint=f"known: {[h.name for h in self.hosts]}"
        )

    def dataset(self, name: str) -> DatasetConfig:
        """The dataset called ``name``."""
        if name not in self.datasets:
            raise ConfigError(
                f"no dataset named {name!r} in the environment file",
                hint=f"declare it under datasets: (known: {sorted(self.datasets)})",
            )
        return self.datasets[name]

    def find_instance(self, target: str) -> tuple[ServiceConfig, InstanceConfig] | None:
        """The service and instance an alert target names (instance name, ``host:port`` or URL)."""
        for svc in self.services:
            for inst in [*svc.instances, *svc.standby]:
                netloc = inst.base_url.split("://", 1)[-1]
                names = {inst.name, netloc, inst.base_url}
                # The URL keeps an internationalised host in its ASCII form (xn--…); alerts name it
                # as written (gpu-节点-1:8000), so both forms match.
                host, shown = inst.url.host or "", inst.url.unicode_host() or ""
                if shown and shown != host:
                    names |= {netloc.replace(host, shown, 1), inst.base_url.replace(host, shown, 1)}
                if target in names:
                    return svc, inst
        return None


def _hints(path: str, kind: str) -> str | None:
    if path.startswith("hosts") and path.endswith((".gpu_scenario", ".gpu")):
        # `gpu: fake` + `gpu_scenario:` were removed: the fake NVML lives with the sandbox now.
        return (
            "gpu: fake and gpu_scenario were removed; for a fake NVML write "
            "`nvml: {backend: llmedic_sandbox.fake_nvml:FakeNvml, scenario: PATH}`"
        )
    if path.startswith("metrics") and "url" in path:
        return "metrics.url is the Prometheus base URL, e.g. http://127.0.0.1:9090"
    if path.startswith("commands") and kind == "value_error":
        return "declare each {placeholder} under the template's params:"
    return None


def load_environment(path: Path | None = None, settings: Settings | None = None) -> EnvironmentFile:
    """Load and validate the environment file (``llmedic.yaml``).

    A missing default file gives an empty environment; a missing file that was asked for by name
    is an error.
    """
    settings = settings or Settings()
    explicit = path is not None or settings.config is not None
    target = path or settings.config_path()
    if not target.exists() and not explicit:
        return EnvironmentFile()
    return load_model(EnvironmentFile, target, error=ConfigError, hints=_hints)
