"""Canary first (issue 16, requirement 6): a fix that acts on every instance is applied to one,
verified there with the anomaly type's own measurements of that instance, then to the rest; a
failure on the canary undoes only the canary and counts as a failed fix. Real flows against the
sandbox fleet under the Prefect harness."""

from __future__ import annotations

from typing import Any

import pytest

from llmedic.actions import ACTIONS
from llmedic.alerts import Alert
from llmedic.catalog import AnomalyType
from llmedic.incident import Incident, IncidentRequest, Outcome, utcnow
from tasks.fix import merge_undo
from tests.conftest import Fleet
from tests.flowrun import approve, run_flow

pytestmark = pytest.mark.usefixtures("prefect_harness")

FLEET = ("sandbox-0", "sandbox-1", "sandbox-2")
AWQ = "pharma-qa-1.0-awq"
SETTINGS: dict[str, Any] = {
    "slo_p99_seconds": 1.0,
    "confirm_probes": 4,
    "reproduce_probes": 4,
    "verify_probes": 8,
    "probe_prompt": "What is the main risk of combining tramadol with ondansetron?",
}


def latency(target: str = "sandbox-1") -> tuple[Any, Incident]:
    from flows.latency import latency as flow

    alert = Alert(
        source="manual",
        anomaly=AnomalyType.LATENCY,
        alertname="VLLMHighP99Latency",
        target=target,
        starts_at=utcnow(),
    )
    req = IncidentRequest(alert=alert, overrides={"settings": SETTINGS, "remediation": {"max_attempts": 1}})
    return run_flow(flow, req, approve(), 180)


def model_events(fleet: Fleet, name: str) -> list[str]:
    return [str(a.get("version")) for a in fleet.state(name)["actions"] if a["action"] == "model"]  # type: ignore[union-attr, index]


def slow_decode_everywhere(sandbox: Fleet) -> None:
    for name in FLEET:
        sandbox.admin(name, "faults", {"kind": "slow_decode", "itl_seconds": 0.16})


def test_the_catalogue_marks_the_fleet_actions() -> None:
    assert sorted(n for n, a in ACTIONS.items() if a.fleet) == [
        "rollback_model",
        "rolling_restart",
        "switch_model",
    ]


@pytest.mark.parametrize(
    ("first", "then", "merged"),
    [
        (
            {"variant": "v", "previous": {"a": "1"}},
            {"variant": "v", "previous": {"b": "1", "c": "2"}},
            {"variant": "v", "previous": {"a": "1", "b": "1", "c": "2"}},
        ),
        (
            {"to": "x", "previous": {"a": "1"}, "compensating": True},
            {"to": "y", "previous": {}, "compensating": True},
            {"to": "y", "previous": {"a": "1"}, "compensating": True},
        ),
        ({}, {}, {}),
    ],
)
def test_one_compensation_undoes_both_parts(
    first: dict[str, Any], then: dict[str, Any], merged: dict[str, Any]
) -> None:
    assert merge_undo(first, then) == merged


def test_a_verified_canary_then_the_rest(sandbox: Fleet) -> None:
    slow_decode_everywhere(sandbox)
    state, inc = latency()
    assert state.is_completed(), inc.escalation_reason
    assert inc.outcome == Outcome.RESOLVED and inc.diagnosis.startswith("slow_decode")
    assert [(a.name, a.target, a.applied, a.compensated) for a in inc.actions] == [
        ("switch_model", "sandbox-1", True, False),
        ("switch_model", "sandbox-0, sandbox-1, sandbox-2", True, False),
    ]
    assert inc.actions[1].compensation_params["previous"] == dict.fromkeys(FLEET, "pharma-qa-1.0")
    assert [(d.choice) for d in inc.decisions if d.topic == "canary"] == ["sandbox-1", "verified"]
    assert any(e.name.startswith("canary_verify_round_") for e in inc.evidence)
    assert {n: model_events(sandbox, n) for n in FLEET} == {n: [AWQ] for n in FLEET}


@pytest.mark.fault(
    tried="a fleet-wide fix (switch to the quantised build) that is bad on the instance it is tried on first",
    survives="only the canary is switched and switched back; the other instances are never touched; the fix counts as failed",
)
def test_a_failed_canary_undoes_only_the_canary(sandbox: Fleet) -> None:
    slow_decode_everywhere(sandbox)
    # The quantised build is broken on sandbox-1 (a bad node for it): every request 2.5 s late.
    sandbox.admin(
        "sandbox-1",
        "faults",
        {"kind": "slow", "delay_seconds": 2.5, "model_version": AWQ, "survives_restart": True},
    )
    state, inc = latency()
    assert state.is_failed()
    assert inc.escalated and inc.outcome != Outcome.RESOLVED
    assert [(a.name, a.target, a.applied, a.compensated) for a in inc.actions[:2]] == [
        ("switch_model", "sandbox-1", True, True),
        ("switch_model", "sandbox-1", True, False),
    ]
    assert inc.actions[1].params == {"variant": AWQ, "previous": {"sandbox-1": "pharma-qa-1.0"}}
    assert [d.choice for d in inc.decisions if d.topic == "canary"] == ["sandbox-1", "failed"]
    assert "canary sandbox-1" in inc.escalation_reason
    assert model_events(sandbox, "sandbox-1") == [AWQ, "pharma-qa-1.0"]
    assert model_events(sandbox, "sandbox-0") == model_events(sandbox, "sandbox-2") == []
    assert {sandbox.state(n)["model_version"] for n in FLEET} == {"pharma-qa-1.0"}
