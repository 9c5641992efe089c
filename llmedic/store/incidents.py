"""Incidents in the state store: the working copy of each incident (with the approvals and
notifications it carries) as one JSON document per row, and the notices (resolved alerts) for the
incident a flow run handles.

Saving replaces the whole record; :meth:`IncidentStore.save_if_open` is the compare-and-set the
flow-run hooks and the reconciler use, so two of them racing to close one incident close it once.

An incident's *key* is the ``target`` column of its row: the instance it is about, or its service
once the incident is service-scope (its target is the service, or assess found the scope
fleet-wide: :data:`SERVICE_SCOPES`). Alerts about other instances of a service whose incident is
open join it (:meth:`IncidentStore.join`, kept in ``incident_notices`` like resolved alerts, since
the run saves the whole document).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError

from llmedic.errors import ConfigError
from llmedic.incident import Incident, JoinedAlert, Outcome
from llmedic.store.base import Repository, utc
from llmedic.store.tables import incident_notices, incidents

__all__ = ["SERVICE_SCOPES", "IncidentStore", "incident_key", "incident_row"]

SERVICE_SCOPES = frozenset({"fleet", "service"})
"""Assessment scopes that make an incident the service's: one cause for every instance."""


def incident_key(incident: Incident) -> str:
    """What the incident is keyed by: its service when it is service-scope, else its target."""
    if incident.service and (incident.target == incident.service or incident.scope in SERVICE_SCOPES):
        return incident.service
    return incident.target


def incident_row(incident: Incident) -> dict[str, Any]:
    """The row of an incident (without its id)."""
    return {
        "anomaly": incident.anomaly.value,
        "target": incident_key(incident),
        "outcome": incident.outcome.value,
        "pending": bool(incident.pending_approval) and incident.outcome == Outcome.OPEN,
        "opened_at": utc(incident.opened_at),
        "flow_run_id": incident.flow_run_id,
        # resolved_alerts live in incident_notices; the document keeps what the run recorded
        "doc": incident.model_dump(mode="json", exclude={"resolved_alerts", "joined_alerts"}),
    }


def _check_id(incident_id: str) -> str:
    if not incident_id or "/" in incident_id or incident_id.startswith(".") or len(incident_id) > 200:
        raise ConfigError(f"invalid incident id {incident_id!r}")
    return incident_id


class IncidentStore(Repository):
    """Working copies of incidents; every save is one transaction (a crash never leaves half a record)."""

    def save(self, incident: Incident) -> None:
        """Write (replace) the working copy; the alerts that joined it meanwhile are read back into
        ``incident.joined_alerts``, so the record the run archives lists them."""
        row = {"id": _check_id(incident.id), **incident_row(incident)}
        with self.store.write() as db:
            done = db.execute(sa.update(incidents).where(incidents.c.id == incident.id).values(**row))
            if done.rowcount == 0:
                db.execute(sa.insert(incidents).values(**row))
            if incident.flow_run_id:
                incident.joined_alerts = self._joined(db, incident.flow_run_id)

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

    def open_for(self, anomaly: str, key: str) -> list[Incident]:
        """Open incidents of an anomaly type keyed by ``key`` (an instance, or a service)."""
        return self._select(
            incidents.c.anomaly == anomaly,
            incidents.c.target == key,
            incidents.c.outcome == Outcome.OPEN.value,
        )

    def pending_approvals(self) -> list[Incident]:
        """Incidents waiting at an approval gate."""
        return self._select(incidents.c.pending.is_(True))

    def _with_notices(self, db: sa.Connection, incident: Incident) -> Incident:
        if incident.flow_run_id:
            incident.resolved_alerts = self._notices(db, incident.flow_run_id)
            incident.joined_alerts = self._joined(db, incident.flow_run_id)
        return incident

    @staticmethod
    def _joined(db: sa.Connection, flow_run_id: str) -> list[JoinedAlert]:
        rows = db.execute(
            sa.select(incident_notices.c.detail)
            .where(incident_notices.c.flow_run_id == flow_run_id, incident_notices.c.kind == "joined")
            .order_by(incident_notices.c.seq)
        )
        out: list[JoinedAlert] = []
        for (detail,) in rows:
            try:
                out.append(JoinedAlert.model_validate(detail))
            except ValidationError:
                continue  # a notice this version cannot read is skipped, never deleted
        return out

    def join(self, flow_run_id: str, alert: JoinedAlert) -> None:
        """Record that an alert joined the incident a run handles (no run of its own)."""
        with self.store.write() as db:
            db.execute(
                sa.insert(incident_notices).values(
                    flow_run_id=flow_run_id,
                    kind="joined",
                    at=utc(alert.at),
                    detail=alert.model_dump(mode="json"),
                )
            )

    def unjoin(self, flow_run_id: str, keys: set[str]) -> None:
        """Forget joined alerts (by outbox key) that turned out not to share the incident's cause."""
        if not keys:
            return
        with self.store.write() as db:
            rows = db.execute(
                sa.select(incident_notices.c.seq, incident_notices.c.detail).where(
                    incident_notices.c.flow_run_id == flow_run_id, incident_notices.c.kind == "joined"
                )
            ).all()
            gone = [seq for seq, detail in rows if isinstance(detail, dict) and detail.get("key") in keys]
            if gone:
                db.execute(sa.delete(incident_notices).where(incident_notices.c.seq.in_(gone)))

    def joined_alerts(self, flow_run_id: str) -> list[JoinedAlert]:
        """The alerts that joined the incident a run handles, in order."""
        with self.store.read() as db:
            return self._joined(db, flow_run_id)

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
