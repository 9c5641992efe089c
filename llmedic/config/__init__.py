"""Settings (environment, ``LLMEDIC_*``) and the environment file ``llmedic.yaml``.

Settings say *where* things are (home directory, config file, playbooks); the environment file says
*what* llmedic looks after: target services and their instances, the metrics source, hosts, the
allowlisted command templates, datasets, golden sets, team routes and alert-routing rules.

One module per concern; this package's namespace is the interface (``from llmedic.config import X``):

- :mod:`~llmedic.config.settings` — ``Settings``, the ``LLMEDIC_*`` variables
- :mod:`~llmedic.config.services` — services, instances, control, metrics, hosts, command templates
- :mod:`~llmedic.config.datasets` — datasets (schema, audit thresholds) and golden sets
- :mod:`~llmedic.config.routing` — team routes, SMTP, notification retries, receiver, alert rules
- :mod:`~llmedic.config.reviews` — schedules, the capacity review, backups
- :mod:`~llmedic.config.network` — network links and their artifacts
- :mod:`~llmedic.config.limits` — the blast-radius limit across incidents
- :mod:`~llmedic.config.environment` — ``EnvironmentFile`` (``llmedic.yaml``) and ``load_environment``
"""

from llmedic.config.datasets import (
    AUDIT_CHECKS,
    DEFAULT_MISSING_TOKENS,
    AuditCheck,
    ColumnSchema,
    ColumnType,
    DatasetConfig,
    DataThresholds,
    GoldenSetConfig,
)
from llmedic.config.environment import EnvironmentFile, load_environment
from llmedic.config.limits import LimitsConfig
from llmedic.config.network import NetworkConfig, NetworkLink, SyncArtifact
from llmedic.config.reviews import BackupArtifact, CapacityConfig, ScheduleConfig, ServiceCapacity
from llmedic.config.routing import AlertRule, NotifyConfig, ReceiverConfig, SmtpConfig, TeamRoute
from llmedic.config.services import (
    CommandParam,
    CommandTemplate,
    ControlConfig,
    HostConfig,
    InstanceConfig,
    MetricsConfig,
    NvmlBackend,
    ServiceConfig,
)
from llmedic.config.settings import Settings, settings_from_env

__all__ = [
    "AUDIT_CHECKS",
    "DEFAULT_MISSING_TOKENS",
    "AlertRule",
    "AuditCheck",
    "BackupArtifact",
    "CapacityConfig",
    "ColumnSchema",
    "ColumnType",
    "CommandParam",
    "CommandTemplate",
    "ControlConfig",
    "DataThresholds",
    "DatasetConfig",
    "EnvironmentFile",
    "GoldenSetConfig",
    "HostConfig",
    "InstanceConfig",
    "LimitsConfig",
    "MetricsConfig",
    "NetworkConfig",
    "NetworkLink",
    "NotifyConfig",
    "NvmlBackend",
    "ReceiverConfig",
    "ScheduleConfig",
    "ServiceCapacity",
    "ServiceConfig",
    "Settings",
    "SmtpConfig",
    "SyncArtifact",
    "TeamRoute",
    "load_environment",
    "settings_from_env",
]
