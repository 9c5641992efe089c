"""Joined alerts: ``incident_notices.detail`` holds the alert that joined an open incident (one
incident per cause, ``llmedic/receiver/grouping.py``).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    """Add the nullable ``detail`` column (idempotent: a database made at 0001 from a newer
    ``tables.py``, whose ``create_all`` already made it, keeps it)."""
    bind = op.get_bind()
    if "detail" in {c["name"] for c in sa.inspect(bind).get_columns("incident_notices")}:
        return
    op.add_column("incident_notices", sa.Column("detail", sa.JSON().with_variant(JSONB(), "postgresql")))
