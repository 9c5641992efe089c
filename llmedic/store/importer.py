"""``llmedic store import HOME``: a file-based home (before the state store) brought into a store.

Everything is read and checked first, then written in one transaction, so a file that cannot be
read stops the import with nothing written (the error names the file, what is wrong and what to
do). Records already in the store are left as they are (matched by their identity: an incident's
or review's id, a registry event's service, kind and time, an audit record's dataset and time, an
outbox row's key), so importing twice adds nothing. The files are never changed or deleted.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel, ValidationError

from llmedic.auditing import AuditRecord
from llmedic.errors import ConfigError
from llmedic.incident import Incident
from llmedic.registry import RegistryEvent
from llmedic.reviews.incidents import ReviewIncident
from llmedic.store.base import utc
from llmedic.store.db import Store
from llmedic.store.incidents import incident_row
from llmedic.store.knowledge import kb_fts, kb_row
from llmedic.store.tables import (
    audit_records,
    incident_notices,
    incidents,
    kb_reports,
    outbox,
    registry_events,
    review_incidents,
)

__all__ = ["Imported", "import_home"]

M = TypeVar("M", bound=BaseModel)

_HINT = (
    "fix the file or move it out of the home, then run `llmedic store import` again (nothing was imported)"
)


@dataclass
class _Batch:
    table: sa.Table
    key: tuple[str, ...]
    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Imported:
    """What one import found in the files and added to the store, per kind of record."""

    found: dict[str, int] = field(default_factory=dict)
    added: dict[str, int] = field(default_factory=dict)


def _bad(path: Path, what: str) -> ConfigError:
    return ConfigError(f"{path}: {what}", hint=_HINT)


def _parse(model: type[M], path: Path, text: str, where: str = "") -> M:
    try:
        return model.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise _bad(path, f"{where}not a valid {model.__name__} ({loc}: {first['msg']})") from None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _bad(path, f"cannot be read ({getattr(exc, 'strerror', None) or exc})") from None


def _lines(path: Path) -> Iterable[tuple[int, str]]:
    for n, line in enumerate(_read(path).splitlines(), start=1):
        if line.strip():
            yield n, line


def _incidents(home: Path) -> _Batch:
    batch = _Batch(incidents, ("id",))
    for path in sorted((home / "incidents").glob("*.json")):
        inc = _parse(Incident, path, _read(path))
        batch.rows.append({"id": inc.id, **incident_row(inc)})
    return batch


def _notices(home: Path) -> _Batch:
    batch = _Batch(incident_notices, ("flow_run_id", "kind", "at"))
    for path in sorted((home / "incidents" / "notices").glob("*.jsonl")):
        for n, line in _lines(path):
            try:
                note = json.loads(line)
                at = utc(datetime.fromisoformat(note["at"]))
            except (ValueError, KeyError, TypeError):
                raise _bad(path, f"line {n} is not a notice ({{'kind', 'at'}})") from None
            batch.rows.append({"flow_run_id": path.stem, "kind": note.get("kind", "resolved"), "at": at})
    return batch


def _kb(home: Path) -> _Batch:
    batch = _Batch(kb_reports, ("id",))
    for path in sorted((home / "kb").glob("*.json")):
        inc = _parse(Incident, path, _read(path))
        batch.rows.append({"id": inc.id, **kb_row(inc, inc.report_path or str(path.with_suffix(".md")))})
    return batch


def _reviews(home: Path) -> _Batch:
    batch = _Batch(review_incidents, ("id",))
    for path in sorted((home / "reviews" / "incidents").glob("*.json")):
        rec = _parse(ReviewIncident, path, _read(path))
        row = {"id": rec.id, "kind": rec.kind, "status": rec.status, "opened_at": utc(rec.opened_at)}
        batch.rows.append({**row, "doc": rec.model_dump(mode="json")})
    return batch


def _registry(home: Path) -> _Batch:
    batch = _Batch(registry_events, ("service", "event", "at"))
    for path in sorted((home / "models").glob("*.jsonl")):
        for n, line in _lines(path):
            e = _parse(RegistryEvent, path, line, f"line {n} is ")
            batch.rows.append(
                {"service": path.stem, "event": e.event, "at": utc(e.at), "doc": e.model_dump(mode="json")}
            )
    return batch


def _audits(home: Path) -> _Batch:
    batch = _Batch(audit_records, ("dataset", "at"))
    path = home / "audits" / "data.jsonl"
    for n, line in _lines(path) if path.exists() else ():
        r = _parse(AuditRecord, path, line, f"line {n} is ")
        batch.rows.append({"dataset": r.dataset, "at": utc(r.at), "doc": r.model_dump(mode="json")})
    return batch


def _outbox(home: Path) -> _Batch:
    batch = _Batch(outbox, ("key",))
    path = home / "outbox.sqlite3"
    if not path.exists():
        return batch
    names = [c.name for c in outbox.columns if c.name != "id"]
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            have = {r[1] for r in db.execute("PRAGMA table_info(outbox)")}
            cols = [c if c in have else f"NULL AS {c}" for c in names]  # `raw` is newer than some outboxes
            rows = db.execute(f"SELECT {', '.join(cols)} FROM outbox ORDER BY id").fetchall()
    except sqlite3.Error as exc:
        raise _bad(path, f"not a readable outbox ({exc})") from None
    batch.rows = [dict(zip(names, r, strict=True)) for r in rows]
    return batch


SOURCES: dict[str, Callable[[Path], _Batch]] = {
    "incidents": _incidents,
    "incident notices": _notices,
    "knowledge base": _kb,
    "review incidents": _reviews,
    "registry events": _registry,
    "audit records": _audits,
    "outbox rows": _outbox,
}
"""What a file-based home holds, by kind of record, and how each is read."""


def _identity(row: Any, key: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(utc(v) if isinstance(v, datetime) else v for v in (row[k] for k in key))


def import_home(home: Path, store: Store) -> Imported:
    """Bring the records of the file-based ``home`` into ``store`` (see the module docstring)."""
    if not home.is_dir():
        raise ConfigError(f"{home} is not a directory", hint="give the LLMEDIC_HOME to import")
    batches = {kind: read(home) for kind, read in SOURCES.items()}  # everything parsed before writing
    done = Imported()
    with store.write() as db:
        for kind, batch in batches.items():
            cols = [batch.table.c[k] for k in batch.key]
            present = {_identity(r._mapping, batch.key) for r in db.execute(sa.select(*cols))}
            new = []
            for row in batch.rows:
                ident = _identity(row, batch.key)
                if ident not in present:
                    present.add(ident)
                    new.append(row)
            if new:
                db.execute(sa.insert(batch.table), new)
                if batch.table is kb_reports and not store.postgres:
                    db.execute(sa.insert(kb_fts), [{"id": r["id"], "body": r["body"]} for r in new])
            done.found[kind], done.added[kind] = len(batch.rows), len(new)
    return done
