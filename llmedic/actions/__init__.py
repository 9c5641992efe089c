"""The fix-action catalogue: every remediation action a playbook may name.

One module per action or small family, each action one typed function with its params model and
its compensation named beside it, all registered in :mod:`~llmedic.actions.catalogue`:

- :mod:`~llmedic.actions.concurrency` — ``set_concurrency``
- :mod:`~llmedic.actions.restart` — ``restart_instance``, ``rolling_restart``
- :mod:`~llmedic.actions.rotation` — ``drain_instance``, ``undrain_instance``, ``scale_out``, ``scale_in``
- :mod:`~llmedic.actions.model` — ``switch_model``, ``rollback_model``
- :mod:`~llmedic.actions.knowledge` — ``rollback_knowledge``
- :mod:`~llmedic.actions.gpu` — ``reset_gpu``, ``drain_node``
- :mod:`~llmedic.actions.deps` — ``repin_to_lock``
- :mod:`~llmedic.actions.network` — ``retry_with_backoff``, ``resume_sync``, ``failover``
- :mod:`~llmedic.actions.data` — ``repair_dataset``, ``rollback_dataset``

Importing this package fills the catalogue; playbooks are checked against it when they load.
"""

from llmedic.actions import (  # noqa: F401  (importing a family registers its actions)
    concurrency,
    data,
    deps,
    gpu,
    knowledge,
    model,
    network,
    restart,
    rotation,
)
from llmedic.actions.catalogue import (
    ACTIONS,
    SERVICE_ANOMALIES,
    Action,
    ActionOutcome,
    NoParams,
    Params,
    action,
    actions_for,
    check_compensations,
    get_action,
)
from llmedic.actions.context import ActionContext, IncidentFacts

check_compensations()

__all__ = [
    "ACTIONS",
    "SERVICE_ANOMALIES",
    "Action",
    "ActionContext",
    "ActionOutcome",
    "IncidentFacts",
    "NoParams",
    "Params",
    "action",
    "actions_for",
    "get_action",
]
