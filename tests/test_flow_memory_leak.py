"""The memory-leak flow against the real sandbox fleet: a leak injected at a set rate per request
is detected from /metrics, reproduced on the drained instance, fixed by a restart after approval and
verified under traffic; a leak that survives restarts is rolled back; no fault touches nothing."""

from __future__ import annotations

from typing import Any

import pytest

from llmedic.alerts import Alert
from llmedic.catalog import AnomalyType
from llmedic.incident import IncidentRequest, Outcome, utcnow
from tests.conftest import Fleet
from tests.flowrun import approve, run_flow

pytestmark = pytest.mark.usefixtures("prefect_harness")

FAST: dict[str, Any] = {
    "settings": {
        "window_seconds": 7,
        "sample_interval_seconds": 0.2,
        "min_samples": 20,
        "reproduce_requests": 8,
        "verify_seconds": 5,
    }
}
LEAK = {"kind": "leak", "bytes_per_request": 50_000_000}


def request(target: str = "sandbox-1") -> IncidentRequest:
    alert = Alert(
        source="manual",
        anomaly=AnomalyType.MEMORY_LEAK,
        alertname="ProcessMemoryGrowing",
        target=target,
        starts_at=utcnow(),
    )
    return IncidentRequest(alert=alert, overrides=FAST)


def actions(fleet: Fleet, name: str) -> list[str]:
    return [a["action"] for a in fleet.state(name)["actions"]]  # type: ignore[index]


def flow() -> Any:
    from flows.memory_leak import memory_leak

    return memory_leak


@pytest.mark.parametrize("source", ["metrics", "process"])
def test_leak_is_confirmed_reproduced_restarted_and_verified(sandbox: Fleet, source: str) -> None:
    sandbox.admin("sandbox-1", "faults", LEAK)
    req = request()
    req = req.model_copy(update={"overrides": {"settings": {**FAST["settings"], "memory_source": source}}})
    state, inc = run_flow(flow(), req, approve(), timeout=180)
    assert state.is_completed(), inc.escalation_reason
    assert inc.outcome == Outcome.RESOLVED and inc.diagnosis.startswith("instance_leak")
    (appr,) = inc.approvals
    assert (appr.action, appr.approved, appr.by) == ("restart_instance", True, "alice")
    assert actions(sandbox, "sandbox-1") == ["inject", "drain", "restart", "undrain"]
    assert all(actions(sandbox, n) == [] for n in sandbox.urls if n != "sandbox-1")
    series = next(e for e in inc.evidence if e.name == "memory_series")
    assert series.source == ("scrape" if source == "metrics" else "process")
    trend = series.data["verdict"]
    assert trend["leaking"] and trend["slope_low_per_hour"] > 0 and trend["mk_p"] < 0.01
    repro = next(e for e in inc.evidence if e.name == "reproduce_memory").data
    assert repro["after"] - repro["before"] == 8 * LEAK["bytes_per_request"]
    heap = next(e for e in inc.evidence if e.name == "heap_profile")
    assert heap.gap and heap.summary.endswith("start the sandbox with --trace-memory")
    assert inc.verification is not None and inc.verification.passed


def test_a_leak_that_survives_the_restart_is_rolled_back(sandbox: Fleet) -> None:
    sandbox.admin("sandbox-1", "faults", {**LEAK, "survives_restart": True})
    state, inc = run_flow(flow(), request(), approve(), timeout=180)
    assert state.is_failed() and inc.outcome == Outcome.FAILED_ROLLED_BACK and inc.escalated
    assert inc.verification is not None
    assert [c.name for c in inc.verification.checks if not c.passed][-1] == "memory_not_growing"
    assert actions(sandbox, "sandbox-1") == ["inject", "drain", "restart", "drain"]


def test_no_fault_is_a_false_positive_that_touches_nothing(sandbox: Fleet) -> None:
    state, inc = run_flow(flow(), request(), timeout=120)
    assert state.is_completed() and inc.outcome == Outcome.FALSE_POSITIVE
    assert inc.actions == [] and inc.approvals == []
    assert all(actions(sandbox, n) == [] for n in sandbox.urls)
