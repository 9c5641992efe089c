"""The playbook's ``remediation:`` section: how many fixes a run may try, and how long a recovered
service is watched (the guide's step 5: "if the problem is not solved, re-assess and try another
solution"; "switch back gradually and observe a while").

Not to be confused with ``approval.max_attempts`` (refused decisions a gate takes): this is about
fixes. Kept beside :mod:`llmedic.playbook`, which re-exports it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["RemediationPolicy"]


class RemediationPolicy(BaseModel):
    """How many fixes one incident may try, and the watch after recovery."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    max_attempts: int = Field(2, ge=1, le=10)
    """Fixes tried per incident (default 2). When verification fails, the fix is compensated, the
    evidence is collected and diagnosed again, and the next fix whose ``when`` lists the new
    diagnosis (one not tried yet) is applied, each behind its own approval gate when its risk needs
    one; after this many, or with no untried fix left, the incident escalates."""
    watch_seconds: float = Field(0, ge=0, le=86_400)
    """After recovery, re-run the verification for this long (0: no watch). A relapse keeps the
    same incident, continues its timeline and escalates; the incident closes ``resolved`` only
    after a clean watch."""
    watch_interval_seconds: float = Field(10, gt=0, le=3600)
    """Pause before each re-verification of the watch (rounds: ``watch_seconds`` / this, at least 1)."""

    @property
    def watch_rounds(self) -> int:
        """How many re-verifications the watch makes (0 without a watch)."""
        if self.watch_seconds <= 0:
            return 0
        return max(1, round(self.watch_seconds / self.watch_interval_seconds))
