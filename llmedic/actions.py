"""The catalogue of remediation actions a playbook may name, with typed parameters.

An action is what a fix *does* to production. Each names the action that compensates it, so a fix
whose verification fails can be undone. The playbook loader checks every ``fixes[].action`` and its
``params`` against this catalogue; ``tasks/fix.py`` carries them out through the adapters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from llmedic.analysis.repair_ops import Operation
from llmedic.catalog import AnomalyType

__all__ = ["ACTIONS", "ActionSpec", "actions_for"]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(_Params):
    """The action takes no parameters."""


class SetConcurrencyParams(_Params):
    """Lower (or restore) the instance's concurrent-request limit."""

    factor: float = Field(0.5, gt=0, le=1)
    """New limit = max(min_limit, floor(current × factor))."""
    min_limit: int = Field(1, ge=1)
    limit: int | None = Field(None, ge=1)
    """Absolute limit; overrides factor (used by the compensation to restore the old value)."""


class RollingRestartParams(_Params):
    """Restart every in-rotation instance of the service, one at a time."""

    ready_timeout_seconds: float = Field(60, gt=0)
    pause_seconds: float = Field(2, ge=0)
    """Wait between two restarts (traffic settles on the restarted instance first)."""


class SwitchModelParams(_Params):
    """Serve another model version on every in-rotation instance (one at a time)."""

    variant: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")
    """The version to serve, e.g. a quantised build ``pharma-qa-1.0-awq``."""


class RollbackModelParams(_Params):
    """Serve an earlier model version again (recorded in the model registry)."""

    to: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")
    """Version to serve; default: the newest release before the current one never judged bad."""


class RollbackKnowledgeParams(_Params):
    """Point the service's knowledge dataset(s) back at the version its baseline was scored with."""

    dataset: str | None = None
    """Only this dataset; default: every consumed dataset that changed since the baseline."""
    to: str | None = None
    """Version id (needs ``dataset``); default: the version current when the baseline was scored."""


class ResetGpuParams(_Params):
    """Reset the instance's GPU(s) with the host's ``reset_gpu`` command, then restart the instance."""

    ready_timeout_seconds: float = Field(120, gt=0)


class DrainNodeParams(_Params):
    """Take every instance on the incident's host out of rotation and mark the node for replacement."""

    reason: str = "GPU hardware fault"


class RepinParams(_Params):
    """Install the lock's exact versions into the service's environment, then restart the instance."""

    ready_timeout_seconds: float = Field(120, gt=0)
    timeout_seconds: float = Field(600, gt=0)
    """How long pip may take."""


class RetryParams(_Params):
    """Probe again with exponential backoff until the link answers (transient loss)."""

    attempts: int = Field(5, ge=1, le=20)
    backoff_seconds: float = Field(1.0, gt=0, le=60)


class ResumeSyncParams(_Params):
    """Resume the link's interrupted artifact transfer from the bytes already received."""

    attempts: int = Field(5, ge=1, le=20)
    backoff_seconds: float = Field(0.5, gt=0, le=60)


class FailoverParams(_Params):
    """Point the link's consumers at its backup endpoint (or back at the primary)."""

    to: Literal["backup", "primary"] = "backup"


class ScaleParams(_Params):
    """Bring standby instances into rotation (or take them out)."""

    replicas: int = Field(1, ge=1, le=16)


class RestartParams(_Params):
    """Restart an instance and wait until it is healthy."""

    ready_timeout_seconds: float = Field(60, gt=0)


class RepairParams(_Params):
    """Repair the incident's dataset version into a new version that becomes current."""

    operations: list[Operation] = Field(min_length=1)
    """Applied in order; see docs/flows/data.md for each operation's parameters."""
    max_row_loss_share: float = Field(0.05, ge=0, le=1)
    """Refuse to write a version that lost more than this share of rows."""


class RollbackDatasetParams(_Params):
    """Point the dataset's consumers at an earlier version."""

    to: str | None = None
    """Version id (or unique prefix); default: the newest good version before the incident's."""
    compensating: bool = False
    """Set by llmedic when undoing a fix: a quarantined target is then skipped instead of refused."""


@dataclass(frozen=True)
class ActionSpec:
    """One action: its parameters, what undoes it, and which anomaly types may use it."""

    name: str
    params: type[_Params]
    compensation: str | None
    anomalies: frozenset[AnomalyType]
    description: str


_SERVICE = frozenset({AnomalyType.LATENCY, AnomalyType.MEMORY_LEAK, AnomalyType.GPU_FAULT})
_MODEL = frozenset({AnomalyType.ACCURACY_DROP})
_GPU = frozenset({AnomalyType.GPU_FAULT})
_DEPS = frozenset({AnomalyType.DEPENDENCY_CONFLICT})
_NET = frozenset({AnomalyType.NETWORK_INTERRUPTION})
_DATA = frozenset({AnomalyType.DATA_MISSING, AnomalyType.DATA_FORMAT, AnomalyType.DATA_QUALITY})

ACTIONS: dict[str, ActionSpec] = {
    spec.name: spec
    for spec in (
        ActionSpec(
            "set_concurrency",
            SetConcurrencyParams,
            "set_concurrency",
            frozenset({AnomalyType.LATENCY, AnomalyType.MEMORY_LEAK, AnomalyType.GPU_FAULT}),
            "lower the instance's concurrency limit (sheds load; the old limit is restored on rollback)",
        ),
        ActionSpec(
            "restart_instance",
            RestartParams,
            "drain_instance",
            _SERVICE,
            "restart the instance and wait for /health (rollback keeps it out of rotation)",
        ),
        ActionSpec(
            "rolling_restart",
            RollingRestartParams,
            None,
            frozenset({AnomalyType.MEMORY_LEAK}),
            "restart every in-rotation instance one at a time, each drained first and back only once "
            "healthy; never more than one out at once (a restart cannot be undone; verification decides)",
        ),
        ActionSpec(
            "switch_model",
            SwitchModelParams,
            "switch_model",
            frozenset({AnomalyType.LATENCY}),
            "serve another model version (e.g. quantised) on every in-rotation instance, one at a time "
            "(rollback switches each back to the version it served)",
        ),
        ActionSpec(
            "rollback_model",
            RollbackModelParams,
            "rollback_model",
            _MODEL,
            "serve the last good model version on every in-rotation instance, one at a time, record "
            "the release and mark the bad version (rollback switches each instance back)",
        ),
        ActionSpec(
            "rollback_knowledge",
            RollbackKnowledgeParams,
            "rollback_knowledge",
            _MODEL,
            "point the service's knowledge dataset(s) back at the version its baseline was scored "
            "with (rollback returns each to the version it had)",
        ),
        ActionSpec(
            "reset_gpu",
            ResetGpuParams,
            "drain_instance",
            _GPU,
            "run the host's allowlisted reset_gpu command for the instance's GPU(s) (drained first), then "
            "restart the instance and wait for /health (rollback keeps it out of rotation)",
        ),
        ActionSpec(
            "drain_node",
            DrainNodeParams,
            None,
            _GPU,
            "take every instance on the host out of rotation (refused if that would leave the service "
            "without a healthy instance) and record the node for replacement",
        ),
        ActionSpec(
            "repin_to_lock",
            RepinParams,
            "repin_to_lock",
            _DEPS,
            "pip-install the lock file's exact versions into the service's environment (offline from the "
            "wheelhouse when declared) and restart the instance (rollback reinstalls the versions it had)",
        ),
        ActionSpec(
            "retry_with_backoff",
            RetryParams,
            None,
            _NET,
            "probe the link again with exponential backoff until it answers (nothing is changed)",
        ),
        ActionSpec(
            "resume_sync",
            ResumeSyncParams,
            None,
            _NET,
            "resume the link's interrupted artifact transfer from the bytes received (HTTP Range), "
            "verify its SHA-256 and move it into place atomically",
        ),
        ActionSpec(
            "failover",
            FailoverParams,
            "failover",
            _NET,
            "point the link's consumers at its backup endpoint (failover_command, or the active-endpoint "
            "record); rollback points them back",
        ),
        ActionSpec(
            "scale_out",
            ScaleParams,
            "scale_in",
            frozenset({AnomalyType.LATENCY}),
            "bring standby instances into rotation (rollback takes them out again)",
        ),
        ActionSpec(
            "scale_in",
            ScaleParams,
            None,
            frozenset(),
            "take instances out of rotation (compensation of scale_out)",
        ),
        ActionSpec(
            "drain_instance",
            NoParams,
            "undrain_instance",
            _SERVICE,
            "take the instance out of rotation",
        ),
        ActionSpec(
            "repair_dataset",
            RepairParams,
            "rollback_dataset",
            _DATA,
            "write a repaired copy of the bad version as a new version and make it current "
            "(rollback points consumers back at the version they had before)",
        ),
        ActionSpec(
            "rollback_dataset",
            RollbackDatasetParams,
            "rollback_dataset",
            _DATA,
            "point consumers at an earlier good version (rollback returns to the one before, unless it is quarantined)",
        ),
        ActionSpec(
            "undrain_instance",
            NoParams,
            None,
            frozenset(),
            "put the instance back into rotation",
        ),
    )
}


def actions_for(anomaly: AnomalyType) -> dict[str, ActionSpec]:
    """Actions a playbook for ``anomaly`` may name."""
    return {n: s for n, s in ACTIONS.items() if anomaly in s.anomalies}
