"""The memory-leak verification criteria: the instance healthy, its memory back near the baseline
fitted before the leak, and no longer growing."""

from __future__ import annotations

import threading

from llmedic.anomalies.base import VerificationResult
from llmedic.anomalies.common import verification_result
from llmedic.anomalies.memory_leak.detector import detect_leak
from llmedic.anomalies.memory_leak.results import LeakConfirmation
from llmedic.anomalies.runtime import Runtime, StepTimer
from llmedic.incident import Step, VerificationCheck
from llmedic.playbook import MemoryLeakSettings

__all__ = ["verify"]


def verify(rt: Runtime, confirmed: LeakConfirmation) -> VerificationResult:
    """After the fix: the instance is healthy, its memory is back near the baseline fitted before the
    leak (``baseline_tolerance``), and it no longer grows (the detector says no leak)."""
    s = rt.settings_as(MemoryLeakSettings)
    t = StepTimer(Step.VERIFY)
    mine = confirmed.fleet.get(rt.instance.name)
    baseline = float(mine.baseline) if mine else 0.0
    prompt = s.probe_prompt
    stop = threading.Event()

    def exercise() -> None:
        # Requests spread over the verification window: a drained instance gets no traffic, and a
        # leak that grows per request would otherwise look cured.
        with rt.endpoint(timeout=30) as ep:
            pause = s.verify_seconds / max(1, s.reproduce_requests)
            for _ in range(s.reproduce_requests):
                if stop.is_set():
                    return
                ep.burst(1, prompt=prompt, concurrency=1, max_tokens=16)
                stop.wait(pause)

    with rt.endpoint(timeout=10) as ep:
        healthy = ep.health()
    worker = threading.Thread(target=exercise, daemon=True)
    worker.start()
    try:
        series = rt.memory(
            [rt.instance],
            s.verify_seconds,
            min(s.sample_interval_seconds, s.verify_seconds / max(1, s.min_samples)),
        )[rt.instance.name]
    finally:
        stop.set()
        worker.join(30)
    y = series["y"]
    last = float(y[-1]) if y else float("nan")
    verdict = detect_leak(
        series["t"],
        y,
        limit=s.limit_bytes,
        min_samples=min(s.min_samples, max(2, len(y))),
        p_value=s.p_value,
        horizon_hours=s.horizon_hours,
        min_growth_share=s.min_growth_share,
    )
    ceiling = baseline * (1 + s.baseline_tolerance)
    checks = [
        VerificationCheck(
            name="health", passed=healthy, observed="200" if healthy else "not 200", expected="200"
        ),
        VerificationCheck(
            name="rss_near_baseline_bytes",
            passed=last <= ceiling,
            observed=last,
            expected=f"<= {ceiling:.0f} (baseline {baseline:.0f} + {s.baseline_tolerance:.0%})",
        ),
        VerificationCheck(
            name="memory_not_growing",
            passed=not verdict.leaking,
            observed=round(verdict.slope_per_hour),
            expected="no leak verdict",
        ),
    ]
    t.add(
        "verify_memory",
        str(series["source"]),
        f"{len(y)} samples after the fix: {verdict.reason}",
        {"verdict": verdict.as_dict(), "t": series["t"], "y": y},
    )
    return verification_result(t, checks)
