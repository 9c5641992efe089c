"""Settings (environment, ``LLMEDIC_*``) and the environment file ``llmedic.yaml``.

Settings say *where* things are (home directory, config file, playbooks); the environment file says
*what* llmedic looks after: target services and their instances, the metrics source, hosts, the
allowlisted command templates, datasets, golden sets, team routes and alert-routing rules.
"""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from llmedic.catalog import AnomalyType
from llmedic.errors import ConfigError
from llmedic.yamlfile import load_model

__all__ = [
    "AlertRule",
    "ColumnSchema",
    "CommandParam",
    "CommandTemplate",
    "ControlConfig",
    "DataThresholds",
    "DatasetConfig",
    "EnvironmentFile",
    "GoldenSetConfig",
    "HostConfig",
    "InstanceConfig",
    "MetricsConfig",
    "NotifyConfig",
    "NvmlBackend",
    "ReceiverConfig",
    "ScheduleConfig",
    "ServiceConfig",
    "Settings",
    "TeamRoute",
    "load_environment",
]

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")]


class _Strict(BaseModel):
    # Field docstrings become descriptions: error messages, JSON schema and the generated reference.
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class Settings(BaseSettings):
    """Process settings, read from ``LLMEDIC_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="LLMEDIC_", extra="ignore", use_attribute_docstrings=True)

    home: Path = Path(".llmedic")
    """State directory: Prefect database, incidents, knowledge base, outbox."""
    config: Path | None = None
    """Environment file; default ``./llmedic.yaml`` if it exists, else ``<home>/llmedic.yaml``."""
    playbooks_dir: Path | None = None
    """Directory of playbook YAML files that override the shipped ones, file by file."""
    approval_sweep_seconds: float = 15.0
    """How often ``llmedic up`` looks for approvals past their deadline."""
    receiver_token: SecretStr | None = None
    """Bearer token the receiver requires (or ``receiver_token_file``)."""
    receiver_token_file: Path | None = None
    """File holding the bearer token (one line)."""
    receiver_basic_user: str | None = None
    """Basic-auth user the receiver accepts, with ``receiver_basic_password``."""
    receiver_basic_password: SecretStr | None = None
    """Its password (never logged)."""
    grafana_hmac_secret: SecretStr | None = None
    """When set, Grafana bodies must carry a valid ``X-Grafana-Alerting-Signature``."""
    grafana_timestamp_header: str = "X-Grafana-Alerting-Signature-Timestamp"
    """Header with the timestamp Grafana signs along with the body (when it sends one)."""
    receiver_max_body_bytes: int = 1_048_576
    """Larger request bodies are refused with HTTP 413."""
    outbox_url: SecretStr | None = None
    """PostgreSQL URL for the receiver's outbox (``postgresql://user:pass@host/db``); default SQLite."""
    approvers_file: Path | None = None
    """The approver tokens (``approvers: {NAME: TOKEN}``, mode 0600, written by ``llmedic approvers
    add``); default ``<home>/approvers.yaml``. A file group or others can read is refused."""

    def approvers_path(self) -> Path:
        """The approver tokens file this process uses."""
        return self.approvers_file if self.approvers_file is not None else self.home / "approvers.yaml"

    def config_path(self) -> Path:
        """The environment file this process uses."""
        if self.config is not None:
            return self.config
        local = Path("llmedic.yaml")
        return local if local.exists() else self.home / "llmedic.yaml"

    @property
    def incidents_dir(self) -> Path:
        """Working copies of open and closed incidents."""
        return self.home / "incidents"

    @property
    def outbox_path(self) -> Path:
        """The receiver's durable outbox (SQLite)."""
        return self.home / "outbox.sqlite3"

    def receiver_bearer(self) -> str | None:
        """The bearer token from the setting or the token file."""
        if self.receiver_token is not None:
            return self.receiver_token.get_secret_value()
        if self.receiver_token_file is not None:
            try:
                token = self.receiver_token_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(
                    f"LLMEDIC_RECEIVER_TOKEN_FILE={self.receiver_token_file}: cannot be read ({exc.strerror})"
                ) from None
            if not token:
                raise ConfigError(f"LLMEDIC_RECEIVER_TOKEN_FILE={self.receiver_token_file} is empty")
            return token
        return None

    @property
    def datasets_dir(self) -> Path:
        """The versioned dataset store."""
        return self.home / "datasets"

    @property
    def models_dir(self) -> Path:
        """Model registry: releases, baselines, verdicts and freezes per service."""
        return self.home / "models"

    @property
    def kb_dir(self) -> Path:
        """Knowledge base: archived incident reports (Markdown + JSON)."""
        return self.home / "kb"


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
    ``llmedic.sandbox.fake_nvml:FakeNvml``."""
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


ColumnType = Literal["int", "float", "string", "bool", "date", "datetime", "category"]

DEFAULT_MISSING_TOKENS = ["", "null", "NULL", "None", "none", "undefined", "NaN", "nan"]


class ColumnSchema(_Strict):
    """What one column of a dataset must look like."""

    dtype: ColumnType = "string"
    """The column's type; values that do not parse are format errors."""
    nullable: bool = True
    """May the column be missing (null, blank or a missing token)?"""
    max_missing_share: float | None = Field(None, ge=0, le=1)
    """Share of missing values tolerated (default: the dataset's ``thresholds.max_missing_share``)."""
    min: float | None = None
    """Smallest valid value (numeric columns)."""
    max: float | None = None
    """Largest valid value (numeric columns)."""
    allowed: list[str | int | float | bool] | None = None
    """The only values the column may take (compared as text for strings and categories)."""
    regex: str | None = None
    """Regular expression every non-missing value must match in full."""
    date_formats: list[str] = Field(default_factory=list)
    """``strptime`` formats accepted for date/datetime columns; the first is the canonical one a repair
    writes. Empty: ISO 8601 only."""
    impute: bool = True
    """May a repair invent values for this column? ``false`` for values nobody can guess (the
    answers of a knowledge base, a label): missing values there are dropped or the batch is rolled
    back, never imputed."""
    secret: bool = False
    """Mask the column's values wherever samples are shown (evidence, reports, the CLI)."""
    drift: bool = True
    """Compare the column with the reference version."""

    @field_validator("regex")
    @classmethod
    def _regex_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _coherent(self) -> ColumnSchema:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        if (self.min is not None or self.max is not None) and self.dtype not in ("int", "float"):
            raise ValueError(f"min/max apply to int and float columns, not {self.dtype}")
        if self.date_formats and self.dtype not in ("date", "datetime"):
            raise ValueError(f"date_formats apply to date and datetime columns, not {self.dtype}")
        return self


AuditCheck = Literal["missing", "formats", "range", "allowed", "outliers", "duplicates", "drift"]
AUDIT_CHECKS: tuple[AuditCheck, ...] = (
    "missing",
    "formats",
    "range",
    "allowed",
    "outliers",
    "duplicates",
    "drift",
)


class DataThresholds(_Strict):
    """When a dataset's audit counts as a breach (defaults from the data-quality literature; see
    docs/flows/data.md)."""

    max_missing_share: float = Field(0.01, ge=0, le=1)
    """Share of missing values per nullable column above which the column breaches."""
    max_invalid_share: float = Field(0.0, ge=0, le=1)
    """Share of values per column that may fail their type, format, regex, range or allowed set."""
    max_outlier_share: float = Field(0.01, ge=0, le=1)
    """Share of values outside the outlier rule per numeric column."""
    outlier_method: Literal["iqr", "robust_z", "sigma3"] = "iqr"
    """How outliers are flagged: Tukey's IQR fences, robust z (median/MAD) or 3 sigma."""
    iqr_k: float = Field(3.0, gt=0)
    """Tukey fence multiplier: 1.5 inner fences, 3.0 outer fences (far out)."""
    robust_z: float = Field(3.5, gt=0)
    """|0.6745 (x − median) / MAD| above which a value is an outlier (Iglewicz & Hoaglin)."""
    max_duplicate_share: float = Field(0.0, ge=0, le=1)
    """Share of exact duplicate rows (and of repeated keys) tolerated."""
    drift_method: Literal["auto", "psi", "ks", "chi2", "js", "wasserstein"] = "auto"
    """``auto`` chooses per column as Evidently does (KS / chi-square up to 1000 reference rows,
    Wasserstein / Jensen–Shannon above)."""
    psi_threshold: float = Field(0.1, gt=0)
    ks_p_value: float = Field(0.05, gt=0, lt=1)
    chi2_p_value: float = Field(0.05, gt=0, lt=1)
    js_threshold: float = Field(0.1, gt=0, le=1)
    wasserstein_threshold: float = Field(0.1, gt=0)
    drift_share: float = Field(0.5, gt=0, le=1)
    """Share of compared columns that must drift for the dataset to drift."""
    drift_sample_rows: int = Field(50_000, ge=100)
    """Drift statistics use at most this many rows per side (a seeded sample)."""


class DatasetConfig(_Strict):
    """A versioned dataset llmedic audits and repairs."""

    path: Path | None = None
    """A file imported as the first version when the store has none yet."""
    format: Literal["csv", "parquet", "jsonl"] = "csv"
    """File format of the dataset's versions."""
    encoding: str = "utf-8"
    """Text encoding of CSV/JSONL files; anything else is refused with the likely encoding named."""
    description: str = ""
    """What the dataset is (shown in reports)."""
    columns: dict[str, ColumnSchema] = Field(default_factory=dict)
    """The declared schema; columns not listed are kept but not checked."""
    key: list[str] = Field(default_factory=list)
    """Columns that identify a row; a repeated key is a duplicate."""
    segment_column: str | None = None
    """Missing values are also broken down by this column."""
    time_column: str | None = None
    """Missing values are also broken down by day of this column."""
    missing_tokens: list[str] = Field(default_factory=lambda: list(DEFAULT_MISSING_TOKENS))
    """Text values that mean "missing" (after trimming whitespace)."""
    thresholds: DataThresholds = DataThresholds()
    checks: list[AuditCheck] = Field(default_factory=lambda: list(AUDIT_CHECKS), min_length=1)
    """Which checks the audit runs (default: all). ``formats`` covers types, date formats, regexes
    and encodings; dropping ``outliers`` or ``duplicates`` saves most of the time on huge tables."""
    publish_to: Path | None = None
    """Where the current version is materialised for its consumers (atomically replaced on every
    change of the current version); leave empty when consumers read the store."""
    consumers: list[Name] = Field(default_factory=list)
    """Services that read this dataset (shown in an incident's impact)."""

    @model_validator(mode="after")
    def _columns_declared(self) -> DatasetConfig:
        if self.columns:
            for role, cols in (
                ("key", self.key),
                ("segment_column", [self.segment_column] if self.segment_column else []),
                ("time_column", [self.time_column] if self.time_column else []),
            ):
                unknown = [c for c in cols if c not in self.columns]
                if unknown:
                    raise ValueError(f"{role} names {unknown}, which are not under columns:")
        try:
            "".encode(self.encoding)
        except LookupError:
            raise ValueError(f"unknown encoding {self.encoding!r} (e.g. utf-8, cp1252, latin-1)") from None
        return self


class GoldenSetConfig(_Strict):
    """A golden set of questions with accepted answers, scored against a service."""

    path: Path
    """JSONL: ``{"id", "question", "answers": [...], "tags": [...]}`` per line."""
    service: Name
    adversarial: Path | None = None
    """JSONL of prompts the model must resist (``{"id", "kind", "prompt", "must_contain_any",
    "must_not_contain"}``), checked by the release gate."""


class TeamRoute(_Strict):
    """Where a team is notified."""

    webhook_url: AnyHttpUrl | None = None
    """A Slack-compatible incoming webhook (``{"text": …}`` is posted)."""
    email: list[str] = Field(default_factory=list)
    """Recipients (needs ``smtp:``)."""
    channel: str | None = None
    """Chat channel named in the message (Slack-compatible webhooks ignore it unless they allow overrides)."""


class SmtpConfig(_Strict):
    """The mail relay notifications go through."""

    host: str
    """SMTP server."""
    port: int = Field(25, ge=1, le=65535)
    sender: str = "llmedic@localhost"
    """From address."""
    starttls: bool = False
    """Upgrade the connection with STARTTLS."""
    username: str | None = None
    """Login user, when the server requires authentication."""
    password: SecretStr | None = None
    """Its password (never logged)."""
    timeout_seconds: float = Field(10, gt=0)


class NotifyConfig(_Strict):
    """How hard a notification is tried on each channel (webhook, email) before it is recorded failed."""

    attempts: int = Field(3, ge=1, le=10)
    """Tries per channel; a non-2xx answer, a timeout or a refused connection is retried (a 4xx other
    than 408/429, or a permanent SMTP refusal, is not: it would fail the same way)."""
    backoff_seconds: float = Field(1.0, ge=0, le=60)
    """Wait before the second try; it doubles before each later one (1 s, 2 s, ...)."""
    timeout_seconds: float = Field(10, gt=0, le=120)
    """Longest wait for one webhook answer (email uses ``smtp.timeout_seconds``)."""
    max_seconds: float = Field(20, gt=0, le=600)
    """Bound on the time one channel may take, tries and waits together: no try starts past it."""


class ReceiverConfig(_Strict):
    """How the alert receiver throttles and gives up."""

    max_runs_per_target_per_hour: int = Field(6, ge=1)
    """Past this many remediation runs for one target in an hour, escalate instead of starting more."""
    max_dispatch_attempts: int = Field(20, ge=1)
    """Failed tries to start an alert's run (backing off 1 s, 2 s, … 60 s: about 15 minutes at the
    default) before its outbox row goes ``dead`` and the ops team is told; ``llmedic alerts retry``
    re-queues it."""


class ScheduleConfig(_Strict):
    """When the scheduled flows run (cron, in ``timezone``); ``null`` turns a schedule off."""

    data_audit: str | None = "0 3 1 * *"
    """The monthly data audit: 03:00 on the first of the month."""
    golden_sample: str | None = "0 6 * * *"
    """The daily golden-set sample of every service: 06:00 every day."""
    capacity_review: str | None = "0 4 1 * *"
    """The monthly capacity review: 04:00 on the first of the month."""
    backup_verify: str | None = "0 5 * * 0"
    """The weekly backup verification: 05:00 every Sunday."""
    timezone: str = "UTC"
    """Time zone the cron expressions are read in."""

    @field_validator("data_audit", "golden_sample", "capacity_review", "backup_verify")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            from prefect.client.schemas.schedules import CronSchedule

            try:
                CronSchedule(cron=value)
            except ValueError:
                raise ValueError(f"not a valid cron expression: {value!r} (e.g. '0 3 1 * *')") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. UTC, Europe/Berlin)") from None
        return value


class ServiceCapacity(_Strict):
    """What one service's capacity is, where the metrics cannot say it."""

    gpus: int | None = Field(None, ge=1)
    """GPUs serving it (default: counted from the DCGM series)."""
    max_qps_per_instance: float | None = Field(None, gt=0)
    """Requests per second one instance sustains within its SLO (from a load test)."""
    latency_slo_seconds: float | None = Field(None, gt=0)
    """End-to-end p99 the service promises (its latency capacity)."""
    dcgm_selector: str = ""
    """PromQL label matchers for this service's GPUs, e.g. ``{Hostname=~"gpu-0[12]"}``."""


class CapacityConfig(_Strict):
    """The monthly capacity review."""

    reserve: float = Field(0.25, ge=0.05, le=0.9)
    """Headroom to keep (the guide's 20–30 %)."""
    lookback_days: int = Field(30, ge=7, le=400)
    step_seconds: float = Field(3600, ge=60)
    """Resolution of the history read from Prometheus (rates use the same window)."""
    horizon_days: int = Field(90, ge=7)
    """Recommend now for what runs out within this many days."""
    services: dict[Name, ServiceCapacity] = Field(default_factory=dict)


class BackupArtifact(_Strict):
    """One thing that must be backed up, and where its backups are."""

    kind: Literal["model", "config", "dataset"]
    """What the artifact is: decides how a test restore is checked (a config parses, a dataset loads, model files hash)."""
    source: Path
    """The live copy (a directory for model weights, a file for configs and datasets)."""
    backups: Path
    """Directory holding one sub-directory per backup (sorted by name, newest last), each with a
    ``MANIFEST.sha256`` (``sha256sum`` format) next to the files."""
    max_age_hours: float = Field(26, gt=0)
    """The latest backup must be younger than this."""
    format: Literal["auto", "csv", "parquet", "jsonl", "yaml", "json", "safetensors", "any"] = "auto"
    """How a test restore is read back (auto: from the file names)."""


class SyncArtifact(_Strict):
    """A file a link carries (model weights, a dataset): resumable, checksum-verified."""

    url: AnyHttpUrl
    """Where the artifact is downloaded from (HTTP range requests resume an interrupted copy)."""
    dest: Path
    """Where the verified copy goes."""
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class NetworkLink(_Strict):
    """A network dependency of the services: an endpoint they call or sync from."""

    url: AnyHttpUrl
    """What is probed (a health URL of the far end)."""
    backup_url: AnyHttpUrl | None = None
    """Where ``failover`` points the consumers."""
    consumers: list[Name] = Field(default_factory=list)
    """Services that depend on this link (named in the incident)."""
    artifact: SyncArtifact | None = None
    failover_command: Name | None = None
    """Allowlisted command (params ``link`` and ``url``) that repoints the consumers; without one
    llmedic records the active endpoint in ``<home>/network/active.json`` for them to read."""
    probe_from: list[Name] = Field(default_factory=list)
    """Hosts that probe the link too (through their ``net_probe`` command, param ``url``, printing
    ``<http code> <seconds>`` as ``curl -w '%{http_code} %{time_total}'`` does): tells a broken
    far end from a broken path between llmedic and it."""


class NetworkConfig(_Strict):
    """The links network incidents are about."""

    links: dict[Name, NetworkLink] = Field(default_factory=dict)


class AlertRule(_Strict):
    """Maps alerts without an ``anomaly`` label to an anomaly type by label equality."""

    match: dict[str, str] = Field(min_length=1)
    anomaly: AnomalyType
    """The anomaly type (and so the flow) those alerts start."""


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
            "`nvml: {backend: llmedic.sandbox.fake_nvml:FakeNvml, scenario: PATH}`"
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


def settings_from_env() -> Settings:
    """Settings from the environment, with a clear error for a bad ``LLMEDIC_*`` value."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"LLMEDIC_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise ConfigError(f"invalid setting: {problems}", hint="fix the environment variable") from None
