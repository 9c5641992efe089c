"""Auditing dataset versions: cached audits of immutable versions, and the audit history.

An audit of a version against its declaration and reference cannot change (versions are
immutable), so it is cached next to the dataset, keyed by (version, reference, declaration): a file
beside the dataset's bytes, derived from them and kept where they are (a host that can read the
dataset can read its cache). The monthly audit appends one record per dataset to the audit history
(the ``audit_records`` table of the state store); that is the trend of data quality the audit report
and ``llmedic audit history`` show.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import sqlalchemy as sa
from pydantic import BaseModel, Field, ValidationError

from llmedic.adapters.datastore import DataStore
from llmedic.anomalies.data.audit import audit_frame
from llmedic.anomalies.data.findings import DataAudit
from llmedic.config import DatasetConfig
from llmedic.store.base import Repository, utc
from llmedic.store.files import atomic_write
from llmedic.store.tables import audit_records

# DataAudit: what audit_version returns (the step runtime names it through this seam, not the data home)
__all__ = ["AUDIT_FORMAT", "AuditHistory", "AuditRecord", "DataAudit", "audit_version"]

AUDIT_FORMAT = "2"
"""Part of every cached audit's key: raised when the audit's judgement changes (2: outlier fences
from the reference, per group; each drifted column a breach), so no audit made by an older llmedic
is read back as if it were made now."""


def audit_version(
    store: DataStore,
    name: str,
    cfg: DatasetConfig,
    ref: str = "current",
    *,
    fresh: bool = False,
    reference: bool = True,
) -> DataAudit:
    """Audit one version (default: the current one) against its schema and the reference version
    (the reference itself is judged by its own distribution: none of its values is an outlier)."""
    v = store.version(name, ref)
    state = store.state(name)
    ref_id = state.reference if reference and state.reference and state.reference != v.id else None
    digest = hashlib.sha256((AUDIT_FORMAT + cfg.model_dump_json()).encode()).hexdigest()[:12]
    self_ref = reference and state.reference == v.id
    basis = "self" if self_ref else ref_id or "none"
    cache = store.root / name / "audits" / f"{v.id}--{basis}--{digest}.json"
    if not fresh and cache.exists():
        try:
            return DataAudit.model_validate_json(cache.read_text(encoding="utf-8"))
        except ValueError:
            pass  # a damaged cache entry is recomputed
    _, frame = store.read(name, cfg, v.id)
    ref_frame = store.read(name, cfg, ref_id)[1] if ref_id else None
    if self_ref:
        # The reference is the known-good distribution: judged by itself, its values are normal
        # (its own fences, widened to its range) and it cannot drift from itself.
        ref_frame, ref_id = frame, v.id
    result = audit_frame(
        frame, cfg, dataset=name, version=v.id, reference=ref_frame, reference_version=ref_id
    )
    atomic_write(cache, result.model_dump_json())
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


class AuditHistory(Repository):
    """The audit history: append-only records, one per dataset per audit run."""

    def append(self, records: list[AuditRecord]) -> None:
        """Add records (one transaction: a finished audit is recorded whole or not at all)."""
        rows = [{"dataset": r.dataset, "at": utc(r.at), "doc": r.model_dump(mode="json")} for r in records]
        if rows:
            with self.store.write() as db:
                db.execute(sa.insert(audit_records), rows)

    def records(self, dataset: str | None = None) -> list[AuditRecord]:
        """Every record (of one dataset), oldest first; a record this version cannot read is
        skipped, never removed."""
        q = sa.select(audit_records.c.doc).order_by(audit_records.c.seq)
        if dataset is not None:
            q = q.where(audit_records.c.dataset == dataset)
        out = []
        with self.store.read() as db:
            for (doc,) in db.execute(q):
                try:
                    out.append(AuditRecord.model_validate(doc))
                except ValidationError:
                    continue
        return out

    def trend(self, dataset: str, last: int = 12) -> list[AuditRecord]:
        """The last ``last`` audits of one dataset."""
        return self.records(dataset)[-last:]
