"""For every fix any playbook declares risky, prove it cannot run without a valid approval."""

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from llmedic.actions import ACTIONS, ActionOutcome
from llmedic.catalog import AnomalyType, Risk
from llmedic.errors import ApprovalRequired
from llmedic.incident import ApprovalRecord
from llmedic.playbook import FixOption, load_all_playbooks
from tasks.fix import apply_fix
from tasks.runtime import StepContext
from tests.conftest import Fleet

RISKY = [
    pytest.param(kind, f, id=f"{kind.value}:{f.name}")
    for kind, book in load_all_playbooks().items()
    for f in book.fixes
    if book.approval.needs_approval(f.risk)
]
SAFE = [
    pytest.param(kind, f, id=f"{kind.value}:{f.name}")
    for kind, book in load_all_playbooks().items()
    for f in book.fixes
    if not book.approval.needs_approval(f.risk)
]
T0 = datetime(2026, 11, 24, tzinfo=UTC)


def approval(action: str, approved: bool, by: str, verified: bool = False) -> ApprovalRecord:
    return ApprovalRecord(
        action=action,
        risk=Risk.HIGH,
        approved=approved,
        by=by,
        requested_at=T0,
        decided_at=T0,
        verified=verified,
        identity="token" if verified else "none",
    )


def ctx(kind: AnomalyType, home: Path, fleet: Fleet | None = None, **overrides: Any) -> StepContext:
    return StepContext(
        incident_id="guard",
        anomaly=kind,
        target="sandbox-0",
        service="pharma-qa" if fleet else None,
        instance="sandbox-0" if fleet else None,
        home=str(home),
        config_path=str(fleet.config) if fleet else None,
        overrides=overrides,
    )


@pytest.fixture
def executed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    for name, spec in list(ACTIONS.items()):
        fake = replace(spec, run=lambda p, rt, name=name: (calls.append(name), ActionOutcome("done"))[1])
        monkeypatch.setitem(ACTIONS, name, fake)
    return calls


def test_there_are_risky_fixes_to_guard() -> None:
    assert len(RISKY) >= 2


@pytest.mark.parametrize(("kind", "fix"), RISKY)
@pytest.mark.parametrize(
    ("decision", "message"),
    [
        (None, "is {risk} risk and has no approval; it was not run"),
        ("rejected", "was rejected by bob; it was not run"),
        ("other-action", "the approval is for 'something_else'"),
        ("not-an-approver", "'mallory' may not approve"),
        ("unverified", "by 'alice' was not verified; it was not run"),
    ],
)
def test_risky_fix_never_runs_without_approval(
    kind: AnomalyType,
    fix: FixOption,
    decision: str | None,
    message: str,
    executed: list[str],
    clean_environ: Path,
) -> None:
    overrides: dict[str, Any] = {}
    given: ApprovalRecord | None = None
    if decision == "rejected":
        given = approval(fix.name, False, "bob")
    elif decision == "other-action":
        given = approval("something_else", True, "alice")
    elif decision == "not-an-approver":
        overrides = {"approval": {"approvers": ["alice"]}}
        given = approval(fix.name, True, "mallory")
    elif decision == "unverified":
        overrides = {"approval": {"approvers": ["alice"]}}
        given = approval(fix.name, True, "alice")
    with pytest.raises(ApprovalRequired) as exc:
        apply_fix.fn(ctx(kind, clean_environ, **overrides), fix, given)
    assert message.format(risk=fix.risk.value) in exc.value.message
    assert executed == []


@pytest.mark.parametrize(("kind", "fix"), RISKY)
def test_risky_fix_runs_with_a_valid_approval(
    kind: AnomalyType, fix: FixOption, executed: list[str], clean_environ: Path, sandbox: Fleet
) -> None:
    result = apply_fix.fn(
        ctx(kind, clean_environ, sandbox, approval={"approvers": ["alice"]}),
        fix,
        approval(fix.name, True, "alice", verified=True),
    )
    assert executed == [fix.action]
    assert result.actions[0].applied is True


@pytest.mark.parametrize(("kind", "fix"), SAFE)
def test_low_risk_fix_needs_no_approval(
    kind: AnomalyType, fix: FixOption, executed: list[str], clean_environ: Path, sandbox: Fleet
) -> None:
    apply_fix.fn(ctx(kind, clean_environ, sandbox), fix, None)
    assert executed == [fix.action]
