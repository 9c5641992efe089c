"""The flow-run state hook every anomaly flow wires: a run that ends failed, crashed or cancelled
with its incident still open closes it escalated (``llmedic.reconcile.close_escalated``).

Where Prefect runs it (prefect 3.9, read in ``flow_engine.py`` and ``runner/``): ``on_failure`` in
the flow-run process after the run is set Failed; ``on_crashed`` there too when the engine saw the
crash, and in the ``serve()`` runner when the flow-run process exited non-zero (SIGKILL, OOM);
``on_cancellation`` in the runner, after it killed a cancelled run's process. A process killed
together with its runner runs no hook at all: the reconciler in ``llmedic up`` closes those.
"""

from __future__ import annotations

import logging
from typing import Any

from prefect import Flow
from prefect.client.schemas.objects import FlowRun, State

from llmedic.config import settings_from_env
from llmedic.errors import LlmedicError
from llmedic.reconcile import close_run_incident, describe_state

__all__ = ["end_incident"]

log = logging.getLogger("llmedic.finalize")


def end_incident(flow: Flow[..., Any], flow_run: FlowRun, state: State[Any]) -> None:
    """Close the run's incident, escalated with the state's name and message, if it is still open
    (a run whose flow closed its incident itself — every escalation ends Failed — is left as is)."""
    if state.is_crashed():
        hook = "on_crashed"
    elif state.is_cancelling() or state.is_cancelled():
        hook = "on_cancellation"
    else:
        hook = "on_failure"
    run_state = describe_state(state)
    try:
        closed = close_run_incident(
            str(flow_run.id), run_state, closed_by=f"the flow's {hook} hook", settings=settings_from_env()
        )
    except LlmedicError as exc:
        # Prefect logs a hook's exception and moves on; say which incident stayed open and why, the
        # reconciler will close it on its next sweep.
        log.error(
            "flow run %s: its incident could not be closed (%s: %s)", flow_run.id, exc.code, exc.message
        )
        raise
    if closed is not None:
        log.warning("flow run %s ended %s: incident %s closed escalated", flow_run.id, state.name, closed.id)
