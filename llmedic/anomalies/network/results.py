"""What each network-interruption step hands the next: typed figures, no dict read by key."""

from __future__ import annotations

from llmedic.anomalies.base import Confirmation, Findings
from llmedic.anomalies.network.diagnosis import ArtifactState, Diagnosis

__all__ = ["LinkConfirmation", "LinkFindings"]


class LinkConfirmation(Confirmation):
    """The link's active endpoint probed hop by hop, and the artifact it carries."""

    hop: str
    """The probe's verdict: ``healthy`` or the first failing hop (``dns_failure``, ``packet_loss``, ...)."""
    artifact: ArtifactState | None = None


class LinkFindings(Findings):
    """The failing hop, from llmedic and from the hosts."""

    diagnosis: Diagnosis
