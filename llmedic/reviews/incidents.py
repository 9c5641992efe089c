"""Review incidents: what the scheduled reviews (capacity, backups) found that needs the ops team.

They are not anomaly incidents — nothing is remediated automatically — but they are opened, routed
and closed like them: one JSON record per finding under ``<home>/reviews/incidents/``, one per
subject and period (a second review in the same month or week updates it instead of opening
another), the ops team notified when it opens, closed by a person (``llmedic reviews close``).
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from llmedic.catalog import Team
from llmedic.config import EnvironmentFile
from llmedic.errors import ConfigError, DataStoreError
from llmedic.incident import utcnow
from llmedic.notify import notify_team

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


class ReviewIncidents:
    """The review incidents under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, rid: str) -> Path:
        if not rid or "/" in rid or rid.startswith("."):
            raise ConfigError(f"invalid review incident id {rid!r}")
        return self.root / f"{rid}.json"

    def get(self, rid: str) -> ReviewIncident:
        """One record."""
        path = self._path(rid)
        try:
            return ReviewIncident.model_validate_json(path.read_text("utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                f"no review incident {rid!r}", hint="`llmedic reviews list --all` shows them"
            ) from None
        except (OSError, ValidationError) as exc:
            raise DataStoreError(f"{path}: unreadable review incident ({str(exc).splitlines()[0]})") from None

    def all(self, status: str | None = None) -> list[ReviewIncident]:
        """Every record (newest first), optionally only ``open`` or ``closed`` ones."""
        if not self.root.is_dir():
            return []
        out = [self.get(p.stem) for p in self.root.glob("*.json")]
        return sorted(
            (r for r in out if status is None or r.status == status), key=lambda r: r.opened_at, reverse=True
        )

    def _save(self, rec: ReviewIncident) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self._path(rec.id)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(rec.model_dump_json(indent=2), encoding="utf-8")
        os.replace(tmp, path)

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
        if self._path(rid).exists():
            rec = self.get(rid)
            if rec.status == "open":
                rec = rec.model_copy(
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
