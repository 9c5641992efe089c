"""The network-interruption home's steps: probe the link and its artifact, name the failing hop,
isolate nothing (a link's consumers move only through the fix: failover), probe again to
reproduce, verify the active endpoint and the artifact."""

from __future__ import annotations

from llmedic.anomalies.base import Assessment, Home, Isolation, Recovery, Reproduction
from llmedic.anomalies.network.diagnosis import Diagnosis
from llmedic.anomalies.network.evidence import assess, confirm, evidence, probe
from llmedic.anomalies.network.results import LinkConfirmation, LinkFindings
from llmedic.anomalies.network.verify import verify
from llmedic.anomalies.runtime import Runtime, StepTimer
from llmedic.incident import Step
from llmedic.playbook import NetworkSettings

__all__ = ["HOME", "no_isolation", "no_release", "reproduce"]


def no_isolation(rt: Runtime, found: LinkFindings) -> Isolation:
    """A link is not drained: its consumers move only through the fix (failover)."""
    t = StepTimer(Step.ISOLATE)
    t.decide("isolate", "no", "a link is not isolated; failover is the fix")
    return Isolation(**t.stamp("nothing to isolate for a link", status="skipped"), isolated=False)


def reproduce(rt: Runtime) -> Reproduction:
    """Probe again: is it still failing?"""
    t = StepTimer(Step.REPRODUCE)
    _, hop, reason = probe(rt, rt.settings_as(NetworkSettings), t, "reprobe")
    return Reproduction(**t.stamp(f"{hop}: {reason}"), reproduced=hop != "healthy")


def no_release(rt: Runtime, isolated: bool) -> Recovery:
    """Nothing was isolated."""
    return Recovery(**StepTimer(Step.RECOVER).stamp("nothing to release", status="skipped"))


HOME: Home[LinkConfirmation, Assessment, LinkFindings] = Home(
    diagnosis=Diagnosis,
    confirm=confirm,
    assess=assess,
    evidence=evidence,
    isolate=no_isolation,
    reproduce=reproduce,
    verify=verify,
    release=no_release,
)
