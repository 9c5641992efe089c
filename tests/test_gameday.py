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
