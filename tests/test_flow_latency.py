"""The latency flow under Prefect's test harness, against the real sandbox fleet over HTTP.

The flow runs in a thread (no deployment, so the gate *pauses* in-process) and the test plays the
operator: it approves or rejects through the same resume API the CLI uses.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmedic.alerts import Alert
from llmedic.approval import sweep_expired
from llmedic.catalog import AnomalyType
from llmedic.incident import Incident, IncidentRequest, Outcome, Step, utcnow
from tests.conftest import Fleet
from tests.flowrun import approve, approve_cli, reject, run_flow, store

pytestmark = pytest.mark.usefixtures("prefect_harness")

FAST: dict[str, Any] = {
    "settings": {"slo_p99_seconds": 0.5, "confirm_probes": 4, "reproduce_probes": 4, "verify_probes": 8}
}
SLOW = {"kind": "slow", "delay_seconds": 0.8}


def request(target: str = "sandbox-1", dry_run: bool = False, **more: Any) -> IncidentRequest:
    overrides = {**FAST, **more}
    alert = Alert(
        source="manual",
        anomaly=AnomalyType.LATENCY,
        alertname="VLLMHighP99Latency",
        target=target,
        starts_at=utcnow(),
    )
    return IncidentRequest(alert=alert, dry_run=dry_run, overrides=overrides)


def run(
    req: IncidentRequest, decide: Callable[[Incident], None] | None = None, timeout: float = 120
) -> tuple[Any, Incident]:
    from flows.latency import latency

    return run_flow(latency, req, decide, timeout)


def actions(fleet: Fleet, name: str) -> list[str]:
    return [a["action"] for a in fleet.state(name)["actions"]]  # type: ignore[index]


def test_approved_restart_resolves(sandbox: Fleet) -> None:
    sandbox.admin("sandbox-1", "faults", SLOW)

    def resolved_then_approved(waiting: Incident) -> None:
        # Alertmanager reports the alert resolved while the run waits at the gate (the receiver
        # attaches it); the operator approves anyway.
        store().attach_resolved(waiting.flow_run_id, utcnow())
        assert store().pending_approvals()[0].resolved_alerts
        approve_cli()(waiting)

    state, inc = run(request(), resolved_then_approved)
    assert state.is_completed()
    assert inc.outcome == Outcome.RESOLVED and not inc.escalated
    assert len(inc.resolved_alerts) == 1
    assert [d.choice for d in inc.decisions if d.topic == "alert"] == ["resolved"]
    assert [s.step.value for s in inc.timeline] == [
        "detect",
        "confirm",
        "assess",
        "evidence",
        "isolate",
        "reproduce",
        "approve",
        "approve",
        "fix",
        "verify",
        "recover",
        "watch",  # the latency playbook watches the recovered instance (remediation.watch_seconds)
        "archive",
    ]
    assert inc.diagnosis.startswith("instance_degraded")
    (appr,) = inc.approvals
    assert (appr.action, appr.approved, appr.by, appr.comment, appr.via) == (
        "restart_instance",
        True,
        "alice",
        "looks right",
        "prefect",
    )
    assert [(a.name, a.applied) for a in inc.actions] == [
        ("drain_instance", True),
        ("restart_instance", True),
        ("undrain_instance", True),
    ]
    assert inc.verification is not None and inc.verification.passed
    assert actions(sandbox, "sandbox-1") == ["inject", "drain", "restart", "undrain"]
    report = Path(inc.report_path or "")
    assert (
        report.exists()
        and "## Post-mortem" in report.read_text()
        and "approved** by `alice`" in report.read_text()
    )
    assert len(inc.notifications) == 3  # opened, approval, closed


def test_rejected_restart_changes_nothing_and_keeps_the_instance_drained(sandbox: Fleet) -> None:
    sandbox.admin("sandbox-1", "faults", SLOW)
    state, inc = run(request(), reject())
    assert state.is_completed() and inc.outcome == Outcome.REJECTED and not inc.escalated
    assert (inc.approvals[0].approved, inc.approvals[0].by) == (False, "bob")
    assert actions(sandbox, "sandbox-1") == ["inject", "drain"]
    assert sandbox.state("sandbox-1")["restarts"] == 0
    assert [d.choice for d in inc.decisions if d.topic == "isolation"] == ["kept"]


def test_no_fault_is_a_false_positive_that_touches_nothing(sandbox: Fleet) -> None:
    state, inc = run(request())
    assert state.is_completed() and inc.outcome == Outcome.FALSE_POSITIVE
    assert inc.actions == [] and inc.approvals == []
    assert all(actions(sandbox, n) == [] for n in sandbox.urls)


def test_dry_run_records_what_it_would_do(sandbox: Fleet) -> None:
    sandbox.admin("sandbox-1", "faults", SLOW)
    state, inc = run(request(dry_run=True))
    assert state.is_completed() and inc.outcome == Outcome.DRY_RUN
    assert [(a.name, a.dry_run, a.applied) for a in inc.actions] == [
        ("drain_instance", True, False),
        ("restart_instance", True, False),
    ]
    assert actions(sandbox, "sandbox-1") == ["inject"]


@pytest.mark.fault(
    tried="a fix whose verification fails (the fault survives the restart)",
    survives="compensation runs; failed_rolled_back, escalated",
)
def test_failed_verification_compensates_and_escalates(sandbox: Fleet) -> None:
    sandbox.admin("sandbox-1", "faults", {**SLOW, "survives_restart": True})
    state, inc = run(request(), approve())
    assert state.is_failed()
    assert inc.outcome == Outcome.FAILED_ROLLED_BACK and inc.escalated
    assert inc.verification is not None and not inc.verification.passed
    assert [(a.name, a.compensated) for a in inc.actions] == [
        ("drain_instance", False),
        ("restart_instance", True),
        ("drain_instance", False),
    ]
    assert actions(sandbox, "sandbox-1") == ["inject", "drain", "restart", "drain"]


@pytest.mark.fault(
    tried="no decision before the approval deadline",
    survives="rejected as llmedic-timeout, escalated, nothing changed",
)
def test_approval_timeout_rejects_and_escalates(sandbox: Fleet) -> None:
    sandbox.admin("sandbox-1", "faults", SLOW)
    state, inc = run(request(approval={"timeout_minutes": 0.05}))
    assert state.is_failed() and inc.outcome == Outcome.REJECTED and inc.escalated
    assert inc.escalation_reason == "no decision on restart_instance before the deadline"
    assert (inc.approvals[0].by, inc.approvals[0].via) == ("llmedic-timeout", "timeout")
    assert sandbox.state("sandbox-1")["restarts"] == 0


def test_sweeper_answers_expired_approvals(sandbox: Fleet) -> None:
    sandbox.admin("sandbox-1", "faults", SLOW)
    swept: list[str] = []
    state, inc = run(
        request(), lambda i: swept.extend(sweep_expired(store(), now=utcnow() + timedelta(hours=1)))
    )
    assert swept == [inc.id] and state.is_failed()
    assert inc.outcome == Outcome.REJECTED and inc.escalated and inc.approvals[0].via == "timeout"


def test_instance_down_is_escalated(sandbox: Fleet) -> None:
    sandbox.admin("sandbox-1", "faults", {"kind": "down"})
    state, inc = run(request())
    assert state.is_failed() and inc.outcome == Outcome.ESCALATED
    assert inc.escalation_reason.startswith("endpoint-unavailable: ")
    assert "/health answered HTTP 503" in inc.escalation_reason


@pytest.mark.fault(
    tried="the metrics source refusing connections mid-flow",
    survives="an evidence gap with its reason; the flow goes on",
)
def test_metrics_source_unreachable_is_an_evidence_gap_not_a_crash(
    sandbox: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = yaml.safe_load(sandbox.config.read_text())
    config["metrics"] = {"kind": "prometheus", "url": "http://127.0.0.1:1", "timeout_seconds": 1}
    (tmp_path / "unreachable.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("LLMEDIC_CONFIG", str(tmp_path / "unreachable.yaml"))
    sandbox.admin("sandbox-1", "faults", SLOW)
    state, inc = run(request(), approve())
    assert state.is_completed() and inc.outcome == Outcome.RESOLVED
    assert [e.name for e in inc.evidence if e.gap] == ["target_metrics", "fleet_metrics"]
    confirm = inc.step(Step.CONFIRM)
    assert confirm is not None and "probes only (no metrics in the window)" in confirm.summary


def test_unknown_target_fails_with_a_clear_message(sandbox: Fleet) -> None:
    from flows.latency import latency

    state = latency(request(target="nowhere-7"), return_state=True)
    assert state.is_failed()
    assert "target 'nowhere-7' is not an instance of any service in the environment file" in str(
        state.message
    )


def test_fleet_wide_slow_decoding_switches_to_the_quantised_variant(sandbox: Fleet) -> None:
    # The probe asks the question with the longest answer (8 tokens), so it measures what the
    # slowest real requests see: 8 × (0.16 + 0.004) s ≈ 1.3 s before, a quarter of the decode time
    # after (≈ 0.36 s). Prometheus-style bucket interpolation reports ≤ 0.5 s for that, well under
    # the 1 s SLO.
    for name in ("sandbox-0", "sandbox-1", "sandbox-2"):
        sandbox.admin(name, "faults", {"kind": "slow_decode", "itl_seconds": 0.16})
    settings = {
        **FAST["settings"],
        "slo_p99_seconds": 1.0,
        "probe_prompt": "What is the main risk of combining tramadol with ondansetron?",
    }
    state, inc = run(request(settings=settings), approve())
    assert state.is_completed(), inc.escalation_reason
    assert inc.outcome == Outcome.RESOLVED and inc.diagnosis.startswith("slow_decode")
    # Canary first: the switch is applied to one instance, verified there, then to the rest.
    assert [(a.name, a.applied) for a in inc.actions] == [("switch_model", True), ("switch_model", True)]
    assert [d.choice for d in inc.decisions if d.topic == "canary"][-1] == "verified"
    assert {sandbox.state(n)["model_version"] for n in ("sandbox-0", "sandbox-1", "sandbox-2")} == {
        "pharma-qa-1.0-awq"
    }
    load = next(e for e in inc.evidence if e.name == "target_load").data
    assert load["itl_p99"] is not None and load["itl_p99"] > 0.05
