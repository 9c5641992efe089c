"""Game days: the scenario format (every shipped file valid; bad files refused with file, line and
field), and a game day through the whole stack — receiver, Prefect server, runner, sandbox — with a
control, a data scenario and a GPU scenario, scored. (`make gameday` runs every shipped scenario.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmedic.catalog import AnomalyType
from llmedic.config import Settings
from llmedic.errors import ConfigError
from llmedic_sandbox.gameday import GameDay, load_scenarios, shipped_scenarios


def test_the_shipped_scenarios_cover_every_anomaly_type_controls_and_compounds() -> None:
    scenarios = load_scenarios()
    assert len(scenarios) == len(shipped_scenarios())
    covered = {e.anomaly for s in scenarios for e in s.expect}
    controls = [s.name for s in scenarios if not s.inject]
    compounds = [s.name for s in scenarios if len(s.inject) > 1 or s.expect[0].evidence or len(s.expect) > 1]
    assert covered == set(AnomalyType)
    assert all(
        e.touches_nothing and e.outcome == "false_positive"
        for s in scenarios
        if not s.inject
        for e in s.expect
    )
    assert len(controls) >= 3 and len(compounds) >= 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\n", "description"),
        (
            "name: Bad Name\ndescription: d\nalerts: [{labels: {a: b}}]\nexpect: [{anomaly: latency, target: t, outcome: resolved}]\n",
            "name",
        ),
        (
            "name: x\ndescription: d\nalerts: [{labels: {a: b}}]\nexpect: [{anomaly: latency, target: t, outcome: resolved}]\n"
            "inject: [{kind: sandbox, instance: s, fault: {}, extra: 1}]\n",
            "extra",
        ),
        (
            "name: x\ndescription: d\nalerts: [{labels: {a: b}}]\nexpect: [{anomaly: nope, target: t, outcome: resolved}]\n",
            "anomaly",
        ),
        (
            "name: x\ndescription: d\nalerts: [{labels: {a: b}}]\nexpect: [{anomaly: latency, target: t, outcome: resolved}]\n"
            "inject: [{kind: dataset, dataset: d, fault: explode}]\n",
            "fault",
        ),
        ("- just\n- a list\n", "top level must be a mapping"),
    ],
)
def test_bad_scenario_files_are_refused_clearly(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_scenarios([f])
    assert str(f) in str(err.value) and message in str(err.value)


def test_unknown_names_and_paths_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no scenario named nope"):
        load_scenarios(names=["nope"])
    with pytest.raises(ConfigError, match="no such scenario file"):
        load_scenarios([tmp_path / "missing.yaml"])


@pytest.mark.fault(
    tried="seeded secrets (receiver token, sandbox admin token) through a game day",
    survives="neither appears in logs, incidents, reports, the outbox or Prefect's database",
)
@pytest.mark.e2e
def test_a_game_day_through_the_whole_stack(tmp_path: Path) -> None:
    chosen = load_scenarios(names=["control-latency", "data-quality", "gpu-reset-needed"])
    home = tmp_path / "gd"
    day = GameDay(Settings(home=home), chosen, log=lambda _m: None)
    rows = day.run()
    card = {(r.scenario, r.anomaly): (r.outcome, r.confirmed, r.diagnosed, r.fixed, r.verified) for r in rows}
    assert card == {
        ("control-latency", "latency"): ("false_positive", False, False, False, False),
        ("data-quality", "data_quality"): ("resolved", True, True, True, True),
        ("gpu-reset-needed", "gpu_fault"): ("resolved", True, True, True, True),
    }, json.dumps([r.as_dict() for r in rows], indent=1)
    assert all(r.passed for r in rows)
    assert all(r.seconds_to_recover and r.seconds_to_recover > 0 for r in rows if r.outcome == "resolved")
    assert {r.alert_path for r in rows} == {"alertmanager payload → receiver"}
    # Seeded secrets — the receiver's bearer token and the sandbox admin token (a secret in
    # llmedic.yaml) — appear nowhere but where they are kept: not in logs, incidents, reports,
    # archives, the outbox or Prefect's database (parameters, logs, artifacts, results).
    secrets = {
        "receiver token": (home / "receiver.token").read_text().strip(),
        "admin token": day.admin_token,
    }
    kept = {home / "receiver.token", home / "sandbox" / "llmedic.yaml"}
    scanned = 0
    for path in home.rglob("*"):
        if path.is_file() and path not in kept:
            data = path.read_bytes()
            scanned += 1
            for what, value in secrets.items():
                assert value.encode() not in data, f"the {what} leaked into {path}"
    assert scanned > 50 and (home / "prefect" / "prefect.db").exists()


@pytest.mark.fault(
    tried="a scenario whose data fault changes nothing a user reads (mojibake on ASCII-only text, a "
    "date rewrite on a column with no dates)",
    survives="the game day refuses it before any alert, naming the scenario, the fault and why; a "
    "fault that changes the data is accepted",
)
@pytest.mark.parametrize(
    ("fault", "column", "values", "refused"),
    [
        ("mojibake", "text", ["plain ascii", "also ascii", "still ascii"], True),
        ("mojibake", "text", ["café au lait", "naïve", "Zürich"], False),
        ("date_format", "text", ["no", "dates", "here"], True),
        ("outliers", "dose", ["1", "2", "3"], False),
    ],
)
def test_a_fault_that_changes_nothing_is_refused(
    fault: str, column: str, values: list[str], refused: bool
) -> None:
    import pandas as pd

    from llmedic_sandbox.gameday.runner import refuse_invisible
    from llmedic_sandbox.gameday.scenario import DatasetFault

    frame = pd.DataFrame({column: values})
    spec = DatasetFault.model_validate(
        {"kind": "dataset", "dataset": "notes", "fault": fault, "column": column, "share": 1.0}
    )
    if not refused:
        refuse_invisible("probe", spec, frame)
        return
    with pytest.raises(ConfigError) as err:
        refuse_invisible("probe", spec, frame)
    assert err.value.message == (
        f"scenario 'probe': fault {fault!r} on column {column!r} of dataset 'notes' changes nothing "
        "(the faulted version is identical to the current one, 3 rows), so no user could see it and "
        "any alert would be a false positive"
    )


_BASE = (
    "name: x\ndescription: d\nalerts: [{labels: {a: b}}]\n"
    "expect: [{anomaly: latency, target: t, outcome: resolved}]\ntimeout_seconds: 100\n"
)


@pytest.mark.parametrize(
    ("fault", "accepted", "message"),
    [
        ("{kind: sandbox, instance: s, fault: {kind: slow}}", 0.0, ""),
        ("{kind: sandbox, instance: s, fault: {kind: slow}, after_seconds: 0}", 0.0, ""),
        ("{kind: sandbox, instance: s, fault: {kind: slow}, after_seconds: 40}", 40.0, ""),
        ("{kind: gpu, device: 1, xid: 79, after_seconds: 99.5}", 99.5, ""),
        ("{kind: link, mode: drop, after_seconds: 12}", 12.0, ""),
        (
            "{kind: sandbox, instance: s, fault: {kind: slow}, after_seconds: -1}",
            None,
            "greater than or equal to 0",
        ),
        (
            "{kind: sandbox, instance: s, fault: {kind: slow}, after_seconds: soon}",
            None,
            "after_seconds",
        ),
        (
            "{kind: sandbox, instance: s, fault: {kind: slow}, after_seconds: 100}",
            None,
            "inject[0] (sandbox) after_seconds 100 is not under timeout_seconds 100: the scenario would "
            "end before the fault is injected; lower after_seconds or raise timeout_seconds",
        ),
    ],
)
def test_a_fault_may_wait_after_the_start_but_not_past_the_timeout(
    tmp_path: Path, fault: str, accepted: float | None, message: str
) -> None:
    f = tmp_path / "timed.yaml"
    f.write_text(_BASE + f"inject: [{fault}]\n")
    if accepted is not None:
        (scenario,) = load_scenarios([f])
        assert scenario.inject[0].after_seconds == accepted
        return
    with pytest.raises(ConfigError) as err:
        load_scenarios([f])
    assert str(f) in str(err.value) and message in str(err.value)


def _waiting(run: str, pending: dict[str, str] | None, outcome: str = "open") -> object:
    from llmedic.alerts import Alert
    from llmedic.catalog import anomaly_info
    from llmedic.incident import Incident, utcnow

    info = anomaly_info(AnomalyType.LATENCY)
    return Incident(
        id=f"latency-{run}",
        anomaly=AnomalyType.LATENCY,
        category=info.category,
        team=info.team,
        title=info.title,
        target="sandbox-1",
        alert=Alert(target="sandbox-1"),
        flow_run_id=run,
        opened_at=utcnow(),
        outcome=outcome,
        pending_approval=pending,
    )


@pytest.mark.fault(
    tried="one run that opens a second approval gate (the next fix after a failed verification)",
    survives="the game day answers each gate once, keyed by (flow run, the gate's nonce), never "
    "leaving the second one unanswered",
)
def test_every_gate_of_a_run_is_answered_once() -> None:
    from llmedic.incident import Incident
    from llmedic_sandbox.gameday.timed import gate_key

    seen = [
        # (flow run, pending approval, outcome) as _follow polls them → answer it?
        (("r1", {"action": "lower_concurrency", "nonce": "n1"}, "open"), True),
        (("r1", {"action": "lower_concurrency", "nonce": "n1"}, "open"), False),  # same gate
        (("r1", None, "open"), False),  # between gates
        (("r1", {"action": "restart_instance", "nonce": "n2"}, "open"), True),  # the second gate
        (("r2", {"action": "restart_instance", "nonce": "n1"}, "open"), True),  # another run
        (("r1", {"action": "restart_instance", "nonce": "n3"}, "resolved"), False),  # closed
        (("", {"action": "restart_instance", "nonce": "n4"}, "open"), False),  # no run yet
    ]
    answered: set[tuple[str, str]] = set()
    got = []
    for (run, pending, outcome), _ in seen:
        inc = _waiting(run, pending, outcome)
        assert isinstance(inc, Incident)
        key = gate_key(inc)
        got.append(key is not None and key not in answered)
        if key is not None:
            answered.add(key)
    assert got == [want for _, want in seen]
    assert answered == {("r1", "n1"), ("r1", "n2"), ("r2", "n1")}


@pytest.mark.fault(
    tried="a timed fault (after_seconds) that fails to inject, and one due after the scenario ended",
    survives="both are problems on the scorecard (what, when, why); the timer threads are cancelled "
    "or joined, none left running",
)
def test_timed_faults_are_injected_late_cancelled_or_reported() -> None:
    import threading
    import time

    from llmedic_sandbox.gameday.scenario import LinkFault, SandboxFault
    from llmedic_sandbox.gameday.timed import DelayedFaults

    got: list[tuple[str, float]] = []
    started = time.monotonic()

    def inject(fault: object) -> None:
        if isinstance(fault, LinkFault):
            raise ConfigError("no network link in this game day")
        got.append(("sandbox", time.monotonic() - started))

    soon = SandboxFault(kind="sandbox", instance="s", fault={"kind": "slow"}, after_seconds=0.2)
    broken = LinkFault(kind="link", mode="drop", after_seconds=0.1)
    never = SandboxFault(kind="sandbox", instance="s", fault={"kind": "leak"}, after_seconds=60)
    delayed = DelayedFaults(inject, log=lambda _m: None)
    for f in (soon, broken, never):
        delayed.schedule(f, started)
    time.sleep(0.5)
    problems = delayed.stop()
    assert [k for k, _ in got] == ["sandbox"] and 0.2 <= got[0][1] < 0.45
    assert problems == [
        "game day error [config-invalid] injecting link at 0.1 s: no network link in this game day",
        "fault sandbox at 60 s was never injected: every incident closed (or the scenario timed out) "
        "first; lower its after_seconds",
    ]
    assert not any(isinstance(t, threading.Timer) for t in threading.enumerate())
