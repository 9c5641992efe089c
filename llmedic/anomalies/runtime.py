"""What a home's step functions receive: the step's context, its adapters, and the step timer.

Prefect-free on purpose: the anomaly homes (``llmedic.anomalies.*``) are plain functions of a
:class:`Runtime`; the Prefect tasks in ``tasks/`` build one from the :class:`StepContext` they are
called with and hand it over.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict, TypeVar

from pydantic import BaseModel, ConfigDict

from llmedic.adapters.control import ServiceControl, make_control
from llmedic.adapters.endpoint import Endpoint, ProbeResult
from llmedic.adapters.metrics import MetricsSource, make_source, sample_memory
from llmedic.adapters.shell import make_shell, run_template
from llmedic.catalog import AnomalyType
from llmedic.config import (
    DatasetConfig,
    EnvironmentFile,
    InstanceConfig,
    ServiceConfig,
    Settings,
    load_environment,
)
from llmedic.errors import ConfigError
from llmedic.incident import (
    ActionRecord,
    Decision,
    EvidenceItem,
    Step,
    StepResult,
    Verification,
    utcnow,
)
from llmedic.playbook import Playbook, load_playbook
from llmedic.registry import ModelRegistry

if TYPE_CHECKING:
    # The data and accuracy machinery pulls in pandas and SciPy: imported where it is used, so a
    # latency or GPU run does not pay for it at start-up (seconds per flow-run process).
    from llmedic.adapters.datastore import DataStore
    from llmedic.auditing import DataAudit
    from llmedic.evaluation import Evaluation
    from llmedic.golden import GoldenItem, Scorecard

__all__ = ["Runtime", "Stamp", "StepContext", "StepTimer"]

R = TypeVar("R")


class Stamp(TypedDict):
    """The record fields of a :class:`~llmedic.incident.StepResult` (see :meth:`StepTimer.stamp`)."""

    step: Step
    started_at: datetime
    finished_at: datetime
    status: Literal["ok", "skipped", "failed", "waiting"]
    summary: str
    evidence: list[EvidenceItem]
    decisions: list[Decision]
    actions: list[ActionRecord]
    verification: Verification | None


class StepContext(BaseModel):
    """Static facts every step task receives (hashable, so it is part of the cache key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    incident_id: str
    anomaly: AnomalyType
    target: str
    service: str | None = None
    instance: str | None = None
    version: str | None = None
    """Data incidents: the dataset version the incident is about (pinned when it opens)."""
    dry_run: bool = False
    alert_started_at: datetime | None = None
    """When the alert says the anomaly began (the log audit places first occurrences against it)."""
    flow_run_id: str = ""
    home: str
    config_path: str | None = None
    playbooks_dir: str | None = None
    overrides: dict[str, Any] = {}

    def settings(self) -> Settings:
        """Settings as the flow saw them when it opened the incident."""
        return Settings(
            home=Path(self.home),
            config=Path(self.config_path) if self.config_path else None,
            playbooks_dir=Path(self.playbooks_dir) if self.playbooks_dir else None,
        )


@dataclass
class Runtime:
    """The adapters a step needs, built from its context."""

    ctx: StepContext

    @cached_property
    def env(self) -> EnvironmentFile:
        """The environment file."""
        return load_environment(settings=self.ctx.settings())

    @cached_property
    def playbook(self) -> Playbook:
        """The playbook with this run's overrides."""
        return load_playbook(self.ctx.anomaly, self.ctx.settings(), self.ctx.overrides)

    @cached_property
    def service(self) -> ServiceConfig:
        """The service the incident is about."""
        if not self.ctx.service:
            raise ConfigError(f"target {self.ctx.target!r} is not an instance of any configured service")
        return self.env.service(self.ctx.service)

    @cached_property
    def instance(self) -> InstanceConfig:
        """The instance the incident is about."""
        for inst in [*self.service.instances, *self.service.standby]:
            if inst.name == self.ctx.instance:
                return inst
        raise ConfigError(f"instance {self.ctx.instance!r} is not part of service {self.service.name!r}")

    @cached_property
    def control(self) -> ServiceControl:
        """How to act on the service."""
        return make_control(self.service, self.env)

    @cached_property
    def dataset(self) -> DatasetConfig:
        """Data incidents: the dataset's declaration."""
        return self.env.dataset(self.ctx.target)

    @cached_property
    def store(self) -> DataStore:
        """The versioned dataset store."""
        from llmedic.adapters.datastore import DataStore

        return DataStore(self.ctx.settings().datasets_dir)

    def audit(self, ref: str | None = None, *, fresh: bool = False, reference: bool = True) -> DataAudit:
        """Audit a version of the incident's dataset (default: the pinned one); cached per version."""
        from llmedic.auditing import audit_version

        return audit_version(
            self.store,
            self.ctx.target,
            self.dataset,
            ref or self.ctx.version or "current",
            fresh=fresh,
            reference=reference,
        )

    def audit_dataset(self, name: str) -> DataAudit:
        """Audit the current version of another declared dataset (e.g. a service's knowledge)."""
        from llmedic.auditing import audit_version

        cfg = self.env.dataset(name)
        self.store.ensure_seeded(name, cfg)
        return audit_version(self.store, name, cfg, "current")

    @cached_property
    def metrics(self) -> MetricsSource:
        """Where metrics come from."""
        return make_source(self.env.metrics)

    def endpoint(self, instance: InstanceConfig | None = None, timeout: float = 30.0) -> Endpoint:
        """A client for an instance (default: the incident's)."""
        return Endpoint((instance or self.instance).base_url, timeout=timeout)

    def latency_probes(self, ep: Endpoint, count: int) -> list[ProbeResult]:
        """``count`` synthetic chat completions shaped by the latency playbook's probe settings."""
        from llmedic.playbook import LatencySettings

        s = self.settings_as(LatencySettings)
        return ep.burst(
            count, prompt=s.probe_prompt, concurrency=s.probe_concurrency, max_tokens=s.probe_max_tokens
        )

    def in_rotation(self) -> list[InstanceConfig]:
        """The service's instances that take traffic now (the incident's own one always included)."""
        return [
            i
            for i in [*self.service.instances, *self.service.standby]
            if i.name == self.ctx.instance or not self.control.state(i).drained
        ]

    def memory(self, instances: list[InstanceConfig], seconds: float, interval: float) -> dict[str, Any]:
        """Resident-memory series of ``instances`` from the metrics source, as NumPy-ready lists."""
        from llmedic.playbook import MemoryLeakSettings

        if (
            self.ctx.anomaly == AnomalyType.MEMORY_LEAK
            and self.settings_as(MemoryLeakSettings).memory_source == "process"
        ):
            control = self.control

            def read(inst: InstanceConfig) -> tuple[float, float | None]:
                return time.time(), control.rss_bytes(inst)

            series = sample_memory(instances, read, seconds=seconds, interval=interval, source="process")
        else:
            series = self.metrics.memory_series(
                instances, engine=self.service.engine, seconds=seconds, interval=interval
            )
        return {name: {"t": s.t, "y": s.y, "source": s.source} for name, s in series.items()}

    @cached_property
    def evaluation(self) -> Evaluation:
        """The service's golden set, model registry and consumed datasets (accuracy playbook)."""
        from llmedic.evaluation import Evaluation
        from llmedic.playbook import AccuracySettings

        return Evaluation(
            self.env, self.ctx.settings(), self.service.name, self.settings_as(AccuracySettings)
        )

    @cached_property
    def registry(self) -> ModelRegistry:
        """The model registry (the service's releases are seeded from llmedic.yaml on first use)."""
        reg = ModelRegistry.from_settings(self.ctx.settings())
        reg.ensure_seeded(self.service.name, self.service.model)
        return reg

    @cached_property
    def golden(self) -> tuple[str, list[GoldenItem]]:
        """(name, items) of the service's golden set."""
        return self.evaluation.golden

    def score(self, items: list[GoldenItem], instances: list[InstanceConfig]) -> Scorecard:
        """Score ``items`` against ``instances`` with the accuracy playbook's settings."""
        return self.evaluation.score(items, instances)

    def dataset_versions(self) -> dict[str, str]:
        """The current version of every dataset the service consumes."""
        return self.evaluation.dataset_versions()

    def service_log(self) -> str | None:
        """The instance's recent log through the service's ``logs`` command (None: none declared)."""
        if self.service.logs is None:
            return None
        shell = make_shell(self.env.host(self.instance.host))
        return run_template(
            shell, self.env.commands, self.service.logs, {"instance": self.instance.name}
        ).stdout

    def settings_as(self, model: type[R]) -> R:
        """The playbook's settings as their typed model."""
        return model.model_validate(self.playbook.settings)  # type: ignore[attr-defined, no-any-return]


class StepTimer:
    """Collects what a step found and stamps its start and end."""

    def __init__(self, step: Step) -> None:
        self.step = step
        self.started_at: datetime = utcnow()
        self.evidence: list[EvidenceItem] = []
        self.decisions: list[Decision] = []

    def add(
        self, name: str, source: str, summary: str, data: dict[str, Any] | None = None, *, gap: bool = False
    ) -> None:
        """Add an evidence item."""
        self.evidence.append(
            EvidenceItem(name=name, source=source, summary=summary, data=data or {}, gap=gap)
        )

    def decide(self, topic: str, choice: str, reason: str) -> None:
        """Record a decision."""
        self.decisions.append(Decision(topic=topic, choice=choice, reason=reason))

    def stamp(
        self,
        summary: str,
        *,
        status: Literal["ok", "skipped", "failed", "waiting"] = "ok",
        actions: list[ActionRecord] | None = None,
        verification: Verification | None = None,
    ) -> Stamp:
        """The record part every step result carries, for a typed result's constructor:
        ``LatencyConfirmation(**t.stamp(summary), confirmed=True, ...)``."""
        return Stamp(
            step=self.step,
            started_at=self.started_at,
            finished_at=utcnow(),
            status=status,
            summary=summary,
            evidence=self.evidence,
            decisions=self.decisions,
            actions=actions or [],
            verification=verification,
        )

    def done(
        self,
        summary: str,
        *,
        status: Literal["ok", "skipped", "failed", "waiting"] = "ok",
        actions: list[ActionRecord] | None = None,
        verification: Verification | None = None,
    ) -> StepResult:
        """A plain step result (a step no later step reads: the rollback)."""
        return StepResult(**self.stamp(summary, status=status, actions=actions, verification=verification))
