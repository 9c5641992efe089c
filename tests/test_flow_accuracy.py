"""The accuracy-drop flow against the real sandbox fleet and its golden set: a bad model release is
rolled back to the last good version, a knowledge dataset edited under the service is rolled back
to the version of the baseline (and a corrupted one is handed to the data team), a service that
answers as well as its baseline is a false positive that touches nothing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from llmedic.adapters.datastore import DataStore
from llmedic.alerts import Alert
from llmedic.catalog import AnomalyType
from llmedic.config import load_environment, settings_from_env
from llmedic.evaluation import Evaluation
from llmedic.incident import IncidentRequest, Outcome, utcnow
from llmedic.playbook import AccuracySettings
from llmedic.registry import ModelRegistry
from llmedic_sandbox.data_faults import inject
from llmedic_sandbox.fleet import KNOWLEDGE_DATASET
from tests.conftest import Fleet
from tests.flowrun import approve, reject, run_flow

pytestmark = pytest.mark.usefixtures("prefect_harness")

SERVICE = "pharma-qa"
IN_ROTATION = ["sandbox-0", "sandbox-1", "sandbox-2"]
BAD = "pharma-qa-1.1"
# The bad release gets anticoagulant and statin questions wrong (every time).
BAD_FAULT: dict[str, Any] = {
    "kind": "wrong_answers",
    "rate": 1.0,
    "tags": ["anticoagulant", "statin"],
    "model_version": BAD,
}


def evaluation() -> Evaluation:
    settings = settings_from_env()
    return Evaluation(load_environment(settings=settings), settings, SERVICE, AccuracySettings())


def take_baseline() -> float:
    ev = evaluation()
    card = ev.score()
    ev.record_baseline(card, by="test", note="healthy fleet")
    return card.accuracy


def registry() -> ModelRegistry:
    return ModelRegistry(Path(os.environ["LLMEDIC_HOME"]))


def request() -> IncidentRequest:
    alert = Alert(
        source="manual",
        anomaly=AnomalyType.ACCURACY_DROP,
        alertname="GoldenSetAccuracyDrop",
        target=SERVICE,
        starts_at=utcnow(),
    )
    return IncidentRequest(alert=alert)


def flow() -> Any:
    from flows.accuracy_drop import accuracy_drop

    return accuracy_drop


def models(fleet: Fleet) -> dict[str, str]:
    return {n: str(fleet.state(n)["model_version"]) for n in IN_ROTATION}


def release_bad_model(fleet: Fleet) -> None:
    registry().record_release(
        SERVICE, BAD, config={"quantization": "awq", "temperature": 0.7}, by="ci", note="release 1.1"
    )
    for name in IN_ROTATION:
        fleet.admin(name, "faults", BAD_FAULT)
        fleet.admin(name, "model", {"version": BAD})


def evidence(inc: Any, name: str) -> dict[str, Any]:
    return next(e for e in inc.evidence if e.name == name).data  # type: ignore[no-any-return]


def test_a_bad_release_is_rolled_back_to_the_last_good_version(sandbox: Fleet) -> None:
    registry().record_release(SERVICE, "pharma-qa-1.0", config={"temperature": 0.0}, by="ci")
    assert take_baseline() == 1.0
    release_bad_model(sandbox)
    state, inc = run_flow(flow(), request(), approve(), timeout=240)
    assert state.is_completed(), inc.escalation_reason
    assert inc.outcome == Outcome.RESOLVED and inc.diagnosis.startswith("model_regression")
    (appr,) = inc.approvals
    assert (appr.action, appr.approved, appr.by) == ("rollback_model", True, "alice")
    test = evidence(inc, "drop_test")
    assert (test["method"], test["baseline"], test["dropped"]) == ("mcnemar", "100/100", True)
    wrong = evidence(inc, "worst_items")["newly_wrong"]
    assert len(wrong) == 100 - int(test["now"].split("/")[0])
    dropped = {t["tag"] for t in evidence(inc, "by_tag")["tags"] if (t["drop"] or 0) > 0.5}
    assert {"anticoagulant", "statin"} <= dropped
    diff = evidence(inc, "model_versions")["config_diff"]
    assert diff == [
        {"key": "quantization", "old": None, "new": "awq"},
        {"key": "temperature", "old": 0.0, "new": 0.7},
    ]
    canary = evidence(inc, "canary")
    assert (canary["instance"], canary["version"], canary["right"]) == (
        "sandbox-3",
        "pharma-qa-1.0",
        canary["asked"],
    )
    assert sandbox.state("sandbox-3")["model_version"] == "pharma-qa-1.0"
    assert models(sandbox) == dict.fromkeys(IN_ROTATION, "pharma-qa-1.0")
    reg = registry()
    cur = reg.current(SERVICE)
    assert cur is not None and cur.version == "pharma-qa-1.0" and cur.config == {"temperature": 0.0}
    assert next(r for r in reg.releases(SERVICE) if r.version == BAD).bad is not None
    assert reg.frozen(SERVICE) is None
    assert inc.verification is not None and inc.verification.passed


def test_a_rejected_rollback_keeps_the_freeze_and_touches_no_instance(sandbox: Fleet) -> None:
    take_baseline()
    release_bad_model(sandbox)
    state, inc = run_flow(flow(), request(), reject(), timeout=240)
    assert (
        state.is_completed() and inc.outcome == Outcome.REJECTED and inc.actions[0].name == "freeze_updates"
    )
    assert models(sandbox) == dict.fromkeys(IN_ROTATION, BAD)
    frozen = registry().frozen(SERVICE)
    assert frozen is not None and frozen.incident == inc.id


@pytest.mark.parametrize(
    ("fault", "share", "diagnosis", "handoff"),
    [
        ("shuffle", 0.3, "knowledge_changed", False),
        ("blank", 0.2, "knowledge_corrupted", True),
    ],
)
def test_a_bad_knowledge_version_is_rolled_back_to_the_baseline_version(
    sandbox: Fleet, fault: str, share: float, diagnosis: str, handoff: bool
) -> None:
    take_baseline()
    settings = settings_from_env()
    store = DataStore(settings.datasets_dir)
    cfg = load_environment(settings=settings).dataset(KNOWLEDGE_DATASET)
    good = store.current(KNOWLEDGE_DATASET)
    assert good is not None
    bad = inject(store, KNOWLEDGE_DATASET, cfg, fault, column="answers", share=share, seed=3)  # type: ignore[arg-type]
    state, inc = run_flow(flow(), request(), approve(), timeout=240)
    assert state.is_completed(), inc.escalation_reason
    assert inc.outcome == Outcome.RESOLVED and inc.diagnosis.startswith(diagnosis)
    assert inc.approvals[0].action == "rollback_knowledge"
    ds = evidence(inc, f"dataset_{KNOWLEDGE_DATASET}")
    assert (ds["baseline_version"], ds["current"]) == (good.id, bad.id)
    assert set(evidence(inc, "worst_items")["newly_wrong"]) <= set(ds["changed_rows"])
    names = {e.name for e in inc.evidence}
    assert ("data_incident_data_missing" in names) is handoff
    current = store.current(KNOWLEDGE_DATASET)
    assert current is not None and current.id == good.id
    assert sandbox.knowledge.read_bytes() == store.file_of(KNOWLEDGE_DATASET, good).read_bytes()
    assert models(sandbox) == dict.fromkeys(IN_ROTATION, "pharma-qa-1.0")


def test_an_unchanged_service_is_a_false_positive_that_touches_nothing(sandbox: Fleet) -> None:
    take_baseline()
    state, inc = run_flow(flow(), request(), timeout=120)
    assert state.is_completed() and inc.outcome == Outcome.FALSE_POSITIVE
    assert inc.actions == [] and inc.approvals == []
    assert registry().frozen(SERVICE) is None
    assert all(
        [a["action"] for a in sandbox.state(n)["actions"]] == []  # type: ignore[index]
        for n in sandbox.urls
    )


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (
            {"kind": "errors", "rate": 1.0},
            "endpoint-unavailable: 100 of 100 golden requests failed (HTTP 500 ×100)",
        ),
        (
            {"kind": "garbage", "rate": 1.0},
            "endpoint-unavailable: 100 of 100 golden requests failed (malformed completion ×100)",
        ),
    ],
)
def test_a_service_that_errors_is_escalated_not_judged(
    sandbox: Fleet, fault: dict[str, Any], expected: str
) -> None:
    take_baseline()
    for name in IN_ROTATION:
        sandbox.admin(name, "faults", fault)
    state, inc = run_flow(flow(), request(), timeout=120)
    assert state.is_failed() and inc.outcome == Outcome.ESCALATED
    assert (inc.escalation_reason or "").startswith(expected)
    assert inc.actions == []


def test_no_baseline_escalates_with_the_command_that_records_one(sandbox: Fleet) -> None:
    state, inc = run_flow(flow(), request(), timeout=120)
    assert state.is_failed() and inc.outcome == Outcome.ESCALATED
    assert "config-invalid: service 'pharma-qa' has no baseline" in (inc.escalation_reason or "")
