"""What each GPU-fault step hands the next: typed figures, no dict read by key."""

from __future__ import annotations

from pydantic import BaseModel

from llmedic.anomalies.base import Assessment, Confirmation, Findings
from llmedic.anomalies.gpu.diagnosis import Diagnosis, GpuVerdict

__all__ = ["Canary", "GpuAssessment", "GpuConfirmation", "GpuFindings"]


class Canary(BaseModel):
    """A canary burst of completions against the instance."""

    name: str
    ok: int
    asked: int
    errors: list[str]
    health: bool

    @property
    def failing(self) -> bool:
        """Some completion did not answer."""
        return self.ok < self.asked


class GpuConfirmation(Confirmation):
    """Every GPU of the instance judged, the XIDs seen, and what the service answers."""

    verdicts: list[GpuVerdict] = []
    xid_lines: list[int | None] = []
    """The kernel-log lines of the XIDs seen before the fix (verify looks for new ones)."""
    cuda_error: str | None = None
    """The error the service answers with, when it names CUDA."""
    snapshot_available: bool = False


class GpuAssessment(Assessment):
    """Which instances share the host and which still serve."""

    same_host: list[str] = []
    serving: list[str] = []
    elsewhere: list[str] = []
    """Serving instances on other hosts."""


class GpuFindings(Findings):
    """The diagnosis and what isolation needs to know."""

    diagnosis: Diagnosis
    healthy_others: int = 0
