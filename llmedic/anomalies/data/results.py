"""What each data step hands the next: typed figures, no dict read by key."""

from __future__ import annotations

from pydantic import BaseModel

from llmedic.anomalies.base import Assessment, Confirmation, Findings, VerificationResult
from llmedic.anomalies.data.diagnosis import DataDiagnosis
from llmedic.anomalies.data.findings import DataAudit

__all__ = ["AuditFigures", "DataAssessment", "DataConfirmation", "DataFindings", "DataVerification"]


class AuditFigures(BaseModel):
    """The figures of an audit a report shows side by side (before / after a fix)."""

    version: str | None
    rows: int
    missing_cells: int
    rows_with_missing: int
    invalid_cells: int
    """Cells of a wrong type or format, out of range or outside the allowed set (not outliers)."""
    outliers: int
    duplicate_rows: int
    duplicate_keys: int
    drifted_columns: int
    clean_cell_share: float
    breaches: int

    @classmethod
    def of(cls, audit: DataAudit) -> AuditFigures:
        """The figures of ``audit``."""
        return cls(
            version=audit.version,
            rows=audit.rows,
            missing_cells=audit.missing_cells,
            rows_with_missing=audit.rows_with_missing,
            invalid_cells=sum(
                v for c in audit.column_reports for k, v in c.invalid.items() if k != "outliers"
            ),
            outliers=sum(c.invalid.get("outliers", 0) for c in audit.column_reports),
            duplicate_rows=audit.duplicate_rows,
            duplicate_keys=audit.duplicate_keys,
            drifted_columns=len(audit.drifted_columns),
            clean_cell_share=round(audit.clean_cell_share, 6),
            breaches=len(audit.breaches()),
        )


class DataConfirmation(Confirmation):
    """The pinned version re-profiled: its figures, and the other data anomalies it shows."""

    version: str | None
    figures: AuditFigures
    other_anomalies: list[str] = []
    """Data anomaly types that breach too (each is a separate incident)."""


class DataAssessment(Assessment):
    """How much of the version the anomaly touches."""

    columns: list[str] = []
    """Columns with a breach of this anomaly type."""
    row_share: float = 0.0
    """Upper estimate of the share of rows hit."""


class DataFindings(Findings):
    """The diagnosis, and where the defect began."""

    diagnosis: DataDiagnosis
    """A member of the incident's anomaly type's enum (``MissingDiagnosis`` for ``data_missing`` ...)."""
    first_bad: str | None = None
    """The first version in the lineage with the defect (None: not bisected)."""


class DataVerification(VerificationResult):
    """The verdict, and the audit figures before the fix and of what consumers now see."""

    before: AuditFigures
    after: AuditFigures
