"""Incidents in the state store: the working copy of each incident (with the approvals and
notifications it carries) as one JSON document per row, and the notices (resolved alerts) for the
incident a flow run handles.

Saving replaces the whole record; :meth:`IncidentStore.save_if_open` is the compare-and-set the
flow-run hooks and the reconciler use, so two of them racing to close one incident close it once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError

from llmedic.errors import ConfigError
from llmedic.incident import Incident, Outcome
from llmedic.store.base import Repository, utc
from llmedic.store.tables import incident_notices, incidents

__all__ = ["IncidentStore", "incident_row"]


def incident_row(incident: Incident) -> dict[str, Any]:
    """The row of an incident (without its id)."""
    return {
        "anomaly": incident.anomaly.value,
        "target": incident.target,
        "outcome": incident.outcome.value,
        "pending": bool(incident.pending_approval) and incident.outcome == Outcome.OPEN,
        "opened_at": utc(incident.opened_at),
        "flow_run_id": incident.flow_run_id,
        # resolved_alerts live in incident_notices; the document keeps what the run recorded
        "doc": incident.model_dump(mode="json", exclude={"resolved_alerts"}),
    }


def _check_id(incident_id: str) -> str:
    if not incident_id or "/" in incident_id or incident_id.startswith(".") or len(incident_id) > 200:
        raise ConfigError(f"invalid incident id {incident_id!r}")
    return incident_id


class IncidentStore(Repository):
    """Working copies of incidents; every save is one transaction (a crash never leaves half a record)."""

    def save(self, incident: Incident) -> None:
        """Write (replace) the working copy."""
        row = {"id": _check_id(incident.id), **incident_row(incident)}
        with self.store.write() as db:
            done = db.execute(sa.update(incidents).where(incidents.c.id == incident.id).values(**row))
            if done.rowcount == 0:
                db.execute(sa.insert(incidents).values(**row))

    def save_if_open(self, incident: Incident) -> bool:
        """Replace the stored record only while it is still open; False (nothing written) when
        another process closed it first — the compare-and-set that makes closing happen once."""
        with self.store.write() as db:
            done = db.execute(
                sa.update(incidents)
                .where(incidents.c.id == _check_id(incident.id), incidents.c.outcome == Outcome.OPEN.value)
                .values(**incident_row(incident))
            )
        return done.rowcount == 1

    def load(self, incident_id: str) -> Incident:
        """Read one incident."""
        with self.store.read() as db:
            doc = db.execute(
                sa.select(incidents.c.doc).where(incidents.c.id == _check_id(incident_id))
            ).scalar_one_or_none()
            if doc is None:
                raise ConfigError(
                    f"no incident {incident_id!r} in {self.where}",
                    hint="`llmedic incidents list` shows the known incidents",
                )
            return self._with_notices(db, Incident.model_validate(doc))

    def _select(self, *where: sa.ColumnElement[bool]) -> list[Incident]:
        out: list[Incident] = []
        with self.store.read() as db:
            rows = db.execute(sa.select(incidents.c.doc).where(*where).order_by(incidents.c.opened_at))
            for (doc,) in rows:
                try:
                    out.append(Incident.model_validate(doc))
                except ValidationError:
                    continue  # a record this version cannot read is skipped, never deleted
            return [self._with_notices(db, i) for i in out]

    def all(self) -> list[Incident]:
        """Every incident, oldest first."""
        return self._select()

    def find_by_run(self, flow_run_id: str) -> Incident | None:
        """The incident a flow run handles."""
        found = self._select(incidents.c.flow_run_id == flow_run_id)
        return found[0] if found else None

    def pending_approvals(self) -> list[Incident]:
        """Incidents waiting at an approval gate."""
        return self._select(incidents.c.pending.is_(True))

    def _with_notices(self, db: sa.Connection, incident: Incident) -> Incident:
        if incident.flow_run_id:
            incident.resolved_alerts = self._notices(db, incident.flow_run_id)
        return incident

    @staticmethod
    def _notices(db: sa.Connection, flow_run_id: str) -> list[datetime]:
        rows = db.execute(
            sa.select(incident_notices.c.at)
            .where(incident_notices.c.flow_run_id == flow_run_id, incident_notices.c.kind == "resolved")
            .order_by(incident_notices.c.seq)
        )
        return [utc(at) for (at,) in rows]

    def attach_resolved(self, flow_run_id: str, at: datetime) -> None:
        """Record that the alert behind a run resolved (the run itself may be waiting at a gate)."""
        with self.store.write() as db:
            db.execute(
                sa.insert(incident_notices).values(flow_run_id=flow_run_id, kind="resolved", at=utc(at))
            )

    def resolved_notices(self, flow_run_id: str) -> list[datetime]:
        """When the alert behind a run was reported resolved."""
        with self.store.read() as db:
            return self._notices(db, flow_run_id)
