"""``limits:`` — how much of a service llmedic may disrupt, counted over every incident at once."""

from __future__ import annotations

from pydantic import Field

from llmedic.config._base import _Strict

__all__ = ["LimitsConfig"]


class LimitsConfig(_Strict):
    """The blast-radius limit (after NVIDIA NVSentinel's: no quarantining above half the nodes in
    five minutes). Drains, restarts and GPU resets of a service's instances are counted in the state
    store over every concurrent incident; an action that would take the share of distinct instances
    acted on within the window above ``max_share_acted`` is not taken: the incident escalates,
    citing the limit, the count and the window."""

    max_share_acted: float = Field(0.5, gt=0, le=1)
    """Most of a service's instances (share of its ``instances:``) llmedic drains, restarts or
    resets within ``window_minutes``; acting again on an instance already counted is free."""
    window_minutes: float = Field(5, gt=0, le=1440)
    """How far back acts count."""
