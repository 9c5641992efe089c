"""What every step task shares: its context, its adapters, run-scoped caching, and step timing.

Caching is what makes approvals survive a restart. A flow waiting for an approval is *suspended*:
its process exits, and when someone approves, Prefect runs the flow again from the top. Every step
task is cached by (flow run, task, inputs) with persisted results, so on that re-run confirm,
evidence, isolation and the rest return their recorded results instead of acting again — and a fix
that already ran is never applied a second time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar

from prefect import Task, task
from prefect.context import TaskRunContext
from pydantic import BaseModel, ConfigDict
from pydantic_core import to_jsonable_python

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
from llmedic.incident import Decision, EvidenceItem, Step, StepResult, utcnow
from llmedic.models import ModelRegistry
from llmedic.playbook import NEVER_RETRIED, Playbook, StepPolicy, load_playbook

if TYPE_CHECKING:
    # The data and accuracy machinery pulls in pandas and SciPy: imported where it is used, so a
    # latency or GPU run does not pay for it at start-up (seconds per flow-run process).
    from llmedic.adapters.datastore import DataStore
    from llmedic.analysis.data_audit import DataAudit
    from llmedic.evaluation import Evaluation
    from llmedic.golden import GoldenItem, Scorecard


class _DropThreadTimeoutWarning(logging.Filter):
    """Prefect warns that a task timeout cannot interrupt a worker thread. Every blocking call in a
    step has its own timeout (HTTP clients, subprocesses, bounded probe bursts), so the task timeout
    is only a backstop and the warning, repeated for every task run, is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "running in a worker thread" not in record.getMessage()


for _name in ("prefect.task_runs", "prefect.task_engine"):
    logging.getLogger(_name).addFilter(_DropThreadTimeoutWarning())

__all__ = [
    "Runtime",
    "StepContext",
    "StepTimer",
    "configured_step",
    "run_scoped_key",
    "run_step",
    "step_task",
]

P = ParamSpec("P")
R = TypeVar("R")

# The step of every task made by step_task, by task name: run_step reads it to refuse retries for
# the steps that change production, whatever policy it is handed.
_STEP_OF: dict[str, Step] = {}


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
        reg = ModelRegistry(self.ctx.settings().models_dir)
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

    def done(
        self,
        summary: str,
        *,
        status: Literal["ok", "skipped", "failed", "waiting"] = "ok",
        data: dict[str, Any] | None = None,
        **extra: Any,
    ) -> StepResult:
        """The step's result."""
        return StepResult(
            step=self.step,
            started_at=self.started_at,
            finished_at=utcnow(),
            status=status,
            summary=summary,
            evidence=self.evidence,
            decisions=self.decisions,
            data=data or {},
            **extra,
        )


def run_scoped_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Cache key: flow run + task + inputs. Deliberately not the task's source, so that upgrading
    llmedic while a run waits for approval cannot make a fix run twice."""
    blob = json.dumps(to_jsonable_python(parameters), sort_keys=True, default=str)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:32]
    return f"llmedic-{context.task_run.flow_run_id}-{context.task.name}-{digest}"


def step_task(step: Step, name: str | None = None) -> Callable[[Callable[P, R]], Task[P, R]]:
    """Decorate a step function as a cached, persisted Prefect task (named after the function; the
    step is in the task's description).

    No tags, on purpose: Prefect makes every task run with tags acquire a tag-concurrency lease from
    the server first. On the SQLite server that costs an API call per task that waited about 2 s per
    task once leases had accumulated (a 13-step playbook went from 1.2 s to 19 s); without tags the
    call is skipped. Runs are still found by flow name and the flow run's tags."""

    def wrap(fn: Callable[P, R]) -> Task[P, R]:
        task_name = name or fn.__name__.replace("_", "-")
        _STEP_OF[task_name] = step
        return task(
            name=task_name,
            description=f"step {step.value}: {(fn.__doc__ or '').strip().splitlines()[0] if fn.__doc__ else fn.__name__}",
            cache_key_fn=run_scoped_key,
            persist_result=True,
            # Retries come from run_step (the playbook's policy) only: explicit 0 here, so that
            # Prefect's PREFECT_TASKS_DEFAULT_RETRIES cannot retry a fix called any other way.
            retries=0,
        )(fn)

    return wrap


def configured_step(t: Task[P, R], policy: StepPolicy) -> Task[P, R]:
    """The task with the retries and timeout its playbook sets; a fix or a rollback gets no retry
    whatever ``policy`` says (playbooks refuse it at load; this holds for any other caller too)."""
    # Opening a gate sends one-time codes: a retry would send a second set (and a timeout
    # mid-send would escalate); it is never retried either.
    never = _STEP_OF.get(t.name) in NEVER_RETRIED or t.name == "open-approval-gate"
    return t.with_options(
        retries=0 if never else policy.retries,
        retry_delay_seconds=0 if never else policy.retry_delay_seconds,
        timeout_seconds=policy.timeout_seconds,
    )


def run_step(t: Task[P, R], policy: StepPolicy, *args: P.args, **kwargs: P.kwargs) -> R:
    """Call a step task with the retries and timeout its playbook sets (see :func:`configured_step`)."""
    return configured_step(t, policy)(*args, **kwargs)
