"""Auditing dataset versions: cached audits of immutable versions, and the audit history.

An audit of a version against its declaration and reference cannot change (versions are
immutable), so it is cached on disk next to the dataset, keyed by (version, reference, declaration).
The monthly audit appends one line per dataset to ``<home>/audits/data.jsonl``; that file is the
trend of data quality the audit report and ``llmedic audit history`` show.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field

from llmedic.adapters.datastore import DataStore
from llmedic.analysis.data_audit import DataAudit, audit_frame
from llmedic.config import DatasetConfig

__all__ = ["AuditHistory", "AuditRecord", "audit_version"]


def audit_version(
    store: DataStore,
    name: str,
    cfg: DatasetConfig,
    ref: str = "current",
    *,
    fresh: bool = False,
    reference: bool = True,
) -> DataAudit:
    """Audit one version (default: the current one) against its schema and the reference version."""
    v = store.version(name, ref)
    state = store.state(name)
    ref_id = state.reference if reference and state.reference and state.reference != v.id else None
    digest = hashlib.sha256(cfg.model_dump_json().encode()).hexdigest()[:12]
    cache = store.root / name / "audits" / f"{v.id}--{ref_id or 'none'}--{digest}.json"
    if not fresh and cache.exists():
        try:
            return DataAudit.model_validate_json(cache.read_text(encoding="utf-8"))
        except ValueError:
            pass  # a damaged cache entry is recomputed
    _, frame = store.read(name, cfg, v.id)
    ref_frame = store.read(name, cfg, ref_id)[1] if ref_id else None
    result = audit_frame(
        frame, cfg, dataset=name, version=v.id, reference=ref_frame, reference_version=ref_id
    )
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(result.model_dump_json(), encoding="utf-8")
    tmp.replace(cache)
    return result


class AuditRecord(BaseModel):
    """One dataset in one audit run."""

    at: datetime
    run: str = ""
    dataset: str
    version: str | None = None
    rows: int = 0
    clean_cell_share: float | None = None
    missing_cells: int = 0
    invalid_cells: int = 0
    duplicate_rows: int = 0
    drifted_columns: list[str] = Field(default_factory=list)
    breaches: dict[str, int] = Field(default_factory=dict)
    """Anomaly type → breaching findings."""
    incidents: dict[str, str] = Field(default_factory=dict)
    """Anomaly type → flow run id started (or why none was)."""
    error: str | None = None


class AuditHistory:
    """Append-only JSONL of audit records."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, records: list[AuditRecord]) -> None:
        """Add records (fsynced, so a crash never loses a finished audit)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            for r in records:
                fh.write(r.model_dump_json() + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def records(self, dataset: str | None = None) -> list[AuditRecord]:
        """Every record (of one dataset), oldest first; damaged lines are skipped, never removed."""
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                rec = AuditRecord.model_validate(json.loads(line))
            except ValueError:
                continue
            if dataset is None or rec.dataset == dataset:
                out.append(rec)
        return out

    def trend(self, dataset: str, last: int = 12) -> list[AuditRecord]:
        """The last ``last`` audits of one dataset."""
        return self.records(dataset)[-last:]
