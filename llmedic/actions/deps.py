"""``repin_to_lock``: install the lock file's exact versions into the service's environment."""

from __future__ import annotations

import tempfile
from pathlib import Path

from pydantic import Field

from llmedic.actions.catalogue import ActionOutcome, Params, action
from llmedic.actions.context import ActionContext
from llmedic.adapters.pyenv import install_pins, probe_env
from llmedic.anomalies.dependency.environment import parse_lock
from llmedic.catalog import AnomalyType
from llmedic.errors import ControlError

__all__ = ["RepinParams", "RepinUndo", "repin_to_lock"]


class RepinParams(Params):
    """Install the lock's exact versions into the service's environment, then restart the instance."""

    ready_timeout_seconds: float = Field(120, gt=0)
    timeout_seconds: float = Field(600, gt=0)
    """How long pip may take."""


class RepinUndo(RepinParams):
    """What the compensation passes: the versions the environment had (installed instead of the lock)."""

    pins: dict[str, str] = Field(default_factory=dict)


@action(
    "repin_to_lock",
    params=RepinParams,
    accepts=RepinUndo,
    compensation="repin_to_lock",
    anomalies={AnomalyType.DEPENDENCY_CONFLICT},
    description="pip-install the lock file's exact versions into the service's environment (offline from the "
    "wheelhouse when declared) and restart the instance (rollback reinstalls the versions it had)",
)
def repin_to_lock(p: RepinUndo, rt: ActionContext) -> ActionOutcome:
    """Install the lock (or the recorded ``pins``), drain and restart the instance."""
    svc = rt.service
    if svc.python is None or svc.lock_file is None:
        raise ControlError(f"service {svc.name!r} declares no python/lock_file to re-pin")
    before = probe_env(svc.python, [], timeout=120)["distributions"]
    lock = parse_lock(svc.lock_file.read_text("utf-8"), str(svc.lock_file))
    pins = dict(p.pins)
    with tempfile.TemporaryDirectory(prefix="llmedic-pins-") as tmp:
        req = Path(tmp) / "requirements.txt"
        if pins:
            req.write_text("".join(f"{n}=={v}\n" for n, v in sorted(pins.items())))
        else:
            req.write_text(svc.lock_file.read_text("utf-8"))
        install_pins(svc.python, req, svc.wheelhouse, timeout=p.timeout_seconds)
    if not rt.control.state(rt.instance).drained:
        rt.control.drain(rt.instance)
    rt.control.restart(rt.instance, ready_timeout=p.ready_timeout_seconds)
    had = {n: before[n]["version"] for n in (pins or lock) if n in before}
    changed = sorted(n for n, v in (pins or lock).items() if had.get(n) != v)
    what = "restored" if pins else "re-pinned to the lock"
    return ActionOutcome(
        f"{what}: {changed or 'nothing changed'}; {rt.instance.name} restarted", RepinUndo(pins=had)
    )
