"""Game-day scenarios: what to break, which alert follows, what a good response looks like."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from llmedic.alerts import labels_fingerprint
from llmedic.catalog import AnomalyType
from llmedic.errors import ConfigError
from llmedic.incident import Outcome, utcnow
from llmedic.yamlfile import load_model
from llmedic_sandbox.data_faults import DataFault
from llmedic_sandbox.pyenv import BAD_DEPLOY

__all__ = [
    "APPROVER",
    "SCENARIO_DIR",
    "AlertSpec",
    "DatasetFault",
    "DepsFault",
    "Expect",
    "Fault",
    "GpuFault",
    "LinkFault",
    "ModelRelease",
    "SandboxFault",
    "Scenario",
    "alertmanager_body",
    "load_scenarios",
    "shipped_scenarios",
]

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
APPROVER = "gameday"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class _Timed(_Strict):
    """What every fault has: when to inject it."""

    after_seconds: float = Field(0, ge=0, le=3600)
    """Inject it this long after the scenario's start (default 0: with the others, before the
    alerts). A later one can bring a fault back after the fix (a relapse during the watch); it must
    be under the scenario's ``timeout_seconds``."""


class SandboxFault(_Timed):
    """A fault in one sandbox instance (``POST /admin/faults``)."""

    kind: Literal["sandbox"]
    instance: str
    fault: dict[str, Any]
    """The fault body, e.g. ``{kind: slow, delay_seconds: 2.5}`` or ``{kind: leak, bytes_per_request: 5e7}``."""


class GpuFault(_Timed):
    """A change to one fake GPU of the sandbox host, and optionally an XID in its kernel log."""

    kind: Literal["gpu"]
    device: int = Field(ge=0)
    set: dict[str, Any] = Field(default_factory=dict)
    """Fields of the fake-NVML device, e.g. ``{ecc_uncorrected: 2, last_xid: 48}``."""
    xid: int | None = None
    """Append ``NVRM: Xid … <xid>`` to the host's kernel log."""


class DatasetFault(_Timed):
    """A corrupted new version of a declared dataset (``llmedic_sandbox.data_faults``)."""

    kind: Literal["dataset"]
    dataset: str
    fault: DataFault
    column: str | None = None
    share: float = Field(0.1, gt=0, le=1)
    seed: int = 0


class ModelRelease(_Timed):
    """A new model version released to every instance in rotation, recorded in the registry."""

    kind: Literal["model_release"]
    service: str
    version: str
    config: dict[str, str | int | float | bool | None] = Field(default_factory=dict)
    """Its serving configuration (what the incident's configuration diff compares)."""
    fault: dict[str, Any] | None = None
    """How the new version misbehaves in the sandbox, e.g. ``{kind: wrong_answers, tags: [statin]}``."""


class DepsFault(_Timed):
    """A bad deploy into the service's virtual environment (``llmedic_sandbox.pyenv``), after which
    ``instance`` restarts into it."""

    kind: Literal["deps"]
    instance: str
    install: list[str] = Field(default_factory=lambda: [BAD_DEPLOY], min_length=1)
    """Pins installed off the lock (default: the release of ``vertical-utils`` that breaks ``vertical-core``)."""


class LinkFault(_Timed):
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
    escalation: str | None = None
    """Text the escalation reason must contain (e.g. ``blast-radius-exceeded``, ``contained:``)."""
    joined: int | None = Field(None, ge=0)
    """How many alerts about other instances must have joined the incident (one incident per
    cause: ``receiver.group_window_seconds``, a fleet-wide incident keyed to its service)."""


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

    @model_validator(mode="after")
    def _timed_faults_fit(self) -> Scenario:
        late = [
            f"inject[{i}] ({f.kind}) after_seconds {f.after_seconds:g}"
            for i, f in enumerate(self.inject)
            if f.after_seconds >= self.timeout_seconds
        ]
        if late:
            raise ValueError(
                f"{', '.join(late)} is not under timeout_seconds {self.timeout_seconds:g}: the scenario "
                "would end before the fault is injected; lower after_seconds or raise timeout_seconds"
            )
        return self


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
