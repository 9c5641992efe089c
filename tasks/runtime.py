"""What every step task shares: run-scoped caching, the playbook's retries and timeouts.

The step's context, its adapters and its timer (:class:`StepContext`, :class:`Runtime`,
:class:`StepTimer`) are Prefect-free and live in ``llmedic.anomalies.runtime``, where the anomaly
homes use them; they are re-exported here for the step tasks.

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
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from prefect import Task, task
from prefect.context import TaskRunContext
from pydantic_core import to_jsonable_python

from llmedic.anomalies.runtime import Runtime, StepContext, StepTimer
from llmedic.incident import Step
from llmedic.playbook import NEVER_RETRIED, StepPolicy


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
