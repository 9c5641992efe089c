"""The state store: incidents, knowledge base (with full-text search), review incidents, model
registry events, audit history and cache, and the receiver's outbox.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from llmedic.store import tables

revision = "0001"
down_revision = None


def upgrade() -> None:
    """Create every table of :mod:`llmedic.store.tables` that is not there yet.

    This first revision creates the tables as ``tables.py`` defines them, so that file and this
    schema are one; any later change to ``tables.py`` comes with its own revision written in
    ``op`` calls. It is idempotent: ``checkfirst`` adopts a PostgreSQL outbox made before the state store
    (``LLMEDIC_OUTBOX_URL``): its table is kept, and the ``raw`` column added if it predates it.
    """
    bind = op.get_bind()
    had_outbox = sa.inspect(bind).has_table("outbox")
    tables.metadata.create_all(bind, checkfirst=True)
    if had_outbox and "raw" not in {c["name"] for c in sa.inspect(bind).get_columns("outbox")}:
        op.add_column("outbox", sa.Column("raw", sa.Text))
    if bind.dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE kb_reports ADD COLUMN IF NOT EXISTS search tsvector "
            "GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED"
        )
        op.execute("CREATE INDEX IF NOT EXISTS kb_reports_search ON kb_reports USING GIN (search)")
    else:
        # FTS5 index of kb_reports.body by incident id; the repository writes both in one transaction.
        op.execute(
            "CREATE VIRTUAL TABLE IF NOT EXISTS kb_fts USING fts5(id UNINDEXED, body, tokenize='unicode61')"
        )
