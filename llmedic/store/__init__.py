"""The state store: one database (SQLite under ``LLMEDIC_HOME`` by default, PostgreSQL by URL) for
incidents, the knowledge base, review incidents, the model registry, the audit history and the
receiver's outbox; Alembic migrations keep its schema current. Dataset bytes and rendered reports
stay files (:mod:`llmedic.store.files`).

* :mod:`llmedic.store.db` — :class:`Store`: engine and transactions from a URL, migrations on open;
* :mod:`llmedic.store.tables` — the tables; :mod:`llmedic.store.migrations` — their revisions;
* repositories: :mod:`~llmedic.store.incidents`, :mod:`~llmedic.store.knowledge`;
  the registry, audit history, review incidents and outbox keep their modules and use the same tables;
* :mod:`llmedic.store.importer` — ``llmedic store import HOME``, a file-based home brought over.
"""

from __future__ import annotations

from llmedic.store.db import STORE_FILE, Store

__all__ = ["STORE_FILE", "Store"]
