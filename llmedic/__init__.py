"""llmedic: Prefect-orchestrated remediation playbooks for domain-specific LLM services.

The public API — what a playbook author, an operator's script or an extension imports — is the
names below, importable from ``llmedic`` itself::

    from llmedic import AnomalyType, IncidentStore, load_environment, settings_from_env

    settings = settings_from_env()
    env = load_environment(settings=settings)
    for incident in IncidentStore.from_settings(settings).all():
        ...

Everything else is internal and may move between releases. Names are resolved on first use
(:pep:`562`), so ``import llmedic.x`` stays as light as the module ``x`` itself: a flow run's
start-up must not pay for the whole package (see docs/architecture.md for the tree).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name → the module that defines it
_PUBLIC: dict[str, str] = {
    # the catalogue of anomaly types and their teams
    "AnomalyType": "llmedic.catalog",
    "Category": "llmedic.catalog",
    "Risk": "llmedic.catalog",
    "Team": "llmedic.catalog",
    # settings and the environment file (llmedic.yaml)
    "Settings": "llmedic.config",
    "settings_from_env": "llmedic.config",
    "EnvironmentFile": "llmedic.config",
    "load_environment": "llmedic.config",
    # alerts, incidents and their records
    "Alert": "llmedic.alerts",
    "Incident": "llmedic.incident",
    "IncidentRequest": "llmedic.incident",
    "Outcome": "llmedic.incident",
    "Step": "llmedic.incident",
    "StepResult": "llmedic.incident",
    # playbooks, the anomaly homes and the fix-action catalogue
    "Playbook": "llmedic.playbook",
    "load_playbook": "llmedic.playbook",
    "Home": "llmedic.anomalies.base",
    "home_of": "llmedic.anomalies",
    "action": "llmedic.actions.catalogue",
    "get_action": "llmedic.actions.catalogue",
    "actions_for": "llmedic.actions.catalogue",
    # the state store and its repositories
    "Store": "llmedic.store.db",
    "IncidentStore": "llmedic.store.incidents",
    "KnowledgeBase": "llmedic.store.knowledge",
    "ModelRegistry": "llmedic.registry",
    # the one error tree
    "LlmedicError": "llmedic.errors",
}

__all__ = [
    "Alert",
    "AnomalyType",
    "Category",
    "EnvironmentFile",
    "Home",
    "Incident",
    "IncidentRequest",
    "IncidentStore",
    "KnowledgeBase",
    "LlmedicError",
    "ModelRegistry",
    "Outcome",
    "Playbook",
    "Risk",
    "Settings",
    "Step",
    "StepResult",
    "Store",
    "Team",
    "__version__",
    "action",
    "actions_for",
    "get_action",
    "home_of",
    "load_environment",
    "load_playbook",
    "settings_from_env",
]

if TYPE_CHECKING:
    from llmedic.actions.catalogue import action, actions_for, get_action
    from llmedic.alerts import Alert
    from llmedic.anomalies import home_of
    from llmedic.anomalies.base import Home
    from llmedic.catalog import AnomalyType, Category, Risk, Team
    from llmedic.config import EnvironmentFile, Settings, load_environment, settings_from_env
    from llmedic.errors import LlmedicError
    from llmedic.incident import Incident, IncidentRequest, Outcome, Step, StepResult
    from llmedic.playbook import Playbook, load_playbook
    from llmedic.registry import ModelRegistry
    from llmedic.store.db import Store
    from llmedic.store.incidents import IncidentStore
    from llmedic.store.knowledge import KnowledgeBase


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'llmedic' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return list(__all__)
