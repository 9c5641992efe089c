"""The registry of remediation actions: name → typed function, params model, compensation.

An action is what a fix *does* to production: one function taking its validated params model and
the :class:`~llmedic.actions.context.ActionContext`, returning an :class:`ActionOutcome`. Each is
registered with :func:`action` beside its code, naming the action that undoes it, so a fix whose
verification fails can be compensated. Playbooks are validated against this catalogue when they are
loaded (``llmedic.playbook``); ``tasks/fix.py`` looks actions up here and runs them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from llmedic.actions.context import ActionContext
from llmedic.catalog import AnomalyType
from llmedic.errors import ControlError, PlaybookError

__all__ = [
    "ACTIONS",
    "SERVICE_ANOMALIES",
    "Action",
    "ActionOutcome",
    "NoParams",
    "Params",
    "action",
    "actions_for",
    "completes_fleet",
    "get_action",
]


SERVICE_ANOMALIES = frozenset({AnomalyType.LATENCY, AnomalyType.MEMORY_LEAK, AnomalyType.GPU_FAULT})
"""Anomaly types about a serving instance (their actions act through the service's control)."""


class Params(BaseModel):
    """Base of every action's params model: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(Params):
    """The action takes no parameters."""


@dataclass(frozen=True)
class ActionOutcome:
    """What an action did, and the parameters its compensation needs to undo it."""

    summary: str
    """One line: what changed (recorded on the incident, shown in reports)."""
    undo: Params | None = None
    """Params of the compensating action (only the keys set are recorded); None: it takes none."""

    def undo_params(self) -> dict[str, Any]:
        """The compensation's params as the incident records them."""
        return self.undo.model_dump(mode="json", exclude_unset=True) if self.undo is not None else {}


Run = Callable[[Any, ActionContext], ActionOutcome]
F = TypeVar("F", bound=Run)


@dataclass(frozen=True)
class Action:
    """One registered action."""

    name: str
    params: type[Params]
    """What a playbook may set (``fixes[].params``), checked when the playbook is loaded."""
    run: Run = field(repr=False)
    compensation: str | None
    """The action that undoes this one (None: it cannot be undone; verification decides)."""
    anomalies: frozenset[AnomalyType]
    """Anomaly types whose playbooks may name it (empty: only ever run as a compensation)."""
    description: str
    accepts: type[Params]
    """What the function receives: ``params``, or a subclass adding the state a compensation
    passes back (e.g. the versions each instance served before)."""
    fleet: bool = False
    """It acts on every in-rotation instance (``rt.in_rotation()``): ``tasks/fix.py`` applies it to
    one canary instance first, verifies it there, then applies it to the rest."""

    def bind(self, raw: Mapping[str, Any]) -> Params:
        """``raw`` (a fix's params, or a recorded compensation's) as the model the function takes."""
        try:
            return self.accepts.model_validate(dict(raw))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(params)'}: {e['msg']}"
                for e in exc.errors(include_url=False)
            )
            raise PlaybookError(f"action {self.name!r}: invalid params: {problems}") from None

    def __call__(self, raw: Mapping[str, Any], rt: ActionContext) -> ActionOutcome:
        """Run the action with ``raw`` params against ``rt``."""
        return self.run(self.bind(raw), rt)


ACTIONS: dict[str, Action] = {}
"""Every registered action by name (filled when ``llmedic.actions`` is imported)."""


def action(
    name: str,
    *,
    params: type[Params],
    compensation: str | None,
    anomalies: Iterable[AnomalyType],
    description: str,
    accepts: type[Params] | None = None,
    fleet: bool = False,
) -> Callable[[F], F]:
    """Register the decorated function as the action ``name``."""

    def register(fn: F) -> F:
        if name in ACTIONS:
            raise ValueError(f"action {name!r} is registered twice")
        if accepts is not None and not issubclass(accepts, params):
            raise TypeError(f"action {name!r}: accepts must extend {params.__name__}")
        ACTIONS[name] = Action(
            name=name,
            params=params,
            run=fn,
            compensation=compensation,
            anomalies=frozenset(anomalies),
            description=description,
            accepts=accepts or params,
            fleet=fleet,
        )
        return fn

    return register


def get_action(name: str) -> Action:
    """The action called ``name``; an error naming the valid ones otherwise."""
    try:
        return ACTIONS[name]
    except KeyError:
        raise ControlError(
            f"no action named {name!r}", hint=f"known actions: {', '.join(sorted(ACTIONS))}"
        ) from None


def actions_for(anomaly: AnomalyType) -> dict[str, Action]:
    """Actions a playbook for ``anomaly`` may name."""
    return {n: a for n, a in ACTIONS.items() if anomaly in a.anomalies}


def check_compensations() -> None:
    """Every compensation names a registered action (run once the catalogue is filled)."""
    missing = {
        a.name: a.compensation for a in ACTIONS.values() if a.compensation and a.compensation not in ACTIONS
    }
    if missing:
        raise RuntimeError(f"actions name compensations that are not registered: {missing}")


def completes_fleet(rt: ActionContext) -> bool:
    """False while a fleet action runs on its canary only (``tasks/fix.py``): what it records about
    the whole service (a release in the model registry) waits until the rest are done."""
    return bool(getattr(rt, "completes_fleet", True))
