"""The services llmedic looks after: their instances, how they are controlled, the metrics source,
the hosts they run on and the allowlisted command templates that act on them."""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Literal

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator, model_validator

from llmedic.config._base import Name, _Strict

__all__ = [
    "CommandParam",
    "CommandTemplate",
    "ControlConfig",
    "HostConfig",
    "InstanceConfig",
    "MetricsConfig",
    "NvmlBackend",
    "ServiceConfig",
]


class InstanceConfig(_Strict):
    """One serving instance (a vLLM / TGI / OpenAI-compatible server)."""

    name: Name
    """Instance name, as alerts and commands refer to it."""
    url: AnyHttpUrl
    """OpenAI-compatible base URL of the instance."""
    host: Name = "local"
    """The host (under ``hosts:``) it runs on: where its commands, GPU and log reads go."""
    metrics_url: AnyHttpUrl | None = None
    """Where its Prometheus metrics are, if not ``<url>/metrics``."""
    gpus: list[int] = Field(default_factory=list)
    """Indices of the GPUs it runs on, on its host (empty: all of the host's GPUs)."""

    @property
    def base_url(self) -> str:
        """URL without a trailing slash."""
        return str(self.url).rstrip("/")

    @property
    def metrics_endpoint(self) -> str:
        """Full URL of the instance's ``/metrics``."""
        return str(self.metrics_url) if self.metrics_url else f"{self.base_url}/metrics"


class ControlConfig(_Strict):
    """How llmedic acts on a service: the sandbox's admin API, or allowlisted command templates."""

    kind: Literal["sandbox", "commands"] = "sandbox"
    """``sandbox``: act through the sandbox's admin API; ``commands``: through allowlisted command templates."""
    admin_token: SecretStr | None = None
    """Bearer token for the sandbox admin API (kind: sandbox)."""
    commands: dict[
        Literal[
            "drain",
            "undrain",
            "restart",
            "set_concurrency",
            "scale_out",
            "scale_in",
            "switch_model",
            "profile",
            "rss",
        ],
        Name,
    ] = Field(default_factory=dict)
    """Action → name of a template in ``commands:`` (kind: commands)."""


class ServiceConfig(_Strict):
    """A vertical LLM service: several instances behind one name."""

    name: Name
    engine: Literal["vllm", "tgi", "openai"] = "vllm"
    """Serving engine: which metric names to read (vLLM's old ``gpu_cache_usage_perc`` is accepted too)."""
    model: str | None = None
    """The model version served at first; seeds the model registry (``llmedic model list``)."""
    instances: list[InstanceConfig] = Field(min_length=1)
    standby: list[InstanceConfig] = Field(default_factory=list)
    """Instances kept out of rotation that ``scale_out`` may bring in."""
    control: ControlConfig = ControlConfig()
    logs: Name | None = None
    """Command template (param ``instance``) that prints the instance's recent log lines (a file
    tail, ``journalctl -u …``): searched for errors and import failures."""
    python: Path | None = None
    """The interpreter of the service's virtual environment (dependency checks run with it)."""
    lock_file: Path | None = None
    """Its lock file (``name==version`` pins): what the environment must match."""
    wheelhouse: Path | None = None
    """Directory of wheels to install the lock from offline (``pip --no-index --find-links``);
    without it pip uses its configured index."""
    imports: list[str] = Field(default_factory=list)
    """Modules the service needs to import (e.g. ``vllm``, ``torch``): import-tested."""
    paths: list[Path] = Field(default_factory=list)
    """Model and data paths it must be able to read: checked for existence, permission and free
    disk by every incident's host check."""
    prompt_log: Path | None = None
    """JSONL log of recent user prompts (``{"prompt": ...}`` per line, e.g. from your gateway): the
    accuracy flow measures prompt drift on it (the sandbox serves its own through the admin API)."""

    @model_validator(mode="after")
    def _unique_instances(self) -> ServiceConfig:
        seen: set[str] = set()
        for inst in [*self.instances, *self.standby]:
            if inst.name in seen:
                raise ValueError(f"instance name {inst.name!r} is used twice")
            seen.add(inst.name)
        return self


class MetricsConfig(_Strict):
    """Where metrics come from."""

    kind: Literal["prometheus", "scrape"] = "scrape"
    """``scrape``: read each instance's ``/metrics``; ``prometheus``: query a Prometheus server (needed for history: leaks, capacity)."""
    url: AnyHttpUrl | None = None
    """Prometheus base URL (kind: prometheus)."""
    timeout_seconds: float = Field(5.0, gt=0)
    """Per-request timeout against the metrics source."""
    instance_label: str = "instance"
    """Label that names an instance in PromQL selectors."""

    @model_validator(mode="after")
    def _url_for_prometheus(self) -> MetricsConfig:
        if self.kind == "prometheus" and self.url is None:
            raise ValueError("kind 'prometheus' needs a url, e.g. http://127.0.0.1:9090")
        return self


class NvmlBackend(_Strict):
    """Another object with pynvml's interface read in place of the NVML library (the sandbox's
    scenario-driven fake, or a test double)."""

    backend: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$")
    """``module.path:factory``, imported when the host's GPUs are read: a callable taking ``scenario``
    (a path, or None) and returning the object. The sandbox's is
    ``llmedic_sandbox.fake_nvml:FakeNvml``."""
    scenario: Path | None = None
    """Passed to the factory (for the sandbox's fake: its JSON scenario file)."""


class HostConfig(_Strict):
    """A machine commands can run on."""

    name: Name
    kind: Literal["local", "ssh"] = "local"
    """``local``: this machine; ``ssh``: over SSH (key auth, pinned host key)."""
    address: str | None = None
    """Hostname or IP address (kind: ssh)."""
    port: int = Field(22, ge=1, le=65535)
    """SSH port."""
    user: str | None = None
    """Login user (kind: ssh)."""
    key_file: Path | None = None
    """Private key file (kind: ssh); passwords are never used."""
    known_hosts: Path | None = None
    """``known_hosts`` file that pins the host key (or ``host_key_fingerprint``)."""
    host_key_fingerprint: str | None = None
    """Pinned ``SHA256:...`` fingerprint; unknown host keys are refused otherwise."""
    gpu: Literal["nvml", "none"] = "nvml"
    """How its GPUs are read: NVML (locally, or over SSH through the ``gpu_snapshot`` command), or
    not at all."""
    nvml: NvmlBackend | None = None
    """Read this host's GPUs through another object with pynvml's interface (``gpu: nvml``, local
    hosts): the sandbox and the tests use a fake; unset on real hosts."""
    dcgm_url: AnyHttpUrl | None = None
    """The host's DCGM exporter (``http://host:9400/metrics``), read alongside NVML."""
    kernel_log: Name | None = None
    """Command template that prints the recent kernel log (e.g. ``journalctl -k --since -2h``),
    searched for NVIDIA XIDs."""
    gpu_snapshot: Name | None = None
    """Command template that prints ``llmedic gpu snapshot --json`` on the host (SSH hosts)."""
    host_check: Name | None = None
    """Command template that prints ``llmedic host check --json`` on the host (SSH hosts)."""

    @model_validator(mode="after")
    def _ssh_needs_address(self) -> HostConfig:
        if self.kind == "ssh" and not self.address:
            raise ValueError("an ssh host needs an address")
        if self.nvml is not None and (self.gpu != "nvml" or self.kind != "local"):
            raise ValueError("nvml: (another NVML backend) applies to a local host with gpu: nvml")
        return self


class CommandParam(_Strict):
    """A typed, validated parameter of a command template."""

    pattern: str = r"^[A-Za-z0-9@%+=:,./_-]{1,128}$"
    """Regular expression the whole value must match."""
    choices: list[str] | None = None
    """Allowed values (enumeration)."""
    allow_parent_dirs: bool = False
    """Accept ``..`` path segments (refused by default: path traversal)."""

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


class CommandTemplate(_Strict):
    """An allowlisted command; ``{name}`` placeholders are filled with quoted, validated values."""

    template: str = Field(min_length=1)
    """The command line; ``{param}`` placeholders are filled with validated, shell-quoted values."""
    params: dict[str, CommandParam] = Field(default_factory=dict)
    """Typed parameters of the template; a value that does not validate is refused before anything runs."""
    timeout_seconds: float = Field(60.0, gt=0)
    """The command is killed (and the step fails clearly) after this long."""
    description: str = ""
    """What the command does (shown in evidence and approvals)."""

    @model_validator(mode="after")
    def _placeholders_declared(self) -> CommandTemplate:
        used = {f for _, f, _, _ in string.Formatter().parse(self.template) if f}
        missing = sorted(used - set(self.params))
        if missing:
            raise ValueError(
                f"placeholders {missing} are not declared under params "
                "(every parameter must be declared so it can be validated)"
            )
        return self
