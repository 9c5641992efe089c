"""The state store's database: one SQLAlchemy engine per URL, migrated to the newest schema on open.

``sqlite:///<home>/llmedic.db`` by default (WAL, ``synchronous=FULL``, a 30 s busy timeout), or
PostgreSQL by URL (``LLMEDIC_STORE_URL=postgresql://user:pass@host/db``, driven by psycopg 3) so
that receivers and workers on several hosts share one state. Driver and SQLAlchemy errors become
:class:`~llmedic.errors.StoreError` here, the one seam (the outbox turns them into its own error).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from llmedic.errors import StoreError

if TYPE_CHECKING:
    from llmedic.config import Settings

__all__ = ["STORE_FILE", "Store", "normalise_url"]

STORE_FILE = "llmedic.db"
"""The SQLite file under ``LLMEDIC_HOME`` when no store URL is set."""
_CACHE_SIZE = 8
"""Engines kept open per process (a test session opens many homes; older engines are disposed)."""


def normalise_url(url: str) -> str:
    """``postgresql://`` → ``postgresql+psycopg://`` (the installed driver); a bare path → SQLite."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if "://" not in url:
        return f"sqlite:///{Path(url).resolve()}"
    return url


def _on_sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy's BEGIN (below) decide transactions: pysqlite's own implicit BEGIN cannot be
    # made IMMEDIATE, and a deferred transaction that reads then writes can fail without waiting.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")  # a 2xx from the receiver promises the row survives a crash
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _on_sqlite_begin(conn: Connection) -> None:
    writing = conn.get_execution_options().get("llmedic_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


class Store:
    """One database of llmedic state. Use :meth:`open`, :meth:`at` or :meth:`from_settings`
    (engines are shared per URL within a process, and the schema is upgraded once, on first open)."""

    _lock = threading.Lock()
    _open: OrderedDict[str, Store] = OrderedDict()

    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        self.postgres = self.url.startswith("postgresql")
        self.engine: Engine = self._engine()

    # ---------------------------------------------------------------- opening
    @classmethod
    def open(cls, url: str) -> Store:
        """The store at ``url``, upgraded to the newest schema."""
        key = normalise_url(url)
        with cls._lock:
            found = cls._open.get(key)
            if found is not None:
                cls._open.move_to_end(key)
                found.ensure_current()  # one query: another process may have replaced the database
                return found
            store = cls(key)
            store.migrate()
            cls._open[key] = store
            while len(cls._open) > _CACHE_SIZE:
                _, old = cls._open.popitem(last=False)
                old.engine.dispose()  # its repositories reconnect if they are used again
            return store

    @classmethod
    def at(cls, home: Path, url: str | None = None) -> Store:
        """The store of a home: ``url``, else ``LLMEDIC_STORE_URL``, else ``<home>/llmedic.db``."""
        chosen = url or os.environ.get("LLMEDIC_STORE_URL") or str(home / STORE_FILE)
        return cls.open(chosen)

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        """The store the settings name (``store_url``, else SQLite under ``home``)."""
        url = settings.store_url.get_secret_value() if settings.store_url is not None else None
        return cls.open(url or str(settings.store_path))

    def _engine(self) -> Engine:
        if self.postgres:
            return sa.create_engine(self.url, pool_pre_ping=True, connect_args={"connect_timeout": 10})
        path = Path(self.url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(self.url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _on_sqlite_connect)
        event.listen(engine, "begin", _on_sqlite_begin)
        return engine

    def revision(self) -> str | None:
        """The schema revision the database is at (None: never migrated)."""
        with self.read() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return None
            return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar_one_or_none()

    def ensure_current(self) -> None:
        """Migrate unless the database is at the newest revision already."""
        from llmedic.store.migrations import HEAD

        if self.revision() != HEAD:
            self.migrate()

    def migrate(self) -> None:
        """Upgrade the schema to the newest revision (a no-op when it is there already)."""
        from llmedic.store.migrations import upgrade

        try:
            with self.write() as conn:
                if self.postgres:  # several hosts may open a fresh database at once
                    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(1501)")
                upgrade(conn)
        except StoreError:
            raise
        except Exception as exc:
            raise self.error(exc) from exc

    # ---------------------------------------------------------------- using
    @property
    def where(self) -> str:
        """Where the state is, without credentials."""
        if self.postgres:
            return "postgresql://" + self.url.split("://", 1)[1].rsplit("@", 1)[-1]
        return self.url.removeprefix("sqlite:///")

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection in a transaction that reads."""
        try:
            with self.engine.connect() as conn, conn.begin():
                yield conn
        except SQLAlchemyError as exc:
            raise self.error(exc) from exc

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A connection in a transaction that writes: on SQLite it holds the write lock from the
        start (``BEGIN IMMEDIATE``), so a read-then-write never fails halfway; committed on exit."""
        try:
            with self.engine.connect().execution_options(llmedic_write=True) as conn, conn.begin():
                yield conn
        except SQLAlchemyError as exc:
            raise self.error(exc) from exc

    def error(self, exc: BaseException) -> StoreError:
        """A driver error as :class:`StoreError` (the database named without its password)."""
        cause = getattr(exc, "orig", None) or exc
        what = f"{type(exc).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}".strip()
        return StoreError(
            f"state store {self.where}: {what}",
            hint="check that the database (LLMEDIC_STORE_URL, default <home>/llmedic.db) is reachable and writable",
        )
