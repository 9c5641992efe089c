"""Which hop of a network link fails, and what that calls for: the pure decision.

The probe's verdict on the first failing hop (``llmedic.adapters.netprobe.LinkProbe.diagnose``),
the state of the artifact the link carries, and — for a hard failure — what each ``probe_from``
host sees decide: an interrupted transfer resumes, a hard failure fails over (unless only
llmedic's own path is broken), loss or slowness retries with backoff. Pure: no adapter, no I/O,
no Prefect.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel

__all__ = ["HARD_FAILURES", "ArtifactState", "Diagnosis", "diagnose_link"]

HARD_FAILURES = ("dns_failure", "tcp_refused", "tcp_unreachable", "http_failure")
"""Probe verdicts where the far end does not answer at all (the hosts are asked too)."""

_DEGRADED = ("packet_loss", "slow_link")


class Diagnosis(StrEnum):
    """The failing hop, from llmedic and from the hosts (``diagnose_link``)."""

    SYNC_INTERRUPTED = "sync_interrupted"
    ORCHESTRATOR_PATH = "orchestrator_path"
    """Only llmedic's own path is broken: nothing is failed over for it."""
    ENDPOINT_DOWN = "endpoint_down"
    LINK_DEGRADED = "link_degraded"
    HEALTHY = "healthy"


class ArtifactState(BaseModel):
    """The file a link carries, where its consumers expect it."""

    dest: str
    exists: bool
    partial_bytes: int
    """Bytes of an interrupted transfer received so far."""
    verified: bool
    """In place with the declared checksum."""


def diagnose_link(
    hop: str, artifact: ArtifactState | None, hosts: dict[str, bool], *, has_backup: bool
) -> tuple[Diagnosis, str]:
    """``hop`` is the probe's verdict (``healthy`` or the first failing hop); ``hosts`` what each
    ``probe_from`` host saw (asked only on a hard failure; empty otherwise)."""
    if hop == "healthy" and artifact is not None and not artifact.verified:
        return (
            Diagnosis.SYNC_INTERRUPTED,
            f"{artifact.dest} is not in place ({artifact.partial_bytes} bytes received)",
        )
    if hop in HARD_FAILURES:
        if hosts and all(hosts.values()):
            return (
                Diagnosis.ORCHESTRATOR_PATH,
                f"llmedic cannot reach the link ({hop}) but every consumer host can "
                f"({sorted(hosts)}): the path from the orchestrator is broken, not the endpoint",
            )
        reason = (
            f"the far end is unreachable ({hop})"
            + (f"; from the hosts too ({sorted(h for h, ok in hosts.items() if not ok)})" if hosts else "")
            + ("; a backup endpoint is declared" if has_backup else "; no backup endpoint")
        )
        return Diagnosis.ENDPOINT_DOWN, reason
    if hop in _DEGRADED:
        return Diagnosis.LINK_DEGRADED, f"the link degrades ({hop}) but answers: retry with backoff"
    return Diagnosis.HEALTHY, "the link answers and its artifact is in place"
