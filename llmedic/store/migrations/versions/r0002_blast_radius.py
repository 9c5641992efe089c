"""The blast-radius ledger: every drain, restart and reset of an instance (``llmedic.limits``).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    """Create ``blast_radius`` (idempotent: a database made at 0001 from a newer ``tables.py``,
    whose ``create_all`` already made it, keeps it)."""
    bind = op.get_bind()
    if sa.inspect(bind).has_table("blast_radius"):
        return
    op.create_table(
        "blast_radius",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("service", sa.String(200), nullable=False),
        sa.Column("instance", sa.String(200), nullable=False),
        sa.Column("incident_id", sa.String(200), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("blast_radius_service_at", "blast_radius", ["service", "at"])
