"""The blast-radius limit: llmedic never drains, restarts or resets more than
``limits.max_share_acted`` of a service's instances within ``limits.window_minutes``, counted over
every concurrent incident (after NVIDIA NVSentinel, which stops quarantining above half its nodes in
five minutes).

The count is shared state: every act is a row of the state store's ``blast_radius`` table, and
checking the share and recording the act is one write transaction — ``BEGIN IMMEDIATE`` on SQLite
(the write lock is held from the first read), a transaction-scoped advisory lock per service on
PostgreSQL — so two flow runs racing for the last slot, in two processes or on two hosts, cannot
both get it: the second one sees the first one's row and is refused.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import sqlalchemy as sa

from llmedic.config import EnvironmentFile, InstanceConfig, LimitsConfig, ServiceConfig, Settings
from llmedic.errors import BlastRadiusExceeded
from llmedic.incident import utcnow
from llmedic.store.base import utc
from llmedic.store.db import Store
from llmedic.store.tables import blast_radius

__all__ = ["Act", "BlastRadius", "Claim", "limit_acts"]


@dataclass(frozen=True)
class Act:
    """One recorded drain, restart or reset."""

    service: str
    instance: str
    incident_id: str
    action: str
    at: datetime


@dataclass(frozen=True)
class Claim:
    """What a granted claim found and recorded."""

    acted: tuple[str, ...]
    """Distinct instances of the service acted on within the window, this claim's included."""
    total: int
    """The service's instances (``instances:``, standby excluded)."""
    limit: float
    window_minutes: float

    @property
    def share(self) -> float:
        return len(self.acted) / self.total if self.total else 0.0


def _lock_key(service: str) -> int:
    """A stable signed 64-bit advisory-lock key for ``service`` (PostgreSQL)."""
    return int.from_bytes(
        hashlib.sha256(f"llmedic-blast-radius:{service}".encode()).digest()[:8], "big", signed=True
    )


class BlastRadius:
    """The ledger of acts in one state store, and the check every drain, restart and reset passes."""

    def __init__(self, store: Store, limits: LimitsConfig) -> None:
        self.store, self.limits = store, limits

    def claim(
        self,
        service: ServiceConfig,
        instances: Sequence[str],
        *,
        incident_id: str,
        action: str,
        fleet: bool = False,
        now: datetime | None = None,
    ) -> Claim:
        """Record that ``action`` of ``incident_id`` acts on ``instances`` of ``service`` — unless
        that takes the share of distinct instances acted on within the window above the limit:
        then nothing is recorded and :class:`BlastRadiusExceeded` says the limit, count and window.
        Acting again on an instance already counted within the window is always allowed.

        ``fleet``: one approved fix that acts on every instance in turn, never more than one out at
        once (``rolling_restart``, behind its canary). Its own acts are recorded, so other incidents
        are limited after it, but only *other* incidents' acts count against it: it is refused when
        another incident acted on the service within the window (it never piles onto them)."""
        at = utc(now or utcnow())
        since = at - timedelta(minutes=self.limits.window_minutes)
        total = len(service.instances)
        wanted = list(dict.fromkeys(instances))
        with self.store.write() as conn:
            if self.store.postgres:
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key(service.name)})
            rows = conn.execute(
                sa.select(blast_radius.c.instance, blast_radius.c.incident_id, blast_radius.c.action)
                .where(blast_radius.c.service == service.name, blast_radius.c.at >= since)
                .order_by(blast_radius.c.seq)
            ).all()
            before = list(dict.fromkeys(r.instance for r in rows))
            acted = tuple(dict.fromkeys([*before, *wanted]))
            new = [i for i in wanted if i not in before]
            others = [r for r in rows if r.incident_id != incident_id]
            over = (
                bool(others)
                if fleet
                else bool(new and total and len(acted) / total > self.limits.max_share_acted)
            )
            if over:
                by = sorted({f"{r.instance} ({r.action}, incident {r.incident_id})" for r in others or rows})
                if fleet:
                    raise BlastRadiusExceeded(
                        f"blast-radius limit: {action} acts on every instance of service "
                        f"{service.name!r}, and other incidents acted on {len({r.instance for r in others})} "
                        f"of its {total} instances within {self.limits.window_minutes:g} min "
                        f"(limits.max_share_acted {self.limits.max_share_acted:g}): {'; '.join(by)}",
                        hint="a human decides: let the other incidents finish first",
                    )
                raise BlastRadiusExceeded(
                    f"blast-radius limit: {action} on {', '.join(new)} would make {len(acted)} of "
                    f"{total} instances of service {service.name!r} acted on within "
                    f"{self.limits.window_minutes:g} min ({len(acted) / total:.0%}), above "
                    f"limits.max_share_acted {self.limits.max_share_acted:g}; already acted on: "
                    f"{'; '.join(by) or 'none'}",
                    hint="a human decides: the other incidents' instances are out or restarting; wait for "
                    "them or act by hand (raise limits.max_share_acted in llmedic.yaml only if the fleet "
                    "can take it)",
                )
            if new and not total:
                raise BlastRadiusExceeded(
                    f"blast-radius limit: service {service.name!r} declares no instances to count "
                    f"{action} on {', '.join(new)} against",
                    hint="declare the service's instances: in llmedic.yaml",
                )
            conn.execute(
                blast_radius.insert(),
                [
                    {
                        "service": service.name,
                        "instance": i,
                        "incident_id": incident_id,
                        "action": action,
                        "at": at,
                    }
                    for i in wanted
                ],
            )
        return Claim(acted, total, self.limits.max_share_acted, self.limits.window_minutes)

    def forget(self) -> int:
        """Clear the ledger (the game day between independent scenarios); the number of acts forgotten."""
        with self.store.write() as db:
            return int(db.execute(sa.delete(blast_radius)).rowcount or 0)

    def acts(self, service: str, *, since: datetime | None = None) -> list[Act]:
        """The recorded acts on ``service`` (oldest first), within the window unless ``since``."""
        start = utc(since) if since else utcnow() - timedelta(minutes=self.limits.window_minutes)
        with self.store.read() as conn:
            rows = conn.execute(
                sa.select(blast_radius)
                .where(blast_radius.c.service == service, blast_radius.c.at >= start)
                .order_by(blast_radius.c.seq)
            ).all()
        return [Act(r.service, r.instance, r.incident_id, r.action, utc(r.at)) for r in rows]


class _Facts(Protocol):
    @property
    def incident_id(self) -> str: ...
    def settings(self) -> Settings: ...


class _Acting(Protocol):
    """What :func:`limit_acts` reads (an action's context, or a step's runtime)."""

    @property
    def ctx(self) -> _Facts: ...
    @property
    def env(self) -> EnvironmentFile: ...
    @property
    def service(self) -> ServiceConfig: ...


def limit_acts(
    rt: _Acting, instances: Sequence[InstanceConfig], action: str, *, fleet: bool = False
) -> Claim:
    """Claim ``instances`` for ``action`` of the incident behind ``rt`` in its state store (see
    :meth:`BlastRadius.claim`); call it before draining, restarting or resetting anything."""
    ledger = BlastRadius(Store.from_settings(rt.ctx.settings()), rt.env.limits)
    return ledger.claim(
        rt.service, [i.name for i in instances], incident_id=rt.ctx.incident_id, action=action, fleet=fleet
    )
