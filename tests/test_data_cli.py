"""`llmedic data` (the ETL gate, ingest, history), `llmedic audit data`, and the monthly audit flow:
its report, its history, the incidents it opens and its schedule."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import palmerpenguins
import pytest
import yaml

from llmedic.adapters.datastore import DataStore
from llmedic.auditing import AuditHistory
from llmedic.cli import main
from llmedic.config import load_environment
from llmedic.errors import ConfigError

SCHEMA = {
    "species": {"dtype": "category", "allowed": ["Adelie", "Gentoo", "Chinstrap"]},
    "bill_length_mm": {"dtype": "float"},
    "body_mass_g": {"dtype": "float", "min": 2000, "max": 7000},
    "sex": {"dtype": "category", "max_missing_share": 0.05},
    "year": {"dtype": "int"},
}


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    df = palmerpenguins.load_penguins().astype("str").replace({"nan": ""})
    df.to_csv(tmp_path / "penguins.csv", index=False)
    bad = df.copy()
    bad.loc[10:19, "body_mass_g"] = "N/A"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    (tmp_path / "latin1.csv").write_bytes(
        "species,bill_length_mm,body_mass_g,sex,year\nAdélie,1,2,male,2007\n".encode("latin-1")
    )
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "llmedic.yaml").write_text(
        yaml.safe_dump({"datasets": {"penguins": {"path": "penguins.csv", "columns": SCHEMA}}})
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["llmedic", *args])
    with pytest.raises(SystemExit) as done:
        main()
    captured = capsys.readouterr()
    return int(done.value.code or 0), captured.out, captured.err


@pytest.mark.parametrize(
    ("file", "code", "first_line"),
    [
        ("penguins.csv", 0, "PASS penguins.csv as penguins: 344 rows, 0 breach(es), reference v0001-"),
        ("bad.csv", 1, "FAIL bad.csv as penguins: 344 rows, 1 breach(es), reference v0001-"),
        ("latin1.csv", 1, ""),
        ("empty.csv", 1, ""),
        ("missing.csv", 1, ""),
    ],
)
def test_validate_is_an_etl_gate(
    files: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    file: str,
    code: int,
    first_line: str,
) -> None:
    rc, out, err = cli(monkeypatch, capsys, "data", "validate", "penguins", file)
    assert rc == code
    assert (
        out.splitlines()[0].startswith(first_line)
        if first_line
        else err.startswith(f"FAIL {file}: [dataset-invalid]")
    )
    if file == "bad.csv":
        assert "BREACH data_format  type" in out and "'N/A' × 10" in out
    rc, out, _ = cli(monkeypatch, capsys, "data", "validate", "penguins", file, "--json")
    report = json.loads(out)
    assert (rc, report["passed"]) == (code, code == 0)
    if "error" in report:
        assert report["error"]["code"] == "dataset-invalid"


def test_validate_an_undeclared_dataset_is_an_authoring_error(
    files: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, _, err = cli(monkeypatch, capsys, "data", "validate", "nope", "bad.csv")
    assert (
        rc == 2
        and err.splitlines()[0] == "error [config-invalid]: no dataset named 'nope' in the environment file"
    )


def test_ingest_quarantines_a_breaching_batch_and_keeps_it(
    files: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], clean_environ: Path
) -> None:
    rc, out, _ = cli(
        monkeypatch,
        capsys,
        "data",
        "ingest",
        "penguins",
        "bad.csv",
        "--by",
        "etl",
        "--step",
        "nightly",
        "--job",
        "7",
    )
    assert rc == 1 and "QUARANTINED (1 breach(es)); consumers stay on v0001-" in out
    store = DataStore(clean_environ / "datasets")
    (v1, v2) = store.versions("penguins")
    assert store.state("penguins").current == v1.id and v2.id in store.state("penguins").quarantined
    assert (v2.producer.step, v2.producer.job) == ("nightly", "7")
    rc, out, _ = cli(monkeypatch, capsys, "data", "ingest", "penguins", "penguins.csv", "--by", "etl")
    assert rc == 0 and out.startswith("v0003-") and store.state("penguins").current.startswith("v0003-")  # type: ignore[union-attr]
    rc, out, _ = cli(monkeypatch, capsys, "data", "versions", "penguins", "--json")
    assert [v["by"] for v in json.loads(out)["versions"]] == ["llmedic", "etl", "etl"]


@pytest.mark.parametrize(
    ("schedules", "problem"),
    [
        ({"data_audit": "61 3 1 * *"}, "not a valid cron expression"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
    ],
)
def test_bad_schedules_are_refused(tmp_path: Path, schedules: dict[str, str], problem: str) -> None:
    path = tmp_path / "llmedic.yaml"
    path.write_text(yaml.safe_dump({"schedules": schedules}))
    with pytest.raises(ConfigError, match=problem):
        load_environment(path)


def test_audit_deployment_carries_the_cron_from_llmedic_yaml(tmp_path: Path) -> None:
    from flows.registry import deployments

    path = tmp_path / "llmedic.yaml"
    path.write_text(yaml.safe_dump({"schedules": {"data_audit": "30 2 * * 1", "timezone": "Europe/Berlin"}}))
    crons = {
        d.flow_name: [(s.schedule.cron, s.schedule.timezone) for s in d.schedules]  # type: ignore[attr-defined]
        for d in deployments(load_environment(path).schedules)
    }
    assert crons["llmedic-data-audit"] == [("30 2 * * 1", "Europe/Berlin")]
    assert crons["llmedic-data-missing"] == []
    off = {
        d.flow_name: d.schedules
        for d in deployments(load_environment(path).schedules.model_copy(update={"data_audit": None}))
    }  # type: ignore[attr-defined]
    assert off["llmedic-data-audit"] == []


@pytest.mark.usefixtures("prefect_harness")
def test_monthly_audit_reports_keeps_history_and_opens_one_incident_per_breach(
    files: Path, clean_environ: Path
) -> None:
    from prefect.client.orchestration import get_client

    from flows.data import data_format
    from flows.data_audit import AuditRequest, data_audit

    # The deployment exists (as `llmedic up` would create it); nothing executes its runs here.
    data_format.to_deployment(name="default").apply()
    store = DataStore(clean_environ / "datasets")
    cfg = load_environment().dataset("penguins")
    store.ensure_seeded("penguins", cfg)

    clean = data_audit(AuditRequest(), return_state=True)
    assert clean.is_completed() and clean.message == "1 dataset(s) audited; breaching: none"

    store.commit("penguins", files / "bad.csv", cfg, by="etl", why="nightly")
    states = [data_audit(AuditRequest(), return_state=True) for _ in range(2)]
    summaries: list[dict[str, Any]] = [s.result() for s in states]  # type: ignore[misc]
    incidents = [s["records"][0]["incidents"] for s in summaries]
    assert incidents[0]["data_format"].startswith("started ") and incidents[1]["data_format"].startswith(
        "duplicate "
    )
    run_id = incidents[0]["data_format"].split()[1]
    assert incidents[1]["data_format"].split()[1] == run_id  # the same version never opens twice

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id)  # type: ignore[arg-type]
    alert = run.parameters["request"]["alert"]
    assert (alert["anomaly"], alert["target"], alert["labels"]["version"]) == (
        "data_format",
        "penguins",
        store.state("penguins").current,
    )

    history = AuditHistory(clean_environ).records()
    assert [h.breaches for h in history] == [{}, {"data_format": 1}, {"data_format": 1}]
    report = Path(summaries[1]["report"]).read_text()
    table, trend = report.split("## Trend")
    assert "| penguins | `v0002-" in table and "data_format ×1" in table
    assert len([line for line in trend.splitlines() if line.startswith("| 20")]) == 3  # every audit so far
