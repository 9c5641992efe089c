"""The dependency-conflict verification criteria: the environment matches the lock with no broken
requirement and every import working, and the instance is healthy and answers."""

from __future__ import annotations

from llmedic.adapters.endpoint import Endpoint
from llmedic.anomalies.base import VerificationResult
from llmedic.anomalies.common import verification_result
from llmedic.anomalies.dependency.evidence import add_report, environment_report
from llmedic.anomalies.dependency.results import DependencyConfirmation
from llmedic.anomalies.runtime import Runtime, StepTimer
from llmedic.incident import Step, VerificationCheck
from llmedic.playbook import DependencySettings

__all__ = ["verify"]


def verify(rt: Runtime, confirmed: DependencyConfirmation) -> VerificationResult:
    """Describe the environment again after the fix and ask the instance."""
    s = rt.settings_as(DependencySettings)
    t = StepTimer(Step.VERIFY)
    report = environment_report(rt, s)
    add_report(t, report, "environment_after")
    with Endpoint(rt.instance.base_url, timeout=30) as ep:
        healthy = ep.health()
        answered = ep.probe(s.canary_prompt).ok
    checks = [
        VerificationCheck(
            name="matches_lock",
            passed=report.lock_clean,
            observed="; ".join(report.lock_diff) or "yes",
            expected="yes",
        ),
        VerificationCheck(
            name="no_broken_requirements", passed=not report.broken, observed=len(report.broken), expected="0"
        ),
        VerificationCheck(
            name="imports",
            passed=not report.failed_imports,
            observed=str(report.failed_imports or "all ok"),
            expected="all ok",
        ),
        VerificationCheck(name="health", passed=healthy, observed=str(healthy), expected="True"),
        VerificationCheck(name="canary_completion", passed=answered, observed=str(answered), expected="True"),
    ]
    return verification_result(t, checks)
