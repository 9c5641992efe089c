"""The latency home's steps: confirm with metrics + probes, find the scope, drain a degraded
instance, reproduce with a probe burst straight at it, verify p99, put it back."""

from __future__ import annotations

from llmedic.adapters.endpoint import summarise_probes
from llmedic.anomalies.base import Home, Isolation
from llmedic.anomalies.common import contain_instance, drain_if, release_drain
from llmedic.anomalies.latency.diagnosis import Diagnosis
from llmedic.anomalies.latency.evidence import assess, confirm, evidence
from llmedic.anomalies.latency.results import (
    LatencyAssessment,
    LatencyConfirmation,
    LatencyFindings,
    LatencyReproduction,
)
from llmedic.anomalies.latency.verify import verify
from llmedic.anomalies.runtime import Runtime, StepTimer
from llmedic.incident import Step
from llmedic.playbook import LatencySettings

__all__ = ["HOME", "contain", "isolate", "reproduce"]


def isolate(rt: Runtime, found: LatencyFindings) -> Isolation:
    """Drain a degraded instance when enough healthy instances remain; never drain for load problems."""
    return drain_if(
        rt,
        found.diagnosis,
        Diagnosis.INSTANCE_DEGRADED,
        found.healthy_others,
        rt.settings_as(LatencySettings).min_healthy_instances,
        "draining would only push the load onto the other instances",
    )


def contain(rt: Runtime, found: LatencyFindings, scope: str) -> Isolation:
    """A fix refused, failed or rejected: a degraded instance still leaves rotation when the others
    carry the traffic. Slowness from load (queueing, KV-cache pressure, fleet overload) is not
    contained: draining would only push the load onto the other instances."""
    if found.diagnosis != Diagnosis.INSTANCE_DEGRADED:
        return drain_if(
            rt,
            found.diagnosis,
            Diagnosis.INSTANCE_DEGRADED,
            found.healthy_others,
            0,
            "draining would only push the load onto the other instances",
        )
    return contain_instance(
        rt, found.healthy_others, rt.settings_as(LatencySettings).min_healthy_instances, scope
    )


def reproduce(rt: Runtime) -> LatencyReproduction:
    """A probe burst straight at the instance (it still answers direct requests while drained)."""
    s = rt.settings_as(LatencySettings)
    t = StepTimer(Step.REPRODUCE)
    with rt.endpoint(timeout=s.probe_timeout_seconds) as ep:
        results = rt.latency_probes(ep, s.reproduce_probes)
    summary = summarise_probes(results)
    reproduced = summary.p99 > s.slo_p99_seconds or summary.failures > 0
    t.add(
        "reproduce_probes",
        "probe",
        f"{summary.count} probes: p99 {summary.p99:.3f}s (SLO {s.slo_p99_seconds:g}s), {summary.failures} failed",
        summary.as_dict(),
    )
    t.decide(
        "reproduced",
        "yes" if reproduced else "no",
        "the burst shows the slowness"
        if reproduced
        else "the burst stayed within the SLO: the problem may be transient",
    )
    return LatencyReproduction(
        **t.stamp(f"{'reproduced' if reproduced else 'not reproduced'}: probe p99 {summary.p99:.3f}s"),
        reproduced=reproduced,
        p99=summary.p99,
    )


HOME: Home[LatencyConfirmation, LatencyAssessment, LatencyFindings] = Home(
    diagnosis=Diagnosis,
    confirm=confirm,
    assess=assess,
    evidence=evidence,
    isolate=isolate,
    reproduce=reproduce,
    verify=verify,
    release=release_drain,
    contain=contain,
)
