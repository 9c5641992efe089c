"""Prevention for model quality, against the real sandbox: the daily golden sample (first run keeps
a baseline, a real drop is flagged and an incident requested) and the release gate (a worse candidate
is blocked on golden set, adversarial prompts and load; a good one is promoted; the canary always
goes back to what it served)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from llmedic.registry import ModelRegistry
from tests.conftest import Fleet

pytestmark = pytest.mark.usefixtures("prefect_harness")

SERVICE = "pharma-qa"
IN_ROTATION = ["sandbox-0", "sandbox-1", "sandbox-2"]


def registry() -> ModelRegistry:
    return ModelRegistry(Path(os.environ["LLMEDIC_HOME"]))


def sample(**kw: Any) -> tuple[Any, dict[str, Any]]:
    from flows.golden_sample import GoldenSampleRequest, golden_sample

    state = golden_sample(GoldenSampleRequest(**kw), return_state=True)
    return state, state.result(raise_on_failure=False)


def test_golden_sample_keeps_a_first_baseline_then_flags_a_real_drop(sandbox: Fleet) -> None:
    state, data = sample()
    (rec,) = data["records"]
    assert state.is_completed() and rec["note"] == "no baseline yet: this score is now the baseline"
    base = registry().reference(SERVICE, f"{SERVICE}-golden")
    assert base is not None and (base.version, base.accuracy, base.by) == (
        "pharma-qa-1.0",
        1.0,
        "llmedic-golden-sample",
    )

    state, data = sample(sample_size=40)
    (rec,) = data["records"]
    assert state.is_completed() and (rec["items"], rec["accuracy"], rec["dropped"]) == (40, 1.0, False)

    for name in IN_ROTATION:
        sandbox.admin(
            name, "faults", {"kind": "wrong_answers", "rate": 1.0, "tags": ["serotonergic", "statin"]}
        )
    state, data = sample()
    (rec,) = data["records"]
    assert rec["dropped"] and rec["p_value"] < 0.001 and rec["accuracy"] < 0.9
    # No deployment is served in this test: the incident request is refused, and the run says so.
    assert rec["incident"].startswith(
        "not opened: orchestration-failed: deployment 'llmedic-accuracy-drop/default'"
    )
    assert state.is_failed() and "could not sample or open incidents for: ['pharma-qa']" in state.message
    assert Path(data["report"]).read_text().count("**yes**") == 1


def gate(**kw: Any) -> tuple[Any, dict[str, Any]]:
    from flows.release_gate import ReleaseGateRequest, release_gate

    state = release_gate(ReleaseGateRequest(service=SERVICE, **kw), return_state=True)
    data = state.result(raise_on_failure=False) if state.data is not None else {}
    return state, data


def test_a_worse_candidate_is_blocked_on_all_three_checks(sandbox: Fleet) -> None:
    cand = "pharma-qa-2.0"
    for fault in (
        {"kind": "wrong_answers", "rate": 1.0, "tags": ["anticoagulant"], "model_version": cand},
        {"kind": "jailbreak", "model_version": cand},
        {"kind": "slow_decode", "itl_seconds": 0.08, "model_version": cand},
    ):
        sandbox.admin("sandbox-3", "faults", fault)
    state, data = gate(candidate=cand, promote=True)
    assert state.is_failed() and state.message.startswith(
        "pharma-qa-2.0 BLOCKED: worse than pharma-qa-1.0 on ['golden_set', 'adversarial', 'load_test']"
    )
    checks = {c["name"]: c for c in data["checks"]}
    assert checks["adversarial"]["detail"]["newly_failing"] == [f"adv-00{i}" for i in range(1, 9)]
    assert checks["golden_set"]["detail"]["newly_wrong"][0] == "ddi-001"
    assert data["promoted"] is None and data["canary"] == "sandbox-3"
    cur = registry().current(SERVICE)
    assert cur is not None and cur.version == "pharma-qa-1.0"
    assert sandbox.state("sandbox-3")["model_version"] == "pharma-qa-1.0"
    assert all(sandbox.state(n)["model_version"] == "pharma-qa-1.0" for n in IN_ROTATION)
    assert "BLOCKED" in Path(data["report"]).read_text()


def test_a_good_candidate_is_promoted_with_its_baseline(sandbox: Fleet) -> None:
    state, data = gate(candidate="pharma-qa-1.2", config={"quantization": "fp8"}, promote=True, by="alice")
    assert state.is_completed(), state.message
    assert (
        data["promoted"]
        == "pharma-qa-1.2 released; ['sandbox-0', 'sandbox-1', 'sandbox-2'] switched one at a time"
    )
    reg = registry()
    cur = reg.current(SERVICE)
    assert cur is not None and (cur.version, cur.config, cur.by) == (
        "pharma-qa-1.2",
        {"quantization": "fp8"},
        "alice",
    )
    base = reg.baseline(SERVICE, "pharma-qa-1.2", f"{SERVICE}-golden")
    assert base is not None and base.accuracy == 1.0
    assert [sandbox.state(n)["model_version"] for n in IN_ROTATION] == ["pharma-qa-1.2"] * 3
    assert sandbox.state("sandbox-3")["model_version"] == "pharma-qa-1.0"


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"candidate": "pharma-qa-1.0"}, "'pharma-qa-1.0' is already the current version of 'pharma-qa'"),
        ({"candidate": "x-1", "canary": "sandbox-0"}, "canary 'sandbox-0' takes user traffic"),
        ({"candidate": "x-1", "canary": "nope"}, "service 'pharma-qa' has no instance 'nope'"),
    ],
)
def test_a_gate_that_cannot_run_says_why(sandbox: Fleet, kw: dict[str, Any], message: str) -> None:
    state, _ = gate(**kw)
    assert state.is_failed() and message in state.message


def test_a_frozen_service_refuses_the_gate(sandbox: Fleet) -> None:
    registry().ensure_seeded(SERVICE, "pharma-qa-1.0")
    registry().freeze(SERVICE, by="llmedic", note="accuracy incident", incident="inc-9")
    state, _ = gate(candidate="pharma-qa-1.2", promote=True)
    assert state.is_failed() and "updates-frozen: release gate of 'pharma-qa-1.2' refused" in state.message
