"""Trustworthy remediation (issue 16, requirements 2, 4, 5) against the real sandbox fleet:
containment always (a refused fix still takes the broken instance out of rotation when the others
carry the traffic, and the escalation says what a human must do), the next fix after a failed
verification (every attempt on the record), and the watch after recovery (a relapse continues the
same incident and escalates)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llmedic.alerts import Alert
from llmedic.catalog import AnomalyType
from llmedic.incident import IncidentRequest, Outcome, Step, utcnow
from llmedic.playbook import load_playbook
from llmedic.remediation import RemediationPolicy
from tests.conftest import Fleet
from tests.flowrun import approve, run_flow

pytestmark = pytest.mark.usefixtures("prefect_harness")


def request(anomaly: AnomalyType, alertname: str, target: str, overrides: dict[str, Any]) -> IncidentRequest:
    alert = Alert(source="manual", anomaly=anomaly, alertname=alertname, target=target, starts_at=utcnow())
    return IncidentRequest(alert=alert, overrides=overrides)


@pytest.mark.parametrize(
    ("watch_seconds", "interval", "rounds"),
    [(0, 10, 0), (10, 10, 1), (30, 10, 3), (5, 10, 1), (25, 10, 2)],
)
def test_watch_rounds(watch_seconds: float, interval: float, rounds: int) -> None:
    policy = RemediationPolicy(watch_seconds=watch_seconds, watch_interval_seconds=interval)
    assert policy.watch_rounds == rounds


def test_the_next_fix_skips_the_ones_tried() -> None:
    book = load_playbook(AnomalyType.LATENCY).model_copy()
    assert book.remediation.max_attempts == 2
    assert book.fix_for("queueing").name == "lower_concurrency"  # type: ignore[union-attr]
    assert book.fix_for("queueing", frozenset({"lower_concurrency"})) is None
    assert book.fix_for("instance_degraded", frozenset({"lower_concurrency"})).name == "restart_instance"  # type: ignore[union-attr]


@pytest.mark.fault(
    tried="GPU lost (XID 79) on one instance of a single-host fleet: drain_node approved, then refused "
    "because it would take the whole service down",
    survives="the lost instance is drained anyway (the others carry the traffic) and the escalation says "
    "'contained: sandbox-1 out of rotation; a human must reboot or replace node <host>'",
)
def test_a_refused_node_drain_still_contains_the_lost_instance(sandbox: Fleet) -> None:
    from flows.gpu_fault import gpu_fault

    data = json.loads(sandbox.gpu_scenario.read_text())
    data["devices"][1].update({"lost": True})
    sandbox.gpu_scenario.write_text(json.dumps(data))
    with sandbox.gpu_scenario.with_name("kern.log").open("a") as fh:
        fh.write("[ 4711.2] NVRM: Xid (PCI:0000:11:00): 79, pid=2345, GPU has fallen off the bus.\n")
    req = request(AnomalyType.GPU_FAULT, "GpuXidError", "sandbox-1", {})
    _state, inc = run_flow(gpu_fault, req, approve(), timeout=180)
    assert inc.outcome == Outcome.ESCALATED and inc.diagnosis.startswith("gpu_lost")
    host = inc.escalation_reason.rsplit("node ", 1)[-1]
    assert "refused" in inc.escalation_reason
    assert inc.escalation_reason.endswith(
        f"contained: sandbox-1 out of rotation; a human must reboot or replace node {host}"
    )
    assert sandbox.state("sandbox-1")["drained"] is True
    assert all(sandbox.state(n)["drained"] is False for n in ("sandbox-0", "sandbox-2"))
    assert [(a.fix, a.result) for a in inc.attempts] == [("drain_node", "fix_failed")]
    assert [a.name for a in inc.actions if a.applied] == ["drain_instance"]


LOWER_THEN_RESTART = {
    "fixes": [
        {
            "name": "lower_concurrency",
            "action": "set_concurrency",
            "risk": "low",
            "when": ["instance_degraded"],
            "params": {"factor": 0.5, "min_limit": 1},
        },
        {
            "name": "restart_instance",
            "action": "restart_instance",
            "risk": "high",
            "when": ["instance_degraded"],
            "params": {"ready_timeout_seconds": 60},
        },
    ],
}


@pytest.mark.fault(
    tried="a fix that fails its verification (halving the concurrency of an instance that is slow for "
    "another reason) with a second fix in the playbook",
    survives="the first fix is compensated, the instance re-assessed, the second fix applied behind its own "
    "gate and verified: resolved, both attempts on the record",
)
def test_a_failed_fix_is_rolled_back_and_the_next_one_tried(sandbox: Fleet) -> None:
    from flows.latency import latency

    sandbox.admin("sandbox-1", "faults", {"kind": "slow", "delay_seconds": 2.5})
    req = request(AnomalyType.LATENCY, "VLLMHighP99Latency", "sandbox-1", LOWER_THEN_RESTART)
    _state, inc = run_flow(latency, req, approve(), timeout=240)
    assert inc.outcome == Outcome.RESOLVED, inc.escalation_reason
    assert [(a.number, a.fix, a.result, a.compensated) for a in inc.attempts] == [
        (1, "lower_concurrency", "verification_failed", True),
        (2, "restart_instance", "resolved", False),
    ]
    assert inc.attempts[1].approval == "approved by alice"
    assert [r.step for r in inc.timeline].count(Step.VERIFY) == 2
    assert any(r.summary.startswith("re-assessed before fix 2") for r in inc.timeline)
    assert sandbox.state("sandbox-1")["restarts"] == 1


@pytest.mark.parametrize(
    ("max_attempts", "outcome", "results"),
    [(1, Outcome.FAILED_ROLLED_BACK, ["verification_failed"])],
)
def test_max_attempts_bounds_the_fixes_tried(
    sandbox: Fleet, max_attempts: int, outcome: Outcome, results: list[str]
) -> None:
    from flows.latency import latency

    sandbox.admin("sandbox-1", "faults", {"kind": "slow", "delay_seconds": 2.5})
    overrides = {**LOWER_THEN_RESTART, "remediation": {"max_attempts": max_attempts}}
    req = request(AnomalyType.LATENCY, "VLLMHighP99Latency", "sandbox-1", overrides)
    _state, inc = run_flow(latency, req, approve(), timeout=240)
    assert inc.outcome == outcome
    assert [a.result for a in inc.attempts] == results
    assert sandbox.state("sandbox-1")["restarts"] == 0
    assert "a human must" in inc.escalation_reason


@pytest.mark.fault(
    tried="the fault comes back after the fix was verified and the instance put back (a relapse during the "
    "playbook's watch)",
    survives="the watch's re-verification fails; the same incident continues its timeline (a watch entry), "
    "is contained and escalates; never closed resolved",
)
def test_a_relapse_during_the_watch_escalates_the_same_incident(sandbox: Fleet) -> None:
    import threading

    from flows.gpu_fault import gpu_fault

    sandbox.admin("sandbox-1", "faults", {"kind": "cuda_error"})
    overrides = {"remediation": {"watch_seconds": 12, "watch_interval_seconds": 6}}
    req = request(AnomalyType.GPU_FAULT, "GpuXidError", "sandbox-1", overrides)

    def decide(inc: Any) -> None:
        approve()(inc)
        # the fault comes back a while after the restart (a relapse, not a failed fix)
        threading.Timer(
            4.0, sandbox.admin, ("sandbox-1", "faults", {"kind": "cuda_error", "survives_restart": True})
        ).start()

    _state, inc = run_flow(gpu_fault, req, decide, timeout=240)
    assert inc.outcome == Outcome.ESCALATED, inc.escalation_reason
    assert "relapsed after restart_worker" in inc.escalation_reason
    assert [a.result for a in inc.attempts] == ["relapsed"]
    watches = [r for r in inc.timeline if r.step == Step.WATCH]
    assert watches and watches[-1].status == "failed" and "RELAPSE" in watches[-1].summary
    assert inc.timeline.index(watches[0]) > [r.step for r in inc.timeline].index(Step.RECOVER)
