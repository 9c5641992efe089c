"""``set_concurrency``: shed load by lowering an instance's concurrent-request limit."""

from __future__ import annotations

from pydantic import Field

from llmedic.actions.catalogue import SERVICE_ANOMALIES, ActionOutcome, Params, action
from llmedic.actions.context import ActionContext
from llmedic.errors import ControlError

__all__ = ["SetConcurrencyParams", "set_concurrency"]


class SetConcurrencyParams(Params):
    """Lower (or restore) the instance's concurrent-request limit."""

    factor: float = Field(0.5, gt=0, le=1)
    """New limit = max(min_limit, floor(current × factor))."""
    min_limit: int = Field(1, ge=1)
    limit: int | None = Field(None, ge=1)
    """Absolute limit; overrides factor (used by the compensation to restore the old value)."""


@action(
    "set_concurrency",
    params=SetConcurrencyParams,
    compensation="set_concurrency",
    anomalies=SERVICE_ANOMALIES,
    description="lower the instance's concurrency limit (sheds load; the old limit is restored on rollback)",
)
def set_concurrency(p: SetConcurrencyParams, rt: ActionContext) -> ActionOutcome:
    """Set the limit; the compensation restores the one before."""
    before = rt.control.state(rt.instance).concurrency_limit
    if p.limit is not None:
        new = p.limit
    elif before is None:
        raise ControlError(f"{rt.instance.name}: current concurrency limit unknown; set an absolute `limit`")
    else:
        new = max(p.min_limit, int(before * p.factor))
    rt.control.set_concurrency(rt.instance, new)
    undo = SetConcurrencyParams(limit=before) if before else SetConcurrencyParams()
    return ActionOutcome(f"concurrency limit {before} → {new}", undo)
