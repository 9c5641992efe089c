"""Review incidents: what the scheduled reviews (capacity, backups) found that needs the ops team.

They are not anomaly incidents — nothing is remediated automatically — but they are opened, routed
and closed like them: one record per finding in the state store (``review_incidents``), one per
subject and period (a second review in the same month or week updates it instead of opening
another), the ops team notified when it opens, closed by a person (``llmedic reviews close``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import sqlalchemy as sa
from pydantic import BaseModel, Field, ValidationError

from llmedic.catalog import Team
from llmedic.config import EnvironmentFile
from llmedic.errors import ConfigError, DataStoreError
from llmedic.incident import utcnow
from llmedic.notify import notify_team
from llmedic.store.base import Repository, utc
from llmedic.store.tables import review_incidents

__all__ = ["ReviewIncident", "ReviewIncidents"]


class ReviewIncident(BaseModel):
    """One open (or closed) finding of a scheduled review."""

    id: str
    kind: Literal["capacity", "backup"]
    subject: str
    """The service (capacity) or the backed-up artifact (backup)."""
    period: str
    """``2026-11`` (capacity, monthly) or ``2026-W48`` (backups, weekly)."""
    title: str
    findings: list[str]
    report_path: str | None = None
    opened_at: datetime
    updated_at: datetime
    status: Literal["open", "closed"] = "open"
    closed_by: str | None = None
    closed_at: datetime | None = None
    notifications: list[str] = Field(default_factory=list)


class ReviewIncidents(Repository):
    """The review incidents of a state store."""

    @staticmethod
    def _check(rid: str) -> str:
        if not rid or "/" in rid or rid.startswith(".") or len(rid) > 300:
            raise ConfigError(f"invalid review incident id {rid!r}")
        return rid

    @staticmethod
    def _parse(rid: str, doc: object) -> ReviewIncident:
        try:
            return ReviewIncident.model_validate(doc)
        except ValidationError as exc:
            raise DataStoreError(
                f"review incident {rid!r}: unreadable ({str(exc).splitlines()[0]})"
            ) from None

    def _find(self, rid: str) -> ReviewIncident | None:
        with self.store.read() as db:
            doc = db.execute(
                sa.select(review_incidents.c.doc).where(review_incidents.c.id == self._check(rid))
            ).scalar_one_or_none()
        return None if doc is None else self._parse(rid, doc)

    def get(self, rid: str) -> ReviewIncident:
        """One record."""
        found = self._find(rid)
        if found is None:
            raise ConfigError(f"no review incident {rid!r}", hint="`llmedic reviews list --all` shows them")
        return found

    def all(self, status: str | None = None) -> list[ReviewIncident]:
        """Every record (newest first), optionally only ``open`` or ``closed`` ones."""
        q = sa.select(review_incidents.c.id, review_incidents.c.doc)
        if status is not None:
            q = q.where(review_incidents.c.status == status)
        with self.store.read() as db:
            rows = db.execute(q.order_by(review_incidents.c.opened_at.desc())).all()
        return [self._parse(rid, doc) for rid, doc in rows]

    def _save(self, rec: ReviewIncident) -> None:
        row = {
            "kind": rec.kind,
            "status": rec.status,
            "opened_at": utc(rec.opened_at),
            "doc": rec.model_dump(mode="json"),
        }
        with self.store.write() as db:
            done = db.execute(
                sa.update(review_incidents).where(review_incidents.c.id == self._check(rec.id)).values(**row)
            )
            if done.rowcount == 0:
                db.execute(sa.insert(review_incidents).values(id=rec.id, **row))

    def open(
        self,
        env: EnvironmentFile,
        *,
        kind: Literal["capacity", "backup"],
        subject: str,
        period: str,
        title: str,
        findings: list[str],
        report_path: str | None,
    ) -> tuple[ReviewIncident, bool]:
        """Open the incident for (kind, subject, period), or update the one already open; the ops
        team is notified when it opens. Returns (record, newly opened)."""
        rid = f"{kind}-{subject}-{period}".replace("/", "_")
        now = utcnow()
        found = self._find(rid)
        if found is not None and found.status == "open":
            rec = found.model_copy(
                update={"findings": findings, "report_path": report_path, "updated_at": now}
            )
            self._save(rec)
            return rec, False
        rec = ReviewIncident(
            id=rid,
            kind=kind,
            subject=subject,
            period=period,
            title=title,
            findings=findings,
            report_path=report_path,
            opened_at=now,
            updated_at=now,
        )
        line = notify_team(env, Team.OPS, f"[llmedic] [review] {rid}: {title}; " + "; ".join(findings[:3]))
        rec.notifications.append(line)
        self._save(rec)
        return rec, True

    def close(self, rid: str, *, by: str) -> ReviewIncident:
        """Close a record (kept, never deleted)."""
        rec = self.get(rid).model_copy(update={"status": "closed", "closed_by": by, "closed_at": utcnow()})
        self._save(rec)
        return rec
