"""What is wrong with a service's Python environment: the pure decision.

The evidence is an :class:`EnvironmentReport` (what the service's own interpreter describes, set
against the lock file and the driver). Pure: no adapter, no I/O, no Prefect.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel

__all__ = ["Diagnosis", "EnvironmentReport", "diagnose_environment"]


class Diagnosis(StrEnum):
    """What the environment report calls for (``diagnose_environment``)."""

    CUDA_MISMATCH = "cuda_mismatch"
    DRIFT_FROM_LOCK = "drift_from_lock"
    IMPORT_FAILURE = "import_failure"
    UNKNOWN = "unknown"


class EnvironmentReport(BaseModel):
    """Everything wrong with a live environment."""

    python: str
    executable: str
    broken: list[str]
    """Broken requirements, as ``pip check`` words them."""
    lock_diff: list[str]
    """Installed against the lock, one line per difference."""
    lock_clean: bool
    failed_imports: dict[str, str]
    """Module → the error importing it raised."""
    cuda_mismatch: str | None
    installed: dict[str, str]
    """Distribution → installed version."""
    lock: dict[str, str]
    """Distribution → locked version."""

    @property
    def sick(self) -> bool:
        """A requirement is broken, the lock is not matched, a module fails or CUDA mismatches."""
        return bool(self.broken or not self.lock_clean or self.failed_imports or self.cuda_mismatch)


def diagnose_environment(report: EnvironmentReport) -> tuple[Diagnosis, str]:
    """A CUDA mismatch alone; else drift from the lock (or broken requirements); else modules that
    fail although the lock is matched; else nothing explains it."""
    if report.cuda_mismatch and not report.broken and report.lock_clean:
        return Diagnosis.CUDA_MISMATCH, report.cuda_mismatch
    if not report.lock_clean or report.broken:
        return Diagnosis.DRIFT_FROM_LOCK, "the environment drifted from its lock: " + "; ".join(
            (report.lock_diff + report.broken)[:4]
        )
    if report.failed_imports:
        return Diagnosis.IMPORT_FAILURE, "modules fail to import although the lock is matched: " + "; ".join(
            report.failed_imports.values()
        )
    return Diagnosis.UNKNOWN, "nothing in the environment explains the alert"
