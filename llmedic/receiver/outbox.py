"""The durable outbox: every alert of an accepted body is written here (SQLite, WAL,
synchronous=FULL) before the receiver answers 2xx; the dispatcher drains it into Prefect runs.

One row per *notification key* (the alert's idempotency key plus its status), so Alertmanager's
retries and HA duplicates of one notification never make a second row, and a crash between the 2xx
and the dispatch only delays the run: pending rows are replayed on restart. Alerts that cannot be
acted on are rows too, never dropped: ``invalid`` (kept as received, with the reason) and
``unknown-target`` (a target ``llmedic.yaml`` does not declare). A row whose dispatch keeps failing
goes ``dead`` after ``receiver.max_dispatch_attempts`` and waits for ``llmedic alerts retry``.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmedic.alerts import Alert, Received
from llmedic.config import Settings
from llmedic.errors import ConfigError, OutboxError

__all__ = ["RETRYABLE", "STATES", "Intake", "Outbox", "OutboxRow"]

STATES = (
    "pending",
    "started",
    "duplicate",
    "attached",
    "throttled",
    "unrouted",
    "invalid",
    "unknown-target",
    "dead",
)
"""Every state of a row. ``pending`` waits for the dispatcher; the others are where it ended."""
RETRYABLE = ("dead", "throttled", "unknown-target")
"""States ``llmedic alerts retry`` re-queues (an ``invalid`` row has no alert to dispatch)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id            {id_column},
    key           TEXT NOT NULL UNIQUE,
    dedup_key     TEXT NOT NULL,
    target        TEXT NOT NULL,
    anomaly       TEXT,
    status        TEXT NOT NULL,      -- firing | resolved (what the alert said)
    state         TEXT NOT NULL,      -- one of STATES
    alert         TEXT NOT NULL,      -- the normalised Alert as JSON ('' for an invalid alert)
    received_at   DOUBLE PRECISION NOT NULL,
    seen          INTEGER NOT NULL DEFAULT 1,
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_attempt  DOUBLE PRECISION NOT NULL DEFAULT 0,
    flow_run_id   TEXT,
    dispatched_at DOUBLE PRECISION,
    error         TEXT,               -- why it is invalid / unknown-target / dead, or the last retry's error
    raw           TEXT                -- the alert's JSON as received (NULL in rows older than the column)
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (state, next_attempt);
CREATE INDEX IF NOT EXISTS outbox_dedup ON outbox (dedup_key, state);
CREATE INDEX IF NOT EXISTS outbox_target ON outbox (target, state, dispatched_at);
"""


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

    ``Outbox(path)`` is SQLite (WAL, ``synchronous=FULL``); ``Outbox(url="postgresql://...")`` is
    PostgreSQL, for several receivers behind a load balancer. Both run the same SQL. Driver errors
    become :class:`~llmedic.errors.OutboxError` here, the one seam.
    """

    def __init__(self, path: Path | None = None, *, url: str | None = None) -> None:
        if (path is None) == (url is None):
            raise ValueError("give the outbox either a SQLite path or a PostgreSQL url")
        self.path = path
        self.url = url
        self.postgres = url is not None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        id_column = "BIGSERIAL PRIMARY KEY" if self.postgres else "INTEGER PRIMARY KEY AUTOINCREMENT"
        with self._conn() as db:
            for statement in _SCHEMA.format(id_column=id_column).split(";"):
                if statement.strip():
                    self._exec(db, statement)
            self._upgrade(db)

    def _upgrade(self, db: Any) -> None:
        """Add the columns later versions use to an outbox created before them."""
        if self.postgres:
            # IF NOT EXISTS: several receivers may start at once on one database.
            self._exec(db, "ALTER TABLE outbox ADD COLUMN IF NOT EXISTS raw TEXT")
            return
        columns = {r[1] for r in self._exec(db, "PRAGMA table_info(outbox)").fetchall()}
        if "raw" not in columns:
            self._exec(db, "ALTER TABLE outbox ADD COLUMN raw TEXT")

    @classmethod
    def from_settings(cls, settings: Settings) -> Outbox:
        """The outbox the settings name (``LLMEDIC_OUTBOX_URL``, else SQLite under the home)."""
        if settings.outbox_url is not None:
            return cls(url=settings.outbox_url.get_secret_value())
        return cls(settings.outbox_path)

    @property
    def where(self) -> str:
        """Where the rows are (without credentials)."""
        if self.url is not None:
            return "postgresql://" + self.url.rsplit("@", 1)[-1]
        return str(self.path)

    def _exec(self, db: Any, sql: str, args: tuple[object, ...] = ()) -> Any:
        if self.postgres:
            sql = sql.replace("?", "%s")
        try:
            return db.execute(sql, args)
        except Exception as exc:
            raise _translate(exc, self.where) from exc

    @contextmanager
    def _conn(self) -> Iterator[Any]:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._connect()
            self._local.db = db
        yield db

    def _connect(self) -> Any:
        try:
            if self.postgres:
                import psycopg

                return psycopg.connect(self.url or "", autocommit=True, connect_timeout=10)
            db = sqlite3.connect(self.path or "", timeout=30, isolation_level=None, check_same_thread=False)
            self._exec(db, "PRAGMA journal_mode=WAL")
            self._exec(db, "PRAGMA synchronous=FULL")  # the 2xx promises the row survives a crash
            self._exec(db, "PRAGMA busy_timeout=30000")
            return db
        except Exception as exc:
            raise _translate(exc, self.where) from exc

    @staticmethod
    def notification_key(alert: Alert) -> str:
        """Same alert, same firing, same status → same key."""
        return f"{alert.idempotency_key}:{alert.status}"

    def accept(self, items: Sequence[Intake]) -> list[bool]:
        """Store a body's alerts in one transaction; return whether each is new — a repeat of a
        notification only bumps its row's ``seen``."""
        now = time.time()
        out: list[bool] = []
        with self._conn() as db:
            self._exec(db, "BEGIN" if self.postgres else "BEGIN IMMEDIATE")
            try:
                for item in items:
                    self._exec(
                        db,
                        "INSERT INTO outbox (key, dedup_key, target, anomaly, status, state, alert, received_at, "
                        "error, raw) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                        "ON CONFLICT(key) DO UPDATE SET seen = outbox.seen + 1",
                        (
                            item.key,
                            item.dedup_key,
                            item.target,
                            item.anomaly,
                            item.status,
                            item.state,
                            item.alert.model_dump_json() if item.alert else "",
                            now,
                            item.reason,
                            item.raw,
                        ),
                    )
                    out.append(self._fresh(db, item.key))
                self._exec(db, "COMMIT")
            except BaseException:
                with contextlib.suppress(Exception):
                    self._exec(db, "ROLLBACK")
                raise
        return out

    def _fresh(self, db: Any, key: str) -> bool:
        row = self._exec(db, "SELECT seen FROM outbox WHERE key = ?", (key,)).fetchone()
        return bool(row and row[0] == 1)

    _COLUMNS = (
        "id, key, dedup_key, target, anomaly, status, state, alert, received_at, seen, attempts, "
        "flow_run_id, error, raw"
    )

    @staticmethod
    def _row(r: Any) -> OutboxRow:
        return OutboxRow(
            id=r[0],
            key=r[1],
            dedup_key=r[2],
            target=r[3],
            anomaly=r[4],
            status=r[5],
            state=r[6],
            alert=Alert.model_validate_json(r[7]) if r[7] else None,
            received_at=r[8],
            seen=r[9],
            attempts=r[10],
            flow_run_id=r[11],
            error=r[12],
            raw=r[13],
        )

    def _rows(self, sql: str, args: tuple[object, ...] = ()) -> list[OutboxRow]:
        with self._conn() as db:
            rows = self._exec(db, f"SELECT {self._COLUMNS} FROM outbox " + sql, args).fetchall()
        return [self._row(r) for r in rows]

    def due(self, limit: int = 100, lease_seconds: float = 30.0) -> list[OutboxRow]:
        """Claim pending rows whose next attempt is due, oldest first.

        On PostgreSQL several receivers may share the outbox: rows are claimed with
        ``FOR UPDATE SKIP LOCKED`` and leased (their next attempt pushed ``lease_seconds`` ahead), so
        two dispatchers never handle the same row; a dispatcher that dies mid-row lets the lease
        expire and another one picks the row up. SQLite has one receiver, so no claim is needed.
        """
        now = time.time()
        if not self.postgres:
            return self._rows(
                "WHERE state = 'pending' AND next_attempt <= ? ORDER BY id LIMIT ?", (now, limit)
            )
        with self._conn() as db:
            rows = self._exec(
                db,
                f"UPDATE outbox SET next_attempt = ? WHERE id IN (SELECT id FROM outbox WHERE state = 'pending' "
                f"AND next_attempt <= ? ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED) RETURNING {self._COLUMNS}",
                (now + lease_seconds, now, limit),
            ).fetchall()
        return sorted((self._row(r) for r in rows), key=lambda r: r.id)

    def mark(
        self, row_id: int, state: str, *, flow_run_id: str | None = None, error: str | None = None
    ) -> None:
        """Record what the dispatcher did with a row."""
        with self._conn() as db:
            self._exec(
                db,
                "UPDATE outbox SET state = ?, flow_run_id = COALESCE(?, flow_run_id), error = ?, dispatched_at = ? "
                "WHERE id = ?",
                (state, flow_run_id, error, time.time(), row_id),
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
        with self._conn() as db:
            (attempts,) = self._exec(db, "SELECT attempts FROM outbox WHERE id = ?", (row_id,)).fetchone()
            if max_attempts is not None and attempts + 1 >= max_attempts:
                self._exec(
                    db,
                    "UPDATE outbox SET attempts = attempts + 1, state = 'dead', error = ?, dispatched_at = ? "
                    "WHERE id = ?",
                    (error, time.time(), row_id),
                )
                return None
            delay = min(cap, base * (2**attempts))
            self._exec(
                db,
                "UPDATE outbox SET attempts = attempts + 1, next_attempt = ?, error = ? WHERE id = ?",
                (time.time() + delay, error, row_id),
            )
        return float(delay)

    def requeue(self, key: str) -> OutboxRow:
        """Put a ``dead``, ``throttled`` or ``unknown-target`` row back to ``pending`` with no
        attempts counted (``llmedic alerts retry``); return it as it is now."""
        with self._conn() as db:
            found = self._exec(db, "SELECT state FROM outbox WHERE key = ?", (key,)).fetchone()
            if found is None:
                raise ConfigError(
                    f"no alert with key {key!r} in the outbox {self.where}",
                    hint="`llmedic alerts list --state dead` shows the keys",
                )
            if found[0] not in RETRYABLE:
                raise ConfigError(
                    f"alert {key!r} is {found[0]}; only {', '.join(RETRYABLE)} alerts can be retried",
                    hint="an invalid alert cannot be dispatched: fix the sender and let it send again"
                    if found[0] == "invalid"
                    else None,
                )
            self._exec(
                db,
                # Guarded by the state read above: a row the dispatcher moved meanwhile is left alone.
                "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt = 0, error = NULL "
                "WHERE key = ? AND state = ?",
                (key, found[0]),
            )
        (row,) = self._rows("WHERE key = ?", (key,))
        return row

    def last_run_for(self, dedup_key: str) -> str | None:
        """The flow run started for this (anomaly, target, fingerprint), if any."""
        with self._conn() as db:
            row = self._exec(
                db,
                "SELECT flow_run_id FROM outbox WHERE dedup_key = ? AND state = 'started' "
                "ORDER BY dispatched_at DESC, id DESC LIMIT 1",
                (dedup_key,),
            ).fetchone()
        return row[0] if row else None

    def last_run_for_target(self, anomaly: str, target: str) -> str | None:
        """The latest flow run started for this anomaly type on this target, if any.

        Latest by *dispatch* time: after an outage rows are dispatched in retry order, not in the
        order they arrived, so the newest row is not always the newest run (ordering by row id once
        let a second run start while the first was still open — found by the soak test)."""
        with self._conn() as db:
            row = self._exec(
                db,
                "SELECT flow_run_id FROM outbox WHERE anomaly = ? AND target = ? AND state = 'started' "
                "ORDER BY dispatched_at DESC, id DESC LIMIT 1",
                (anomaly, target),
            ).fetchone()
        return row[0] if row else None

    def runs_since(self, target: str, since: float) -> int:
        """Runs started for a target since a time (the per-target budget)."""
        with self._conn() as db:
            (count,) = self._exec(
                db,
                "SELECT COUNT(*) FROM outbox WHERE target = ? AND state = 'started' AND dispatched_at >= ?",
                (target, since),
            ).fetchone()
        return int(count)

    def rows(self, state: str | None = None, limit: int = 1000) -> list[OutboxRow]:
        """Rows, newest first (optionally in one state)."""
        if state is None:
            return self._rows("ORDER BY id DESC LIMIT ?", (limit,))
        return self._rows("WHERE state = ? ORDER BY id DESC LIMIT ?", (state, limit))

    def depth(self) -> int:
        """Rows still waiting to be dispatched."""
        with self._conn() as db:
            (count,) = self._exec(db, "SELECT COUNT(*) FROM outbox WHERE state = 'pending'").fetchone()
        return int(count)


def _translate(exc: Exception, where: str) -> OutboxError:
    """sqlite3 / psycopg errors → :class:`OutboxError` (the receiver answers 503: retry later)."""
    return OutboxError(
        f"outbox {where}: {type(exc).__name__}: {exc}".strip(),
        hint="check the outbox database; alerts are retried by the sender",
    )
