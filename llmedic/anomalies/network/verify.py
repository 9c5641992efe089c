"""The network-interruption verification criteria: the active endpoint answers every try under the
latency threshold, and the artifact (if any) is in place with its checksum."""

from __future__ import annotations

from llmedic.anomalies.base import VerificationResult
from llmedic.anomalies.common import verification_result
from llmedic.anomalies.network.evidence import artifact_state, probe
from llmedic.anomalies.network.results import LinkConfirmation
from llmedic.anomalies.runtime import Runtime, StepTimer
from llmedic.incident import Step, VerificationCheck
from llmedic.playbook import NetworkSettings

__all__ = ["verify"]


def verify(rt: Runtime, confirmed: LinkConfirmation) -> VerificationResult:
    """Probe the (possibly failed-over) active endpoint again and check the artifact."""
    s = rt.settings_as(NetworkSettings)
    t = StepTimer(Step.VERIFY)
    p, hop, reason = probe(rt, s, t, "probe_after")
    checks = [
        VerificationCheck(name="link_answers", passed=hop == "healthy", observed=reason, expected="healthy"),
        VerificationCheck(name="no_loss", passed=p.loss == 0.0, observed=f"{p.loss:.0%}", expected="0%"),
    ]
    art = artifact_state(rt)
    if art is not None:
        checks.append(
            VerificationCheck(
                name="artifact_verified", passed=art.verified, observed=str(art.verified), expected="True"
            )
        )
    return verification_result(t, checks)
