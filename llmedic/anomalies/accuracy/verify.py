"""The accuracy-drop verification criteria: no significant drop left, accuracy back within the
baseline's Wilson interval (or above ``min_accuracy`` without a baseline), no failed request.

Verification polls in its own loop (``rounds``): caches and knowledge indexes take a moment to
reload, and a retried task would roll the fix back (see ``docs/architecture.md``).
"""

from __future__ import annotations

import time

from llmedic.anomalies.accuracy.evidence import judge, reference, sample
from llmedic.anomalies.accuracy.results import AccuracyConfirmation
from llmedic.anomalies.accuracy.stats import DropVerdict, wilson_interval
from llmedic.anomalies.base import VerificationResult
from llmedic.anomalies.common import verification_result
from llmedic.anomalies.runtime import Runtime, StepTimer
from llmedic.golden import Scorecard
from llmedic.incident import Step, VerificationCheck
from llmedic.playbook import AccuracySettings

__all__ = ["checks_of", "verify"]


def checks_of(card: Scorecard, verdict: DropVerdict | None, s: AccuracySettings) -> list[VerificationCheck]:
    """The criteria for one re-scoring of the golden items."""
    if verdict is None:
        k, n = sum(card.correctness().values()), len(card.correctness())
        hi = wilson_interval(k, n)[1]
        checks = [
            VerificationCheck(
                name="accuracy_above_minimum",
                passed=hi >= (s.min_accuracy or 0),
                observed=round(k / n, 4) if n else 0.0,
                expected=f">= {s.min_accuracy} (Wilson upper bound)",
            )
        ]
    else:
        checks = [
            VerificationCheck(
                name="no_significant_drop",
                passed=not verdict.dropped,
                observed=f"{verdict.new_accuracy:.1%} (p={verdict.p_value:.2g})",
                expected=f"no drop of {s.margin:.0%} at α={s.alpha}",
            ),
            VerificationCheck(
                name="within_baseline_interval",
                passed=verdict.within_baseline,
                observed=round(verdict.new_accuracy, 4),
                expected=f">= {verdict.base_interval[0]:.4f} (baseline {verdict.base_accuracy:.1%}, Wilson 95%)",
            ),
        ]
    checks.append(
        VerificationCheck(
            name="no_failed_requests", passed=card.errors == 0, observed=card.errors, expected="0"
        )
    )
    return checks


def verify(
    rt: Runtime, confirmed: AccuracyConfirmation, rounds: int = 3, interval_seconds: float = 2.0
) -> VerificationResult:
    """Re-score the same items: no significant drop left, and accuracy back within the baseline's
    Wilson interval (polled a few times: caches and knowledge indexes take a moment to reload)."""
    s = rt.settings_as(AccuracySettings)
    t = StepTimer(Step.VERIFY)
    golden, items = sample(rt, s)
    ref = reference(rt, golden)
    checks: list[VerificationCheck] = []
    for attempt in range(1, rounds + 1):
        card = rt.score(items, rt.in_rotation())
        verdict = judge(ref, card, s)
        checks = checks_of(card, verdict, s)
        t.add(
            f"verify_round_{attempt}",
            "endpoint",
            f"{card.accuracy:.1%} on {len(card.scored)} items, versions {sorted(set(card.versions.values()))}",
            {**card.summary(), "verdict": verdict.as_dict() if verdict else None},
        )
        if all(c.passed for c in checks):
            break
        if attempt < rounds:
            time.sleep(interval_seconds)
    return verification_result(t, checks)
