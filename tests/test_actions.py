"""The fix executors against the real sandbox, each followed by its compensation."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from llmedic.catalog import AnomalyType, Risk
from llmedic.incident import ApprovalRecord
from llmedic.playbook import FixOption
from tasks.fix import apply_fix, compensate
from tasks.runtime import StepContext
from tests.conftest import Fleet

T0 = datetime(2026, 11, 24, tzinfo=UTC)


def ctx(home: Path, fleet: Fleet, instance: str = "sandbox-0") -> StepContext:
    return StepContext(
        incident_id="actions",
        anomaly=AnomalyType.LATENCY,
        target=instance,
        service="pharma-qa",
        instance=instance,
        home=str(home),
        config_path=str(fleet.config),
    )


def approved(name: str) -> ApprovalRecord:
    return ApprovalRecord(
        action=name, risk=Risk.HIGH, approved=True, by="alice", requested_at=T0, decided_at=T0
    )


@pytest.mark.parametrize(
    ("params", "expected"),
    [({"factor": 0.5, "min_limit": 1}, 8), ({"factor": 0.1, "min_limit": 4}, 4), ({"limit": 3}, 3)],
)
def test_set_concurrency_and_restore(
    sandbox: Fleet, clean_environ: Path, params: dict[str, object], expected: int
) -> None:
    fix = FixOption(
        name="lower_concurrency", action="set_concurrency", risk=Risk.LOW, when=["queueing"], params=params
    )
    done = apply_fix.fn(ctx(clean_environ, sandbox), fix, None)
    (action,) = done.actions
    assert (action.result, action.compensation, action.compensation_params) == (
        f"concurrency limit 16 → {expected}",
        "set_concurrency",
        {"limit": 16},
    )
    assert sandbox.state("sandbox-0")["concurrency_limit"] == expected
    undo = compensate.fn(ctx(clean_environ, sandbox), action)
    assert (
        undo.summary == f"compensated set_concurrency with set_concurrency: concurrency limit {expected} → 16"
    )
    assert sandbox.state("sandbox-0")["concurrency_limit"] == 16


def test_scale_out_brings_the_standby_in_and_scale_in_takes_it_out(
    sandbox: Fleet, clean_environ: Path
) -> None:
    fix = FixOption(
        name="scale_out", action="scale_out", risk=Risk.HIGH, when=["fleet_overload"], params={"replicas": 1}
    )
    done = apply_fix.fn(ctx(clean_environ, sandbox), fix, approved("scale_out"))
    (action,) = done.actions
    assert action.compensation_params == {"replicas": 1, "instances": ["sandbox-3"]}
    assert sandbox.state("sandbox-3")["drained"] is False
    compensate.fn(ctx(clean_environ, sandbox), action)
    assert sandbox.state("sandbox-3")["drained"] is True


def test_scale_out_without_a_standby_is_a_control_error(sandbox: Fleet, clean_environ: Path) -> None:
    from llmedic.errors import ControlError

    sandbox.admin("sandbox-3", "undrain")
    fix = FixOption(name="scale_out", action="scale_out", risk=Risk.HIGH, when=["fleet_overload"])
    with pytest.raises(ControlError) as exc:
        apply_fix.fn(ctx(clean_environ, sandbox), fix, approved("scale_out"))
    assert exc.value.message == "service 'pharma-qa' has no drained standby instance to bring in"


def test_restart_waits_for_health(sandbox: Fleet, clean_environ: Path) -> None:
    fix = FixOption(name="restart_instance", action="restart_instance", risk=Risk.HIGH, when=["x"])
    done = apply_fix.fn(ctx(clean_environ, sandbox, "sandbox-2"), fix, approved("restart_instance"))
    assert done.actions[0].result == "sandbox-2 restarted and healthy"
    state = sandbox.state("sandbox-2")
    assert (state["restarts"], state["healthy"]) == (1, True)


def test_every_compensation_is_a_registered_action_and_unknown_names_list_the_valid_ones() -> None:
    from llmedic.actions import ACTIONS, get_action
    from llmedic.errors import ControlError

    assert {a.compensation for a in ACTIONS.values() if a.compensation} <= set(ACTIONS)
    with pytest.raises(ControlError) as exc:
        get_action("reboot_everything")
    assert exc.value.message == "no action named 'reboot_everything'"
    assert "set_concurrency" in (exc.value.hint or "")


def test_state_a_compensation_passes_back_is_not_a_playbook_param() -> None:
    from llmedic.actions import get_action
    from llmedic.actions.model import SwitchModelUndo

    switch = get_action("switch_model")
    assert switch.accepts is SwitchModelUndo and "previous" not in switch.params.model_fields
    bound = switch.bind({"variant": "m-1", "previous": {"sandbox-0": "m-0"}})
    assert isinstance(bound, SwitchModelUndo) and bound.previous == {"sandbox-0": "m-0"}
