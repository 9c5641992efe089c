"""The state store's tables (SQLAlchemy Core). The migrations under ``migrations/versions`` create
exactly these; a change here needs a new revision there.

Records llmedic reads whole (an incident, a review incident, a registry event) are one JSON document
per row, with the fields queries filter or sort on copied into indexed columns beside it.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

__all__ = [
    "audit_cache",
    "audit_records",
    "blast_radius",
    "incident_notices",
    "incidents",
    "kb_reports",
    "metadata",
    "outbox",
    "registry_events",
    "review_incidents",
]

metadata = sa.MetaData()

Doc = sa.JSON().with_variant(JSONB(), "postgresql")
"""A JSON document (JSONB on PostgreSQL, text on SQLite)."""
When = sa.DateTime(timezone=True)

incidents = sa.Table(
    "incidents",
    metadata,
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("anomaly", sa.String(64), nullable=False, index=True),
    sa.Column("target", sa.String(300), nullable=False, index=True),
    sa.Column("outcome", sa.String(32), nullable=False, index=True),
    sa.Column("pending", sa.Boolean, nullable=False, default=False),
    sa.Column("opened_at", When, nullable=False, index=True),
    sa.Column("flow_run_id", sa.String(64), nullable=False, index=True),
    sa.Column("doc", Doc, nullable=False),
)
"""Working copies of incidents (approvals, notifications and the pending gate are in ``doc``)."""

incident_notices = sa.Table(
    "incident_notices",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("flow_run_id", sa.String(64), nullable=False, index=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("at", When, nullable=False),
    sa.Column("detail", Doc),
)
"""Append-only notices for the incident a run handles (the alert behind it resolved; another alert
joined it: ``detail`` holds the joined alert, revision 0003)."""

kb_reports = sa.Table(
    "kb_reports",
    metadata,
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("anomaly", sa.String(64), nullable=False, index=True),
    sa.Column("target", sa.String(300), nullable=False, index=True),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("opened_at", When, nullable=False, index=True),
    sa.Column("labels", Doc, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("report_path", sa.Text, nullable=False),
    sa.Column("doc", Doc, nullable=False),
)
"""The knowledge base's index of archived incidents. ``body`` is the searchable text; SQLite indexes
it in the FTS5 table ``kb_fts`` (rowid = this table's rowid), PostgreSQL in the generated
``tsvector`` column ``search`` (both made by the migration, outside this metadata)."""

review_incidents = sa.Table(
    "review_incidents",
    metadata,
    sa.Column("id", sa.String(300), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("opened_at", When, nullable=False),
    sa.Column("doc", Doc, nullable=False),
)

registry_events = sa.Table(
    "registry_events",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("service", sa.String(200), nullable=False, index=True),
    sa.Column("event", sa.String(16), nullable=False),
    sa.Column("at", When, nullable=False),
    sa.Column("doc", Doc, nullable=False),
)
"""The model registry: append-only events per service, replayed in ``seq`` order."""

audit_records = sa.Table(
    "audit_records",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dataset", sa.String(200), nullable=False, index=True),
    sa.Column("at", When, nullable=False),
    sa.Column("doc", Doc, nullable=False),
)
"""The data audit's history: one row per dataset per audit run."""

audit_cache = sa.Table(
    "audit_cache",
    metadata,
    sa.Column("key", sa.String(400), primary_key=True),
    sa.Column("dataset", sa.String(200), nullable=False),
    sa.Column("doc", Doc, nullable=False),
)
"""Audits of immutable dataset versions, keyed by dataset, version, reference and declaration."""

blast_radius = sa.Table(
    "blast_radius",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("service", sa.String(200), nullable=False),
    sa.Column("instance", sa.String(200), nullable=False),
    sa.Column("incident_id", sa.String(200), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("at", When, nullable=False),
    sa.Index("blast_radius_service_at", "service", "at"),
)
"""Every drain, restart and reset llmedic did to an instance (``llmedic.limits``): the
blast-radius limit counts the distinct instances of a service acted on within its window."""

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("key", sa.Text, nullable=False, unique=True),
    sa.Column("dedup_key", sa.Text, nullable=False),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("anomaly", sa.Text),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("alert", sa.Text, nullable=False),
    sa.Column("received_at", sa.Float(53), nullable=False),
    sa.Column("seen", sa.Integer, nullable=False, server_default="1"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt", sa.Float(53), nullable=False, server_default="0"),
    sa.Column("flow_run_id", sa.Text),
    sa.Column("dispatched_at", sa.Float(53)),
    sa.Column("error", sa.Text),
    sa.Column("raw", sa.Text),
    sa.Index("outbox_pending", "state", "next_attempt"),
    sa.Index("outbox_dedup", "dedup_key", "state"),
    sa.Index("outbox_target", "target", "state", "dispatched_at"),
)
"""The receiver's durable outbox (columns as they were in ``outbox.sqlite3``)."""
