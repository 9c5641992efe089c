"""Alembic's environment: the caller hands over an open connection (see ``__init__.upgrade``)."""

from __future__ import annotations

from alembic import context

from llmedic.store.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
