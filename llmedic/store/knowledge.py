"""The knowledge base: archived incidents, indexed in the state store with full-text search
(SQLite FTS5, PostgreSQL ``tsvector``), and their rendered reports (``<id>.md`` for people,
``<id>.json`` for machines), which stay files in a reports location (a path or an fsspec URL).
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import sqlalchemy as sa
from pydantic import ValidationError

from llmedic.incident import Incident
from llmedic.report import render_markdown
from llmedic.store.base import Repository, utc
from llmedic.store.db import Store
from llmedic.store.files import atomic_write
from llmedic.store.tables import kb_reports

if TYPE_CHECKING:
    from llmedic.config import Settings

__all__ = ["KnowledgeBase", "kb_fts", "kb_row", "search_terms"]

kb_fts = sa.table("kb_fts", sa.column("id"), sa.column("body"))


def search_terms(text: str) -> list[str]:
    """The words of a query as both indexes split them (letters and digits; ``_`` separates)."""
    return re.findall(r"[^\W_]+", text.lower())


def _body(incident: Incident) -> str:
    return " ".join(
        [incident.title, incident.diagnosis, incident.impact]
        + [e.summary for e in incident.evidence]
        + [f"{d.choice} {d.reason}" for d in incident.decisions]
    )


def kb_row(incident: Incident, report_path: str) -> dict[str, Any]:
    """The index row of an archived incident (without its id)."""
    return {
        "anomaly": incident.anomaly.value,
        "target": incident.target,
        "outcome": incident.outcome.value,
        "opened_at": utc(incident.opened_at),
        "labels": dict(incident.alert.labels),
        "body": _body(incident),
        "report_path": report_path,
        "doc": incident.model_dump(mode="json"),
    }


class KnowledgeBase(Repository):
    """Archived incidents: a row each in the store, and their reports under :attr:`directory`."""

    def __init__(self, where: Store | Path, reports: Path | None = None) -> None:
        super().__init__(where)
        if reports is None and self.home is None:
            raise ValueError("a knowledge base on a Store needs the reports directory")
        self.directory: Path = reports if reports is not None else Path(self.home or ".") / "kb"

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        """The knowledge base of the settings' store, with its reports under ``kb_dir``."""
        kb = cls(Store.from_settings(settings), settings.kb_dir)
        kb.home = settings.home
        return kb

    def report_path(self, incident_id: str) -> Path:
        """Where an incident's Markdown report is (or will be) archived."""
        return self.directory / f"{incident_id}.md"

    def write(self, incident: Incident) -> Path:
        """Archive an incident (index row, search text, both report files); returns the Markdown
        report's path."""
        md = self.report_path(incident.id)
        atomic_write(self.directory / f"{incident.id}.json", incident.model_dump_json(indent=2))
        atomic_write(md, render_markdown(incident))
        self.index(incident, str(md))
        return md

    def index(self, incident: Incident, report_path: str) -> None:
        """Put an archived incident in the index (replacing an earlier copy)."""
        row = kb_row(incident, report_path)
        with self.store.write() as db:
            done = db.execute(sa.update(kb_reports).where(kb_reports.c.id == incident.id).values(**row))
            if done.rowcount == 0:
                db.execute(sa.insert(kb_reports).values(id=incident.id, **row))
            if not self.store.postgres:  # PostgreSQL's tsvector column follows body by itself
                db.execute(sa.delete(kb_fts).where(kb_fts.c.id == incident.id))
                db.execute(sa.insert(kb_fts).values(id=incident.id, body=row["body"]))

    def archive(self, incident: Incident) -> Incident:
        """Archive a closed incident with its similar past incidents and its report path filled in;
        returns the archived copy (the record to keep). Every way an incident ends goes through here:
        the flow's archive step and the closing of an incident whose run ended without it."""
        final = incident.model_copy(
            update={"related": self.similar(incident), "report_path": str(self.report_path(incident.id))}
        )
        self.write(final)
        return final

    def _select(self, query: sa.Select[Any]) -> list[Incident]:
        out = []
        with self.store.read() as db:
            for (doc,) in db.execute(query):
                try:
                    out.append(Incident.model_validate(doc))
                except ValidationError:
                    continue  # a record this version cannot read is skipped, never deleted
        return out

    def all(self) -> list[Incident]:
        """Every archived incident, oldest first."""
        return self._select(sa.select(kb_reports.c.doc).order_by(kb_reports.c.opened_at))

    def search(
        self,
        *,
        anomaly: str | None = None,
        target: str | None = None,
        labels: dict[str, str] | None = None,
        text: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        rank: bool = False,
    ) -> list[Incident]:
        """Archived incidents matching every given filter, newest first (best match first with
        ``rank``): type, target, alert labels (all equal), text (every word, as a word or the start
        of one, case-insensitive, in the title, diagnosis, impact, evidence and decisions), opened
        within [since, until)."""
        q = sa.select(kb_reports.c.doc)
        for column, value in ((kb_reports.c.anomaly, anomaly), (kb_reports.c.target, target)):
            if value:
                q = q.where(column == value)
        if since:
            q = q.where(kb_reports.c.opened_at >= utc(since))
        if until:
            q = q.where(kb_reports.c.opened_at < utc(until))
        order: list[Any] = []
        terms = search_terms(text or "")
        if terms and self.store.postgres:
            query = sa.func.to_tsquery("simple", " & ".join(f"{t}:*" for t in terms))
            search: sa.ColumnClause[Any] = sa.column("search")
            q = q.where(search.op("@@")(query))
            order = [sa.func.ts_rank(search, query).desc()] if rank else []
        elif terms:
            match = " AND ".join(f'"{t}"*' for t in terms)
            q = q.join(kb_fts, kb_fts.c.id == kb_reports.c.id).where(
                sa.text("kb_fts MATCH :match").bindparams(match=match)
            )
            order = [sa.text("bm25(kb_fts)")] if rank else []
        q = q.order_by(*order, kb_reports.c.opened_at.desc(), kb_reports.c.id.desc())
        found = self._select(q)
        return [i for i in found if not labels or all(i.alert.labels.get(k) == v for k, v in labels.items())]

    def similar(self, incident: Incident, limit: int = 3) -> list[str]:
        """Past incidents of the same type on the same target or with the same diagnosis."""
        words = set(re.findall(r"[a-z_]+", incident.diagnosis.lower()))
        scored = []
        past_ones = self._select(
            sa.select(kb_reports.c.doc).where(
                kb_reports.c.anomaly == incident.anomaly.value, kb_reports.c.id != incident.id
            )
        )
        for past in past_ones:
            score = (2 if past.target == incident.target else 0) + len(
                words & set(re.findall(r"[a-z_]+", past.diagnosis.lower()))
            )
            fix = next((a.name for a in past.actions if a.applied and not a.dry_run), "no fix")
            scored.append((score, past.opened_at, f"{past.id} ({past.outcome.value}; fixed by {fix})"))
        scored.sort(key=lambda s: (s[0], s[1]), reverse=True)
        return [s[2] for s in scored[:limit]]
