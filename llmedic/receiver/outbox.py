"""The durable outbox: every alert of an accepted body is written here (the ``outbox`` table of the
state store: SQLite with WAL and synchronous=FULL, or PostgreSQL) before the receiver answers 2xx;
the dispatcher drains it into Prefect runs.

One row per *notification key* (the alert's idempotency key plus its status), so Alertmanager's
retries and HA duplicates of one notification never make a second row, and a crash between the 2xx
and the dispatch only delays the run: pending rows are replayed on restart. Alerts that cannot be
acted on are rows too, never dropped: ``invalid`` (kept as received, with the reason) and
``unknown-target`` (a target ``llmedic.yaml`` does not declare). A row whose dispatch keeps failing
goes ``dead`` after ``receiver.max_dispatch_attempts`` and waits for ``llmedic alerts retry``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from llmedic.alerts import Alert, Received
from llmedic.config import Settings
from llmedic.errors import ConfigError, OutboxError, StoreError
from llmedic.store import Store
from llmedic.store.tables import outbox

__all__ = ["RETRYABLE", "STATES", "Intake", "Outbox", "OutboxRow"]

STATES = (
    "pending",
    "started",
    "duplicate",
    "joined",
    "attached",
    "throttled",
    "unrouted",
    "invalid",
    "unknown-target",
    "dead",
)
"""Every state of a row. ``pending`` waits for the dispatcher; the others are where it ended
(``joined``: the alert joined the open incident of its service, see ``receiver/grouping.py``)."""
RETRYABLE = ("dead", "throttled", "unknown-target")
"""States ``llmedic alerts retry`` re-queues (an ``invalid`` row has no alert to dispatch)."""


@dataclass(frozen=True)
class Intake:
    """One alert of a body as the outbox stores it, with the state the receiver judged."""

    key: str
    dedup_key: str
    target: str
    anomaly: str | None
    status: str
    state: str
    alert: Alert | None
    raw: str
    reason: str | None

    @classmethod
    def judge(cls, received: Received, known_target: Callable[[str], bool]) -> Intake:
        """``invalid`` (unusable), ``unrouted`` (no anomaly type), ``unknown-target`` (nothing in
        ``llmedic.yaml`` has that name) or ``pending`` (to dispatch)."""
        alert = received.alert
        if alert is None:
            # No alert, so no idempotency key: the JSON itself is the identity, so a sender's retry
            # of the same body bumps ``seen`` instead of adding a row.
            digest = hashlib.sha256(received.raw.encode()).hexdigest()[:32]
            key = f"invalid:{received.source}:{digest}"
            return cls(
                key,
                key,
                received.target,
                None,
                received.status,
                "invalid",
                None,
                received.raw,
                received.problem,
            )
        state, reason = "pending", None
        if alert.anomaly is None:
            state = "unrouted"
        elif not known_target(alert.target):
            state = "unknown-target"
            reason = f"target {alert.target!r} is not an instance, service, dataset or network link of llmedic.yaml"
        return cls(
            Outbox.notification_key(alert),
            alert.dedup_key,
            alert.target,
            alert.anomaly.value if alert.anomaly else None,
            alert.status,
            state,
            alert,
            received.raw,
            reason,
        )


@dataclass(frozen=True)
class OutboxRow:
    """One stored notification."""

    id: int
    key: str
    dedup_key: str
    target: str
    anomaly: str | None
    status: str
    state: str
    alert: Alert | None
    """The normalised alert; ``None`` for an ``invalid`` row (see :attr:`raw`)."""
    received_at: float
    seen: int
    attempts: int
    flow_run_id: str | None
    error: str | None
    raw: str | None
    """The alert's JSON as received (``None`` in rows written before the receiver kept it)."""


class Outbox:
    """The outbox shared by the receiver (writes) and the dispatcher (drains).

    It is the ``outbox`` table of a state store (:class:`~llmedic.store.Store`): ``Outbox(path)``
    a SQLite file, ``Outbox(url="postgresql://...")`` PostgreSQL (several receivers behind a load
    balancer), ``Outbox(store=...)`` a store already open. Database errors become
    :class:`~llmedic.errors.OutboxError` here, the one seam (the receiver answers 503).
    """

    def __init__(
        self, path: Path | None = None, *, url: str | None = None, store: Store | None = None
    ) -> None:
        if sum(x is not None for x in (path, url, store)) != 1:
            raise ValueError("give the outbox a SQLite path, a database url or a store")
        self.path = path
        self.url = url
        try:
            self.store = store or Store.open(url or str(path))
        except StoreError as exc:
            raise _translate(exc) from None
        self.postgres = self.store.postgres

    @classmethod
    def from_settings(cls, settings: Settings) -> Outbox:
        """The outbox the settings name: ``LLMEDIC_OUTBOX_URL`` if set (a database of its own, as
        before the state store), else the state store's."""
        if settings.outbox_url is not None:
            return cls(url=settings.outbox_url.get_secret_value())
        try:
            return cls(store=Store.from_settings(settings))
        except StoreError as exc:
            raise _translate(exc) from None

    @property
    def where(self) -> str:
        """Where the rows are (without credentials)."""
        return self.store.where

    @contextmanager
    def _tx(self, write: bool = True) -> Iterator[Connection]:
        try:
            with self.store.write() if write else self.store.read() as db:
                yield db
        except StoreError as exc:
            raise _translate(exc) from None

    @contextmanager
    def _conn(self) -> Iterator[Connection]:
        """A connection in a transaction committed on exit (for :meth:`_exec` and tests)."""
        with self._tx() as db:
            yield db

    def _exec(self, db: Connection, sql: str, args: tuple[object, ...] = ()) -> Any:
        """Run raw SQL with ``?`` placeholders."""
        try:
            return db.exec_driver_sql(sql.replace("?", "%s") if self.postgres else sql, args)
        except SQLAlchemyError as exc:
            raise _translate(self.store.error(exc)) from None

    @staticmethod
    def notification_key(alert: Alert) -> str:
        """Same alert, same firing, same status → same key."""
        return f"{alert.idempotency_key}:{alert.status}"

    def accept(self, items: Sequence[Intake]) -> list[bool]:
        """Store a body's alerts in one transaction; return whether each is new — a repeat of a
        notification only bumps its row's ``seen``."""
        now = time.time()
        insert = pg_insert if self.postgres else sqlite_insert
        out: list[bool] = []
        with self._tx() as db:
            for item in items:
                values = {
                    "key": item.key,
                    "dedup_key": item.dedup_key,
                    "target": item.target,
                    "anomaly": item.anomaly,
                    "status": item.status,
                    "state": item.state,
                    "alert": item.alert.model_dump_json() if item.alert else "",
                    "received_at": now,
                    "error": item.reason,
                    "raw": item.raw,
                }
                stmt = insert(outbox).values(**values)
                db.execute(
                    stmt.on_conflict_do_update(index_elements=["key"], set_={"seen": outbox.c.seen + 1})
                )
                seen = db.execute(sa.select(outbox.c.seen).where(outbox.c.key == item.key)).scalar_one()
                out.append(seen == 1)
        return out

    _COLUMNS = (
        outbox.c.id,
        outbox.c.key,
        outbox.c.dedup_key,
        outbox.c.target,
        outbox.c.anomaly,
        outbox.c.status,
        outbox.c.state,
        outbox.c.alert,
        outbox.c.received_at,
        outbox.c.seen,
        outbox.c.attempts,
        outbox.c.flow_run_id,
        outbox.c.error,
        outbox.c.raw,
    )

    @staticmethod
    def _row(r: Any) -> OutboxRow:
        return OutboxRow(
            id=r.id,
            key=r.key,
            dedup_key=r.dedup_key,
            target=r.target,
            anomaly=r.anomaly,
            status=r.status,
            state=r.state,
            alert=Alert.model_validate_json(r.alert) if r.alert else None,
            received_at=r.received_at,
            seen=r.seen,
            attempts=r.attempts,
            flow_run_id=r.flow_run_id,
            error=r.error,
            raw=r.raw,
        )

    def _rows(
        self, *where: sa.ColumnElement[bool], order: Any = None, limit: int | None = None
    ) -> list[OutboxRow]:
        q = sa.select(*self._COLUMNS).where(*where).order_by(order if order is not None else outbox.c.id)
        with self._tx(write=False) as db:
            rows = db.execute(q.limit(limit) if limit is not None else q).all()
        return [self._row(r) for r in rows]

    def due(self, limit: int = 100, lease_seconds: float = 30.0) -> list[OutboxRow]:
        """Claim pending rows whose next attempt is due, oldest first.

        On PostgreSQL several receivers may share the outbox: rows are claimed with
        ``FOR UPDATE SKIP LOCKED`` and leased (their next attempt pushed ``lease_seconds`` ahead), so
        two dispatchers never handle the same row; a dispatcher that dies mid-row lets the lease
        expire and another one picks the row up. SQLite has one receiver, so no claim is needed.
        """
        now = time.time()
        ready = (outbox.c.state == "pending", outbox.c.next_attempt <= now)
        if not self.postgres:
            return self._rows(*ready, limit=limit)
        claim = (
            sa.select(outbox.c.id)
            .where(*ready)
            .order_by(outbox.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with self._tx() as db:
            rows = db.execute(
                sa.update(outbox)
                .where(outbox.c.id.in_(claim.scalar_subquery()))
                .values(next_attempt=now + lease_seconds)
                .returning(*self._COLUMNS)
            ).all()
        return sorted((self._row(r) for r in rows), key=lambda r: r.id)

    def mark(
        self, row_id: int, state: str, *, flow_run_id: str | None = None, error: str | None = None
    ) -> None:
        """Record what the dispatcher did with a row."""
        with self._tx() as db:
            db.execute(
                sa.update(outbox)
                .where(outbox.c.id == row_id)
                .values(
                    state=state,
                    flow_run_id=sa.func.coalesce(flow_run_id, outbox.c.flow_run_id),
                    error=error,
                    dispatched_at=time.time(),
                )
            )

    def retry_later(
        self,
        row_id: int,
        error: str,
        base: float = 1.0,
        cap: float = 60.0,
        *,
        max_attempts: int | None = None,
    ) -> float | None:
        """Count a failed attempt and back off exponentially (``base`` × 2^attempts, at most
        ``cap``); return the delay. At ``max_attempts`` failed attempts the row goes ``dead`` with
        ``error`` instead, and ``None`` is returned."""
        row = outbox.c.id == row_id
        with self._tx() as db:
            attempts = db.execute(sa.select(outbox.c.attempts).where(row)).scalar_one()
            if max_attempts is not None and attempts + 1 >= max_attempts:
                db.execute(
                    sa.update(outbox)
                    .where(row)
                    .values(
                        attempts=outbox.c.attempts + 1, state="dead", error=error, dispatched_at=time.time()
                    )
                )
                return None
            delay = min(cap, base * (2**attempts))
            db.execute(
                sa.update(outbox)
                .where(row)
                .values(attempts=outbox.c.attempts + 1, next_attempt=time.time() + delay, error=error)
            )
        return float(delay)

    def hold(self, row_id: int, until: float) -> None:
        """Keep a pending row back until ``until`` (the grouping window), no attempt counted."""
        with self._tx() as db:
            db.execute(
                sa.update(outbox)
                .where(outbox.c.id == row_id, outbox.c.state == "pending")
                .values(next_attempt=until)
            )

    def pending_firing(self, anomaly: str, received_by: float) -> list[OutboxRow]:
        """Pending firing rows of an anomaly type received by a time, oldest first (the peers a
        held row may be grouped with; due or not)."""
        return self._rows(
            outbox.c.state == "pending",
            outbox.c.status == "firing",
            outbox.c.anomaly == anomaly,
            outbox.c.received_at <= received_by,
        )

    def join_pending(self, row_id: int, flow_run_id: str) -> bool:
        """Mark a still-pending row ``joined`` to a run; False when another dispatcher took it first."""
        with self._tx() as db:
            done = db.execute(
                sa.update(outbox)
                .where(outbox.c.id == row_id, outbox.c.state == "pending")
                .values(state="joined", flow_run_id=flow_run_id, error=None, dispatched_at=time.time())
            )
        return bool(done.rowcount == 1)

    def joined_to(self, flow_run_id: str) -> list[OutboxRow]:
        """Rows that joined a run's incident instead of starting one."""
        return self._rows(outbox.c.state == "joined", outbox.c.flow_run_id == flow_run_id)

    def release(self, row_ids: Sequence[int], why: str) -> None:
        """Joined rows back to ``pending`` (due now, no attempts counted): their alert turned out not
        to share the incident's cause and must get a run of its own."""
        if not row_ids:
            return
        with self._tx() as db:
            db.execute(
                sa.update(outbox)
                .where(outbox.c.id.in_(list(row_ids)), outbox.c.state == "joined")
                .values(state="pending", flow_run_id=None, attempts=0, next_attempt=0, error=why)
            )

    def requeue(self, key: str) -> OutboxRow:
        """Put a ``dead``, ``throttled`` or ``unknown-target`` row back to ``pending`` with no
        attempts counted (``llmedic alerts retry``); return it as it is now."""
        with self._tx() as db:
            found = db.execute(sa.select(outbox.c.state).where(outbox.c.key == key)).scalar_one_or_none()
            if found is None:
                raise ConfigError(
                    f"no alert with key {key!r} in the outbox {self.where}",
                    hint="`llmedic alerts list --state dead` shows the keys",
                )
            if found not in RETRYABLE:
                raise ConfigError(
                    f"alert {key!r} is {found}; only {', '.join(RETRYABLE)} alerts can be retried",
                    hint="an invalid alert cannot be dispatched: fix the sender and let it send again"
                    if found == "invalid"
                    else None,
                )
            db.execute(
                # Guarded by the state read above: a row the dispatcher moved meanwhile is left alone.
                sa.update(outbox)
                .where(outbox.c.key == key, outbox.c.state == found)
                .values(state="pending", attempts=0, next_attempt=0, error=None)
            )
        (row,) = self._rows(outbox.c.key == key)
        return row

    def _last_started(self, *where: sa.ColumnElement[bool]) -> str | None:
        q = (
            sa.select(outbox.c.flow_run_id)
            .where(*where, outbox.c.state == "started")
            .order_by(outbox.c.dispatched_at.desc(), outbox.c.id.desc())
            .limit(1)
        )
        with self._tx(write=False) as db:
            found: str | None = db.execute(q).scalar_one_or_none()
        return found

    def last_run_for(self, dedup_key: str) -> str | None:
        """The flow run started for this (anomaly, target, fingerprint), if any."""
        return self._last_started(outbox.c.dedup_key == dedup_key)

    def last_run_for_target(self, anomaly: str, target: str) -> str | None:
        """The latest flow run started for this anomaly type on this target, if any.

        Latest by *dispatch* time: after an outage rows are dispatched in retry order, not in the
        order they arrived, so the newest row is not always the newest run (ordering by row id once
        let a second run start while the first was still open — found by the soak test)."""
        return self._last_started(outbox.c.anomaly == anomaly, outbox.c.target == target)

    def _count(self, *where: sa.ColumnElement[bool]) -> int:
        with self._tx(write=False) as db:
            return int(db.execute(sa.select(sa.func.count()).select_from(outbox).where(*where)).scalar_one())

    def runs_since(self, target: str, since: float) -> int:
        """Runs started for a target since a time (the per-target budget)."""
        return self._count(
            outbox.c.target == target, outbox.c.state == "started", outbox.c.dispatched_at >= since
        )

    def rows(self, state: str | None = None, limit: int = 1000) -> list[OutboxRow]:
        """Rows, newest first (optionally in one state)."""
        where = () if state is None else (outbox.c.state == state,)
        return self._rows(*where, order=outbox.c.id.desc(), limit=limit)

    def depth(self) -> int:
        """Rows still waiting to be dispatched."""
        return self._count(outbox.c.state == "pending")


def _translate(exc: StoreError) -> OutboxError:
    """A state-store error as :class:`OutboxError` (the receiver answers 503: retry later)."""
    return OutboxError(
        "outbox " + exc.message.removeprefix("state store "),
        hint="check the outbox database; alerts are retried by the sender",
    )
