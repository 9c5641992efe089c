"""The three data flows under Prefect's test harness, on the real Palmer penguins table.

Each test commits a corrupted batch (a generated corruption with known ground truth) as the
pipeline would, runs the flow for it, plays the operator at the gate, and checks what the store,
the published copy and the incident record say afterwards.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import palmerpenguins
import pandas as pd
import pytest
import yaml

from llmedic.adapters.datastore import DataStore, Producer
from llmedic.alerts import Alert
from llmedic.catalog import AnomalyType
from llmedic.config import load_environment
from llmedic.incident import IncidentRequest, Outcome
from tests.flowrun import approve, reject, run_flow

pytestmark = pytest.mark.usefixtures("prefect_harness")

SCHEMA: dict[str, Any] = {
    "species": {"dtype": "category", "allowed": ["Adelie", "Gentoo", "Chinstrap"], "nullable": False},
    "island": {"dtype": "category", "allowed": ["Torgersen", "Biscoe", "Dream"]},
    "bill_length_mm": {"dtype": "float", "min": 25, "max": 65},
    "bill_depth_mm": {"dtype": "float", "min": 10, "max": 25},
    "flipper_length_mm": {"dtype": "float", "min": 150, "max": 250},
    "body_mass_g": {"dtype": "float", "min": 2000, "max": 7000},
    "sex": {"dtype": "category", "allowed": ["male", "female"], "max_missing_share": 0.05},
    "year": {"dtype": "int", "min": 2007, "max": 2009},
}


def penguins_csv() -> pd.DataFrame:
    """The table as its CSV text cells (the form a batch arrives in)."""
    df = palmerpenguins.load_penguins()
    return df.astype("str").replace({"nan": ""})


@pytest.fixture
def dataset(tmp_path: Path) -> DataStore:
    base = tmp_path / "penguins.csv"
    penguins_csv().to_csv(base, index=False)
    cfg = {
        "datasets": {
            "penguins": {
                "path": str(base),
                "format": "csv",
                "columns": SCHEMA,
                "segment_column": "species",
                "publish_to": str(tmp_path / "published" / "penguins.csv"),
            }
        }
    }
    config = tmp_path / "llmedic.yaml"
    config.write_text(yaml.safe_dump(cfg))
    os.environ["LLMEDIC_CONFIG"] = str(config)
    store = DataStore(Path(os.environ["LLMEDIC_HOME"]) / "datasets")
    store.ensure_seeded("penguins", load_environment().dataset("penguins"))
    return store


def commit(store: DataStore, frame: pd.DataFrame, why: str) -> str:
    cfg = load_environment().dataset("penguins")
    return store.commit(
        "penguins", frame, cfg, by="etl", why=why, producer=Producer(step="etl-nightly", job="job-42")
    ).id


def request(anomaly: AnomalyType, version: str, **overrides: Any) -> IncidentRequest:
    alert = Alert(
        source="audit",
        anomaly=anomaly,
        alertname="DataAuditBreach",
        target="penguins",
        labels={"dataset": "penguins", "version": version},
    )
    return IncidentRequest(alert=alert, overrides=overrides)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def flow_for(anomaly: AnomalyType) -> Any:
    from flows import data

    return {
        AnomalyType.DATA_MISSING: data.data_missing,
        AnomalyType.DATA_FORMAT: data.data_format,
        AnomalyType.DATA_QUALITY: data.data_quality,
    }[anomaly]


def published(store: DataStore) -> str:
    cfg = load_environment().dataset("penguins")
    assert cfg.publish_to is not None
    return sha(cfg.publish_to)


def test_missing_values_are_imputed_into_a_new_version_after_approval(dataset: DataStore) -> None:
    v1 = dataset.current("penguins")
    assert v1 is not None
    bad = penguins_csv()
    bad.loc[40:69, "body_mass_g"] = ""  # 30 rows; 1 of them (row 3) was not already missing
    bad.loc[100:109, "flipper_length_mm"] = "null"
    v2 = commit(dataset, bad, "nightly load")
    v2_file = dataset.file_of("penguins", dataset.version("penguins", v2))
    before = sha(v2_file)

    state, inc = run_flow(
        flow_for(AnomalyType.DATA_MISSING), request(AnomalyType.DATA_MISSING, v2), approve()
    )

    assert state.is_completed(), inc.escalation_reason
    assert inc.outcome == Outcome.RESOLVED and inc.diagnosis.startswith("column_missing")
    (appr,) = inc.approvals
    assert (appr.action, appr.approved, appr.by) == ("impute", True, "alice")
    st = dataset.state("penguins")
    v3 = dataset.version("penguins", "current")
    assert v3.seq == 3 and v3.parent == v2 and v3.producer.step == "llmedic-repair"
    assert st.quarantined.keys() == {v2}
    assert sha(v2_file) == before  # the bad version is intact
    _, fixed = dataset.read("penguins", load_environment().dataset("penguins"), v3.id)
    assert (fixed["body_mass_g"] == "").sum() == 0 and len(fixed) == 344
    assert published(dataset) == v3.sha256
    assert [a.name for a in inc.actions] == ["quarantine_version", "repair_dataset"]
    assert inc.verification is not None and inc.verification.passed
    ba = next(e for e in inc.evidence if e.name == "before_after")
    # 19 missing cells in the real table, + 30 blanked body masses + 10 "null" flipper lengths
    # Only the columns in breach are imputed: the 15 other missing cells of the real table stay.
    assert (ba.data["before"]["missing_cells"], ba.data["after"]["missing_cells"]) == (59, 15)
    first = next(e for e in inc.evidence if e.name == "first_bad_version")
    assert first.data["version"] == v2 and first.data["producer"]["job"] == "job-42"
    assert f"the defect first appears in {v2}" in Path(inc.report_path or "").read_text()


def test_badly_formatted_numbers_are_parsed_or_replaced(dataset: DataStore) -> None:
    bad = penguins_csv()
    bad.loc[10:19, "body_mass_g"] = "N/A"
    bad.loc[20:22, "body_mass_g"] = "4,250"
    v2 = commit(dataset, bad, "vendor feed")

    state, inc = run_flow(flow_for(AnomalyType.DATA_FORMAT), request(AnomalyType.DATA_FORMAT, v2), approve())

    assert state.is_completed(), inc.escalation_reason
    assert inc.diagnosis.startswith("type_mismatch") and "'N/A' × 10" in inc.diagnosis
    _, fixed = dataset.read("penguins", load_environment().dataset("penguins"))
    assert fixed.loc[20:22, "body_mass_g"].tolist() == ["4250", "4250", "4250"]
    median = pd.to_numeric(bad["body_mass_g"], errors="coerce").median()
    assert fixed.loc[10:19, "body_mass_g"].tolist() == [f"{median:g}"] * 10
    ba = next(e for e in inc.evidence if e.name == "before_after")
    assert (ba.data["before"]["invalid_cells"], ba.data["after"]["invalid_cells"]) == (13, 0)


def test_duplicates_and_impossible_values_are_cleaned(dataset: DataStore) -> None:
    bad = penguins_csv()
    bad.loc[148:150, "species"] = "adelie"  # Adelie rows, wrong case
    bad.loc[200:201, "bill_length_mm"] = "500"  # outside [25, 65]
    bad = pd.concat([bad, bad.iloc[0:10]], ignore_index=True)  # 10 exact duplicates
    v2 = commit(dataset, bad, "merge of two exports")

    state, inc = run_flow(
        flow_for(AnomalyType.DATA_QUALITY), request(AnomalyType.DATA_QUALITY, v2), approve()
    )

    assert state.is_completed(), inc.escalation_reason
    assert inc.diagnosis.startswith("duplicates")
    _, fixed = dataset.read("penguins", load_environment().dataset("penguins"))
    assert len(fixed) == 344
    assert fixed.loc[148:150, "species"].tolist() == ["Adelie"] * 3
    lengths = pd.to_numeric(fixed["bill_length_mm"], errors="coerce")
    assert lengths.loc[200:201].tolist() == [47.3, 47.3]  # the Gentoo median: imputed per species
    # The two impossible lengths were blanked and imputed; the table's own 2 missing lengths are not
    # this incident's (data_quality) and stay as they were: a repair changes only the cells it found broken.
    assert ((lengths <= 65).sum(), int(lengths.isna().sum())) == (342, 2)
    ba = next(e for e in inc.evidence if e.name == "before_after")
    assert (ba.data["before"]["duplicate_rows"], ba.data["after"]["duplicate_rows"]) == (10, 0)


def test_drifted_batch_is_rolled_back_to_the_reference(dataset: DataStore) -> None:
    v1 = dataset.current("penguins")
    assert v1 is not None
    gentoo = penguins_csv().query("species == 'Gentoo'").reset_index(drop=True)
    v2 = commit(dataset, gentoo, "new colony only")

    state, inc = run_flow(
        flow_for(AnomalyType.DATA_QUALITY), request(AnomalyType.DATA_QUALITY, v2), approve()
    )

    assert state.is_completed(), inc.escalation_reason
    assert inc.diagnosis.startswith("drift")
    assert dataset.state("penguins").current == v1.id and len(dataset.versions("penguins")) == 2
    assert published(dataset) == v1.sha256
    (appr,) = inc.approvals
    assert appr.action == "roll_back"


def test_rejected_repair_keeps_consumers_on_the_last_good_version(dataset: DataStore) -> None:
    v1 = dataset.current("penguins")
    assert v1 is not None
    bad = penguins_csv()
    bad.loc[40:69, "body_mass_g"] = ""
    v2 = commit(dataset, bad, "nightly load")

    state, inc = run_flow(flow_for(AnomalyType.DATA_MISSING), request(AnomalyType.DATA_MISSING, v2), reject())

    assert state.is_completed() and inc.outcome == Outcome.REJECTED
    st = dataset.state("penguins")
    assert st.current == v1.id and v2 in st.quarantined
    assert len(dataset.versions("penguins")) == 2 and published(dataset) == v1.sha256


def test_dry_run_changes_nothing(dataset: DataStore) -> None:
    bad = penguins_csv()
    bad.loc[40:69, "body_mass_g"] = ""
    v2 = commit(dataset, bad, "nightly load")
    req = request(AnomalyType.DATA_MISSING, v2).model_copy(update={"dry_run": True})

    state, inc = run_flow(flow_for(AnomalyType.DATA_MISSING), req)

    assert state.is_completed() and inc.outcome == Outcome.DRY_RUN
    st = dataset.state("penguins")
    assert st.current == v2 and st.quarantined == {} and len(dataset.versions("penguins")) == 2
    assert [(a.name, a.dry_run, a.applied) for a in inc.actions] == [
        ("quarantine_version", True, False),
        ("repair_dataset", True, False),
    ]


@pytest.mark.fault(
    tried="a data repair that fails verification",
    survives="the repaired version is rolled back; consumers stay on the last good version",
)
def test_a_repair_that_fails_verification_is_rolled_back(dataset: DataStore) -> None:
    v1 = dataset.current("penguins")
    assert v1 is not None
    bad = penguins_csv()
    bad.loc[10:19, "body_mass_g"] = "N/A"
    v2 = commit(dataset, bad, "vendor feed")
    # An operator's override leaves unparseable values empty: 10 more missing body masses breach the
    # data_missing limit, so verification fails and consumers go back to the last good version.
    fix = {
        "fixes": [
            {
                "name": "coerce_only",
                "action": "repair_dataset",
                "risk": "medium",
                "when": ["type_mismatch"],
                "params": {"operations": [{"op": "coerce_types", "fill": "missing"}]},
            }
        ]
    }

    state, inc = run_flow(
        flow_for(AnomalyType.DATA_FORMAT), request(AnomalyType.DATA_FORMAT, v2, **fix), approve()
    )

    assert state.is_failed() and inc.outcome == Outcome.FAILED_ROLLED_BACK and inc.escalated
    assert inc.verification is not None
    assert [c.name for c in inc.verification.checks if not c.passed] == ["new_breach_kinds"]
    assert dataset.state("penguins").current == v1.id and len(dataset.versions("penguins")) == 3
    assert [(a.name, a.compensated) for a in inc.actions] == [
        ("quarantine_version", False),
        ("repair_dataset", True),
        ("rollback_dataset", False),
    ]


# --- issue 16: data judged against the reference -------------------------------------------------


@pytest.mark.fault(
    tried="an upstream unit change: every body mass × 1.5 (one drifted column of eight)",
    survives="diagnosed drift and rolled back: consumers read the good version, no capped copy is written",
)
def test_a_unit_change_is_rolled_back_never_capped(dataset: DataStore) -> None:
    v1 = dataset.current("penguins")
    assert v1 is not None
    bad = penguins_csv()
    mass = pd.to_numeric(bad["body_mass_g"], errors="coerce") * 1.5
    bad["body_mass_g"] = mass.map(lambda v: "" if pd.isna(v) else f"{v:g}")
    v2 = commit(dataset, bad, "nightly load")

    state, inc = run_flow(
        flow_for(AnomalyType.DATA_QUALITY), request(AnomalyType.DATA_QUALITY, v2), approve()
    )

    assert state.is_completed(), inc.escalation_reason
    assert inc.outcome == Outcome.RESOLVED and inc.diagnosis.startswith("drift")
    assert "body_mass_g drifted from the reference" in inc.diagnosis
    assert [a.name for a in inc.actions] == ["quarantine_version", "rollback_dataset"]
    assert dataset.state("penguins").current == v1.id and len(dataset.versions("penguins")) == 2
    assert published(dataset) == v1.sha256
    assert inc.verification is not None
    assert [(c.name, c.passed) for c in inc.verification.checks if "drift" in c.name] == [
        ("no_drift_from_reference", True)
    ]


@pytest.mark.fault(
    tried="a column whose values legitimately differ by group (body mass per species) and five "
    "Adelie masses a Gentoo could have",
    survives="judged per species against the reference, only those 5 cells are outliers and only they "
    "change; the heavy Gentoo masses stay; verification passes",
)
def test_only_the_broken_cells_of_a_multimodal_column_change(dataset: DataStore) -> None:
    bad = penguins_csv()
    adelie = bad.index[bad["species"] == "Adelie"][10:15]
    bad.loc[adelie, "body_mass_g"] = "6300"  # a normal Gentoo mass, impossible for an Adelie
    v2 = commit(dataset, bad, "vendor feed")

    state, inc = run_flow(
        flow_for(AnomalyType.DATA_QUALITY), request(AnomalyType.DATA_QUALITY, v2), approve()
    )

    assert state.is_completed(), inc.escalation_reason
    assert inc.outcome == Outcome.RESOLVED and inc.diagnosis.startswith("outliers")
    assert "5 outliers by iqr against the reference" in inc.diagnosis and "per species" in inc.diagnosis
    _, fixed = dataset.read("penguins", load_environment().dataset("penguins"))
    changed = fixed["body_mass_g"].fillna("") != bad["body_mass_g"].fillna("")
    assert fixed.index[changed].tolist() == adelie.tolist()
    assert (pd.to_numeric(fixed.loc[adelie, "body_mass_g"]) < 6300).all()  # capped to the Adelie fence
    assert inc.verification is not None and inc.verification.passed


@pytest.mark.fault(
    tried="a playbook that maps the drift diagnosis to a repair (clean) instead of the rollback",
    survives="repair_dataset refuses a drifted batch and writes nothing; the incident escalates",
)
def test_a_repair_of_a_drifted_batch_is_refused(dataset: DataStore) -> None:
    v1 = dataset.current("penguins")
    assert v1 is not None
    gentoo = penguins_csv().query("species == 'Gentoo'").reset_index(drop=True)
    v2 = commit(dataset, gentoo, "new colony only")
    fix = {
        "fixes": [
            {
                "name": "clean_anyway",
                "action": "repair_dataset",
                "risk": "medium",
                "when": ["drift"],
                "params": {"operations": [{"op": "outliers", "treatment": "cap"}]},
            }
        ]
    }

    _, inc = run_flow(
        flow_for(AnomalyType.DATA_QUALITY), request(AnomalyType.DATA_QUALITY, v2, **fix), approve()
    )

    assert inc.escalated and inc.outcome != Outcome.RESOLVED
    assert "drifted from the reference" in (inc.escalation_reason or "")
    assert "so nothing was written" in (inc.escalation_reason or "")
    assert len(dataset.versions("penguins")) == 2  # nothing was written
    assert dataset.state("penguins").current == v1.id  # the quarantine moved consumers back


@pytest.mark.fault(
    tried="a repair that leaves the batch drifted (missing masses imputed with one constant)",
    survives="verification re-audits against the reference, drift included: it fails and the repair "
    "is rolled back",
)
def test_a_repair_that_leaves_the_batch_drifted_fails_verification(dataset: DataStore) -> None:
    v1 = dataset.current("penguins")
    assert v1 is not None
    bad = penguins_csv()
    bad.loc[0:59, "body_mass_g"] = ""
    v2 = commit(dataset, bad, "nightly load")
    fix = {
        "fixes": [
            {
                "name": "impute_constant",
                "action": "repair_dataset",
                "risk": "medium",
                "when": ["column_missing"],
                "params": {"operations": [{"op": "impute", "strategy": "constant", "value": 2000}]},
            }
        ]
    }

    state, inc = run_flow(
        flow_for(AnomalyType.DATA_MISSING), request(AnomalyType.DATA_MISSING, v2, **fix), approve()
    )

    assert state.is_failed() and inc.outcome == Outcome.FAILED_ROLLED_BACK and inc.escalated
    assert inc.verification is not None
    failed = [c.name for c in inc.verification.checks if not c.passed]
    assert failed == ["new_breach_kinds", "no_drift_from_reference"]
    assert dataset.state("penguins").current == v1.id
