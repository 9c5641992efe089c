"""What an action reads and acts through: the incident's facts and the adapters of its target.

A protocol, so that the core never imports the task layer: ``tasks.runtime.Runtime`` provides it
(built from the step's context), and a test may hand an action anything of the same shape.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from llmedic.catalog import AnomalyType
from llmedic.config import DatasetConfig, EnvironmentFile, InstanceConfig, ServiceConfig, Settings
from llmedic.registry import ModelRegistry

if TYPE_CHECKING:
    # Types only: pandas and SciPy come with the data store and the audit (imported by the data
    # actions where they are used), and naming a type must not import its adapter.
    from llmedic.adapters.control import ServiceControl
    from llmedic.adapters.datastore import DataStore
    from llmedic.anomalies.data.findings import DataAudit
    from llmedic.registry import ModelRegistry

__all__ = ["ActionContext", "IncidentFacts"]


class IncidentFacts(Protocol):
    """The incident an action runs for (``tasks.runtime.StepContext``)."""

    @property
    def incident_id(self) -> str: ...
    @property
    def anomaly(self) -> AnomalyType: ...
    @property
    def target(self) -> str:
        """What the incident is about: an instance, a dataset or a network link."""

    @property
    def version(self) -> str | None:
        """Data incidents: the dataset version the incident is about."""

    @property
    def flow_run_id(self) -> str: ...
    def settings(self) -> Settings: ...


class ActionContext(Protocol):
    """The incident and the adapters of its service, dataset or link (``tasks.runtime.Runtime``)."""

    @property
    def ctx(self) -> IncidentFacts: ...
    @property
    def env(self) -> EnvironmentFile: ...
    @property
    def service(self) -> ServiceConfig: ...
    @property
    def instance(self) -> InstanceConfig: ...
    @property
    def control(self) -> ServiceControl: ...
    @property
    def dataset(self) -> DatasetConfig: ...
    @property
    def store(self) -> DataStore: ...
    @property
    def registry(self) -> ModelRegistry: ...
    def in_rotation(self) -> list[InstanceConfig]: ...
    def audit(self, ref: str | None = None, *, fresh: bool = False, reference: bool = True) -> DataAudit: ...
    def dataset_versions(self) -> dict[str, str]: ...
