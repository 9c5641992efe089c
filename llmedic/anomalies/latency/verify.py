"""The latency verification criteria: health, no failed probe, p99 back under the SLO.

Verification polls in its own loop (``rounds``) instead of relying on task retries: a retried task
inside a Prefect transaction rolls the transaction back on its first failed attempt (see
``docs/architecture.md``), and a fix must never be undone by a retry artefact.
"""

from __future__ import annotations

import time

from llmedic.adapters.endpoint import ProbeResult, summarise_probes
from llmedic.anomalies.base import VerificationResult
from llmedic.anomalies.common import verification_result
from llmedic.anomalies.latency.results import LatencyConfirmation
from llmedic.anomalies.runtime import Runtime, StepTimer
from llmedic.errors import MetricsSourceError
from llmedic.incident import Step, VerificationCheck
from llmedic.playbook import LatencySettings

__all__ = ["verify"]


def verify(
    rt: Runtime, confirmed: LatencyConfirmation, rounds: int = 3, interval_seconds: float = 2.0
) -> VerificationResult:
    """Health, zero failed probes, and probe p99 (and metrics p99 when known) under the SLO, polled
    for up to ``rounds`` rounds (the first round that passes ends it)."""
    s = rt.settings_as(LatencySettings)
    t = StepTimer(Step.VERIFY)
    checks: list[VerificationCheck] = []
    for attempt in range(1, rounds + 1):
        with rt.endpoint(timeout=s.probe_timeout_seconds) as ep:
            healthy = ep.health()

            def burst() -> list[ProbeResult]:
                return rt.latency_probes(ep, s.verify_probes)

            metric_p99: float | None = None
            try:
                figures, results = rt.metrics.observe(
                    [rt.instance], engine=rt.service.engine, window_seconds=60, during=burst
                )
                metric_p99 = figures[rt.instance.name].e2e_p99
            except MetricsSourceError:
                results = burst()
        summary = summarise_probes(results or [])
        checks = [
            VerificationCheck(
                name="health", passed=healthy, observed="200" if healthy else "not 200", expected="200"
            ),
            VerificationCheck(
                name="probe_failures",
                passed=summary.failures == 0,
                observed=float(summary.failures),
                expected="0",
            ),
            VerificationCheck(
                name="probe_p99_seconds",
                passed=summary.p99 <= s.slo_p99_seconds,
                observed=round(summary.p99, 4),
                expected=f"<= {s.slo_p99_seconds:g}",
            ),
        ]
        if metric_p99 is not None and metric_p99 == metric_p99:  # not NaN
            checks.append(
                VerificationCheck(
                    name="metrics_p99_seconds",
                    passed=metric_p99 <= s.slo_p99_seconds,
                    observed=round(metric_p99, 4),
                    expected=f"<= {s.slo_p99_seconds:g}",
                )
            )
        t.add(
            f"verify_round_{attempt}",
            "probe",
            f"round {attempt}: {summary.count} probes p99 {summary.p99:.3f}s, {summary.failures} failed, health {healthy}",
            summary.as_dict() | {"metrics_p99": metric_p99},
        )
        if all(c.passed for c in checks):
            break
        if attempt < rounds:
            time.sleep(interval_seconds)
    return verification_result(t, checks)
