"""Alembic migrations of the state store, run in code (no ``alembic.ini``): opening a store runs
:func:`upgrade` inside its own transaction, so every process meets the newest schema."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

__all__ = ["HEAD", "upgrade"]

HEAD = "0003"
"""The newest revision."""


def config(conn: Connection | None = None) -> Config:
    """An Alembic configuration for these migrations, on ``conn`` when given."""
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent))
    cfg.attributes["connection"] = conn
    return cfg


def upgrade(conn: Connection) -> None:
    """Bring the database behind ``conn`` to :data:`HEAD` (in the caller's transaction)."""
    command.upgrade(config(conn), "head")
