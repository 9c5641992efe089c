"""The data audit, diagnosis and repairs on real tables (Palmer penguins, Vega's cars) and on
generated corruptions whose ground truth is known exactly."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import palmerpenguins
import pandas as pd
import pytest
from vega_datasets import data as vega

from llmedic.anomalies.data.audit import audit_frame
from llmedic.anomalies.data.conformance import shape_of
from llmedic.anomalies.data.diagnosis import bisect_first_bad, diagnose_data
from llmedic.anomalies.data.findings import DataAudit
from llmedic.anomalies.data.outliers import fences
from llmedic.anomalies.data.repair import apply_operations
from llmedic.anomalies.data.repair_ops import (
    Coerce,
    Dedupe,
    DropRows,
    Impute,
    NormaliseDates,
    NormaliseEncoding,
    Outliers,
    Rule,
    Rules,
)
from llmedic.catalog import AnomalyType
from llmedic.config import DatasetConfig, DataThresholds
from llmedic.drift import choose_method, column_drift, psi
from llmedic.errors import ControlError
from llmedic.redact import MASK, mask, redact_text


def config(columns: dict[str, Any], **more: Any) -> DatasetConfig:
    return DatasetConfig.model_validate({"columns": columns, **more})


def kinds(audit: DataAudit) -> list[tuple[str, str | None, int, bool]]:
    return [(f.kind, f.column, f.count, f.breach) for f in columns_of(audit)]


def columns_of(audit: DataAudit) -> list[Any]:
    """Column findings (these small frames repeat rows on purpose, so row duplicates are left out)."""
    return [f for f in audit.findings if f.column]


def test_real_missing_values_of_palmer_penguins() -> None:
    df = palmerpenguins.load_penguins()
    audit = audit_frame(df, DatasetConfig(segment_column=None))
    missing = {c.name: c.missing for c in audit.column_reports}
    assert missing == {
        "species": 0,
        "island": 0,
        "bill_length_mm": 2,
        "bill_depth_mm": 2,
        "flipper_length_mm": 2,
        "body_mass_g": 2,
        "sex": 11,
        "year": 0,
    }
    assert audit.missing_per_row == {0: 333, 1: 9, 5: 2}
    assert (audit.missing_cells, audit.rows_with_missing) == (19, 11)


def test_real_missing_values_of_vega_cars_by_segment() -> None:
    cars = vega.cars()
    audit = audit_frame(cars, DatasetConfig(segment_column="Origin"))
    assert {c.name: c.missing for c in audit.column_reports if c.missing} == {
        "Miles_per_Gallon": 8,
        "Horsepower": 6,
    }
    # Missing checked cells per row, averaged over the 9 columns, by origin.
    per_origin = cars.isna().sum(axis=1).groupby(cars["Origin"]).mean() / 9
    assert audit.missing_by_segment == {k: round(v, 6) for k, v in per_origin.items()}


def test_type_problems_are_grouped_into_patterns() -> None:
    values = ["12.5"] * 80 + ["N/A"] * 7 + ["1,234.5"] * 3 + ["12 mg"] * 2 + [""] * 8
    audit = audit_frame(pd.DataFrame({"dose": values}), config({"dose": {"dtype": "float"}}))
    (miss, typ) = columns_of(audit)
    assert (miss.kind, miss.count) == ("missing", 8)
    assert (typ.kind, typ.count, typ.breach) == ("type", 12, True)
    assert typ.patterns == ["'N/A' × 7", "'1,234.5' × 3", "'12 mg' × 2"]


def test_many_distinct_bad_values_are_grouped_by_shape() -> None:
    bad = [f"{i},{i:03d}" for i in range(10, 40)]  # 30 distinct "99,999"
    values = ["5"] * 70 + bad
    audit = audit_frame(pd.DataFrame({"n": values}), config({"n": {"dtype": "int"}}))
    (typ,) = columns_of(audit)
    assert typ.count == 30 and typ.patterns == ["shape 99,999 × 30 (e.g. '10,010')"]
    assert shape_of("AB-12x") == "a-99a"


def test_three_date_formats_are_named_with_their_counts() -> None:
    dates = ["2024-03-05"] * 50 + ["05/03/2024"] * 6 + ["Mar 05 2024"] * 4 + ["soon"]
    audit = audit_frame(
        pd.DataFrame({"d": dates}), config({"d": {"dtype": "date", "date_formats": ["%Y-%m-%d"]}})
    )
    (f,) = columns_of(audit)
    assert (f.kind, f.count) == ("date_format", 11)
    assert f.patterns == [
        "date_format %d/%m/%Y × 6 (e.g. '05/03/2024')",
        "date_format %b %d %Y × 4 (e.g. 'Mar 05 2024')",
        "'soon' × 1",
    ]
    assert "uses 3 date formats" in f.message
    assert audit.column("d").date_formats == {"%Y-%m-%d": 50, "%d/%m/%Y": 6, "%b %d %Y": 4}  # type: ignore[union-attr]


def test_mojibake_regex_allowed_and_range() -> None:
    df = pd.DataFrame(
        {
            "drug": ["Warfarin"] * 90 + ["CafÃ©ine"] * 4 + ["naÃ¯ve"] * 1 + ["ok"] * 5,
            "code": ["AB-1"] * 97 + ["ab-1", "AB1", "AB-"],
            "route": ["oral"] * 95 + ["Oral", "ORAL", "iv", "iv", "iv"],
            "mg": [10.0] * 98 + [-1.0, 5000.0],
        }
    )
    cfg = config(
        {
            "drug": {"dtype": "string"},
            "code": {"dtype": "string", "regex": r"[A-Z]{2}-\d+"},
            "route": {"dtype": "category", "allowed": ["oral", "iv"]},
            "mg": {"dtype": "float", "min": 0, "max": 1000},
        }
    )
    audit = audit_frame(df, cfg)
    assert kinds(audit) == [
        ("encoding", "drug", 5, True),
        ("pattern", "code", 3, True),
        ("allowed", "route", 2, True),
        ("range", "mg", 2, True),
        ("outliers", "mg", 2, True),
    ]
    allowed = next(f for f in audit.findings if f.kind == "allowed")
    assert "2 differ from an allowed value only by case" in allowed.message
    assert diagnose_data(AnomalyType.DATA_FORMAT, audit, 0.3, 0.05)[0] == "bad_encoding"


@pytest.mark.parametrize(
    ("method", "expected"),
    # 1000 draws of N(0, 1) plus 5 planted values at ±8σ, ±12σ, 30σ: every robust rule finds the 5;
    # 3σ finds them too here, but its fences widen with the outliers themselves (see the last case).
    [("iqr", 5), ("robust_z", 5), ("sigma3", 5)],
)
def test_planted_outliers_are_found_by_each_rule(method: str, expected: int) -> None:
    rng = np.random.default_rng(7)
    x = np.clip(rng.normal(0, 1, 1000), -3.2, 3.2)
    x = np.concatenate([x, [8.0, -8.0, 12.0, -12.0, 30.0]])
    f = fences(x, iqr_k=3.0, robust_z=3.5)
    assert f is not None and f.count(method) == expected


def test_three_sigma_is_masked_by_a_cluster_of_outliers_while_iqr_is_not() -> None:
    x = np.concatenate([np.full(90, 10.0) + np.linspace(-1, 1, 90), np.full(10, 100.0)])
    f = fences(x, iqr_k=3.0)
    assert f is not None
    assert f.iqr_count == 10 and f.sigma_count == 0  # the 10 extreme values inflate σ and hide


def test_exact_and_key_duplicates() -> None:
    df = pd.DataFrame({"id": [1, 2, 3, 4, 2, 3, 3], "v": ["a", "b", "c", "d", "b", "x", "c"]})
    audit = audit_frame(df, config({"id": {"dtype": "int"}, "v": {"dtype": "string"}}, key=["id"]))
    assert (audit.duplicate_rows, audit.duplicate_keys) == (2, 1)  # rows 4, 6 exact; row 5 same key


def test_psi_matches_a_hand_computed_value() -> None:
    ref = pd.Series(["a"] * 50 + ["b"] * 50)
    cur = pd.Series(["a"] * 80 + ["b"] * 20)
    expected = (0.5 - 0.8) * math.log(0.5 / 0.8) + (0.5 - 0.2) * math.log(0.5 / 0.2)
    assert psi(ref, cur, numeric=False) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("n_ref", "nunique", "numeric", "method"),
    [(500, 50, True, "ks"), (500, 4, True, "chi2"), (500, 2, False, "z"), (500, 9, False, "chi2"),
     (5000, 50, True, "wasserstein"), (5000, 4, True, "js"), (5000, 9, False, "js")],
)  # fmt: skip
def test_automatic_drift_test_follows_evidently(n_ref: int, nunique: int, numeric: bool, method: str) -> None:
    assert choose_method(n_ref, nunique, numeric) == method


def test_drift_detected_for_a_shift_and_not_for_a_resample() -> None:
    rng = np.random.default_rng(1)
    t = DataThresholds()
    ref = pd.Series(rng.normal(50, 10, 800))
    same = column_drift("x", ref, pd.Series(rng.normal(50, 10, 800)), True, t)
    moved = column_drift("x", ref, pd.Series(rng.normal(58, 10, 800)), True, t)
    assert same is not None and moved is not None
    assert (same.method, same.drifted, moved.method, moved.drifted) == ("ks", False, "ks", True)
    assert moved.psi > 0.25


def test_dataset_drift_needs_half_the_columns() -> None:
    penguins = palmerpenguins.load_penguins()
    gentoo = penguins[penguins["species"] == "Gentoo"].reset_index(drop=True)
    cfg = config(
        {
            "species": {"dtype": "category"},
            "island": {"dtype": "category"},
            "bill_depth_mm": {"dtype": "float"},
            "flipper_length_mm": {"dtype": "float"},
            "sex": {"dtype": "category"},
            "year": {"dtype": "int"},
        },
        thresholds={"max_missing_share": 1.0},
    )
    audit = audit_frame(gentoo, cfg, reference=penguins)
    assert audit.drifted_columns == ["species", "island", "bill_depth_mm", "flipper_length_mm"]
    assert (audit.drift_share, audit.dataset_drift) == (4 / 6, True)
    assert diagnose_data(AnomalyType.DATA_QUALITY, audit, 0.3, 0.05)[0] == "drift"


@pytest.mark.parametrize(
    ("blank_rows", "diagnosis"),
    [(range(5), "sparse_missing"), (range(30), "column_missing"), (range(200), "batch_broken")],
)
def test_missing_diagnosis_by_share_of_rows(blank_rows: range, diagnosis: str) -> None:
    df = pd.DataFrame({"a": [str(i) for i in range(400)], "b": ["x"] * 400})
    df.loc[list(blank_rows), "a"] = ""
    audit = audit_frame(df, config({"a": {"dtype": "int"}, "b": {"dtype": "string"}}))
    assert diagnose_data(AnomalyType.DATA_MISSING, audit, 0.3, 0.05)[0] == diagnosis


def test_bisect_finds_the_first_bad_version_in_log_probes() -> None:
    versions = list(range(100))
    seen: list[int] = []

    def bad(v: int) -> bool:
        seen.append(v)
        return v >= 37

    assert bisect_first_bad(versions, bad) == (37, len(seen)) and len(seen) <= 7


# --- repairs ----------------------------------------------------------------------------------------


def test_impute_strategies_touch_only_missing_cells() -> None:
    df = pd.DataFrame({"x": ["1", "2", "3", "10", ""], "c": ["a", "a", "b", "", "a"]})
    cfg = config({"x": {"dtype": "float"}, "c": {"dtype": "category"}})
    for strategy, want in [("median", "2.5"), ("mean", "4"), ("mode", "1"), ("constant", "7")]:
        out, log = apply_operations(df, cfg, [Impute(op="impute", strategy=strategy, value=7)])  # type: ignore[arg-type]
        assert out["x"].tolist() == ["1", "2", "3", "10", want], strategy
    assert out["c"].tolist() == ["a", "a", "b", "7", "a"]  # constant applies to text too
    out, log = apply_operations(df, cfg, [Impute(op="impute")])
    assert out["c"].tolist() == ["a", "a", "b", "a", "a"] and log.cells_changed == {"x": 1, "c": 1}


def test_knn_imputation_uses_the_nearest_rows() -> None:
    df = pd.DataFrame(
        {"h": [1.0, 1.1, 0.9, 10.0, 10.2, 9.8, 10.1], "w": [5.0, 5.2, 4.8, 50.0, 52.0, 48.0, np.nan]}
    )
    cfg = config({"h": {"dtype": "float"}, "w": {"dtype": "float"}})
    out, _ = apply_operations(df, cfg, [Impute(op="impute", strategy="knn", k=3)])
    assert out["w"].iloc[6] == pytest.approx(50.0)  # neighbours 10.0, 10.2, 9.8, not the small ones


def test_drop_rows_refuses_past_its_share() -> None:
    df = pd.DataFrame({"x": ["1"] * 95 + [""] * 5})
    cfg = config({"x": {"dtype": "int"}})
    out, log = apply_operations(df, cfg, [DropRows(op="drop_rows", max_share=0.05)])
    assert (len(out), log.rows_dropped) == (95, 5)
    with pytest.raises(ControlError, match=r"dropping 5 rows \(5.00%\).*limit of 4.00%"):
        apply_operations(df, cfg, [DropRows(op="drop_rows", max_share=0.04)])


def test_coerce_normalise_and_rules() -> None:
    df = pd.DataFrame(
        {
            "n": ["1", "N/A", "2,500", "$1,000", "4"],
            "d": ["2024-01-02", "02/01/2024", "Jan 02 2024", "", "2024-01-03"],
            "t": ["CafÃ©", "ok", "naÃ¯ve", "ok", "ok"],
            "r": [" Oral", "IV", "oral", "x", "iv"],
        }
    )
    cfg = config(
        {
            "n": {"dtype": "int"},
            "d": {"dtype": "date", "date_formats": ["%Y-%m-%d"]},
            "t": {"dtype": "string"},
            "r": {"dtype": "category", "allowed": ["oral", "iv"]},
        }
    )
    out, log = apply_operations(
        df,
        cfg,
        [
            Coerce(op="coerce_types"),
            NormaliseDates(op="normalise_dates"),
            NormaliseEncoding(op="normalise_encoding"),
            Rules(op="rules", rules=[Rule(column="r", strip=True)]),
        ],
    )
    assert out["n"].tolist() == ["1", "", "2500", "1000", "4"]
    assert out["d"].tolist() == ["2024-01-02", "2024-01-02", "2024-01-02", "", "2024-01-03"]
    assert out["t"].tolist() == ["Café", "ok", "naïve", "ok", "ok"]
    assert out["r"].tolist() == ["oral", "iv", "oral", "", "iv"]  # stripped, case snapped, 'x' blanked
    audit = audit_frame(out, cfg)
    assert [f.kind for f in audit.breaches()] == [
        "missing",
        "missing",
        "missing",
    ]  # n, d, r: what was blanked
    assert df["n"].tolist() == ["1", "N/A", "2,500", "$1,000", "4"]  # the input frame is untouched
    assert len(log.steps) == 7


@pytest.mark.parametrize(
    ("treatment", "rows", "last"), [("cap", 101, None), ("remove", 100, None), ("flag", 101, True)]
)
def test_outlier_treatments(treatment: str, rows: int, last: bool | None) -> None:
    df = pd.DataFrame({"x": [float(i % 10) for i in range(100)] + [1000.0]})
    cfg = config({"x": {"dtype": "float"}})
    out, _ = apply_operations(df, cfg, [Outliers(op="outliers", treatment=treatment)])  # type: ignore[arg-type]
    assert len(out) == rows
    if treatment == "cap":
        assert out["x"].iloc[-1] == 22.0  # Q3 7 + 3 × IQR (7 − 2): the outer Tukey fence
    if treatment == "flag":
        assert out["x_outlier"].iloc[-1] is np.True_ and out["x_outlier"].sum() == 1


def test_dedupe_by_rows_and_key_and_empty_result_refused() -> None:
    df = pd.DataFrame({"id": [1, 1, 2, 2], "v": ["a", "a", "b", "c"]})
    cfg = config({"id": {"dtype": "int"}, "v": {"dtype": "string"}}, key=["id"])
    assert len(apply_operations(df, cfg, [Dedupe(op="dedupe")])[0]) == 3
    assert len(apply_operations(df, cfg, [Dedupe(op="dedupe", by="key")])[0]) == 2
    with pytest.raises(ControlError, match="no rows"):
        apply_operations(
            pd.DataFrame({"id": [""]}),
            config({"id": {"dtype": "int"}}),
            [DropRows(op="drop_rows", max_share=1)],
        )


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("key sk-proj-abcdefghijklmnop1234 here", f"key {MASK} here"),
        ("Authorization: Bearer abcdefghijklmnop", f"Authorization: {MASK}"),
        ("postgres://app:hunter2@db/x", f"postgres://{MASK}@db/x"),
        ("password=hunter2 ok", f"{MASK} ok"),
        ("AKIAABCDEFGHIJKLMNOP", MASK),
        ("warfarin and aspirin", "warfarin and aspirin"),
    ],
)
def test_secrets_are_masked_in_samples(text: str, masked: str) -> None:
    assert redact_text(text) == masked
    assert mask("anything", secret=True) == MASK


@pytest.mark.parametrize(
    ("fault", "column", "kind", "count"),
    [
        ("blank", "body_mass_g", "missing", 33),
        ("null_token", "sex", "missing", 33),
        ("wrong_type", "flipper_length_mm", "type", 33),
        ("duplicate", None, "duplicate_rows", 33),
        ("outliers", "body_mass_g", "outliers", 33),
    ],
)
def test_injected_data_faults_have_known_ground_truth(
    fault: str, column: str | None, kind: str, count: int
) -> None:
    from llmedic_sandbox.data_faults import corrupt

    clean = palmerpenguins.load_penguins().dropna().reset_index(drop=True).astype("str")  # 333 complete rows
    cfg = config(
        {
            "species": {"dtype": "category"},
            "flipper_length_mm": {"dtype": "float"},
            "body_mass_g": {"dtype": "float"},
            "sex": {"dtype": "category"},
        }
    )
    bad = corrupt(clean, fault, column, share=0.1, seed=3)  # type: ignore[arg-type]
    assert [(f.kind, f.column, f.count) for f in audit_frame(bad, cfg).findings] == [(kind, column, count)]


def test_a_shifted_column_drifts() -> None:
    from llmedic_sandbox.data_faults import corrupt

    clean = palmerpenguins.load_penguins().dropna().reset_index(drop=True)
    cfg = config({"body_mass_g": {"dtype": "float"}, "species": {"dtype": "category"}})
    audit = audit_frame(corrupt(clean, "shift", "body_mass_g", 1.0), cfg, reference=clean)
    assert audit.drifted_columns == ["body_mass_g"] and audit.dataset_drift  # 1 of 2 reaches drift_share 0.5


def test_missing_values_by_day_of_the_time_column() -> None:
    df = pd.DataFrame(
        {
            "day": ["2024-05-01", "2024-05-01", "02/05/2024", "2024-05-02", "nonsense"],
            "v": ["1", "", "", "4", "5"],
        }
    )
    cfg = config(
        {"day": {"dtype": "date", "date_formats": ["%Y-%m-%d", "%d/%m/%Y"]}, "v": {"dtype": "int"}},
        time_column="day",
    )
    audit = audit_frame(df, cfg)
    # Mean missing checked cells per row (2 columns) per day; the unparseable date has no day.
    assert audit.missing_by_day == {"2024-05-01": 0.25, "2024-05-02": 0.25, "(no date)": 0.0}


def test_bad_values_in_findings_never_show_secrets() -> None:
    df = pd.DataFrame(
        {
            "n": ["1"] * 50 + ["sk-live-abcdefghijklmnopqrstu"] * 2,
            "token": ["t-1"] * 50 + ["hunter2hunter2"] * 2,
        }
    )
    cfg = config({"n": {"dtype": "int"}, "token": {"dtype": "string", "regex": r"t-\d", "secret": True}})
    audit = audit_frame(df, cfg)
    text = audit.model_dump_json()
    assert "sk-live-abcdefghijklmnopqrstu" not in text and "hunter2hunter2" not in text
    assert [f.patterns for f in columns_of(audit)] == [["'••••' × 2"], ["value •••• × 2"]]


# --- issue 16: data judged against the reference -------------------------------------------------


def lab(**dose: Any) -> tuple[pd.DataFrame, DatasetConfig]:
    """The sandbox's lab results (real shipped CSV: doses of eight drugs in one column) as text cells."""
    from pathlib import Path

    from llmedic_sandbox.fleet import lab_dataset

    decl: dict[str, Any] = lab_dataset(Path("unused.csv"))
    decl["columns"]["dose_mg"] = {**decl["columns"]["dose_mg"], **dose}
    if dose.get("group_by") is False:  # one set of fences for every drug
        del decl["columns"]["dose_mg"]["group_by"]
    return pd.read_csv(decl["path"], dtype=str, keep_default_na=False), DatasetConfig.model_validate(decl)


@pytest.mark.parametrize(
    ("group", "fault", "with_reference", "expected", "basis"),
    [
        # Judged against themselves, one set of fences for all drugs: every metformin dose is "an outlier".
        (False, None, False, {"outliers": 27}, "this batch's own fences (no reference"),
        (True, None, False, {"outliers": 10}, "this batch's own fences per drug (no reference"),
        # The reference is the known-good distribution: none of its own values is an outlier.
        (True, None, True, {}, "the reference v1's fences per drug"),
        (False, None, True, {}, "the reference v1's fences"),
        # 3 % of doses × 100: per drug, exactly those 6 cells (2 of them also out of range) ...
        (True, "outliers", True, {"range": 2, "outliers": 6}, "the reference v1's fences per drug"),
        # ... while one set of fences over all drugs misses the ones a metformin dose would explain.
        (False, "outliers", True, {"range": 2, "outliers": 2}, "the reference v1's fences"),
    ],
)
def test_outlier_fences_come_from_the_reference_per_group(
    group: bool, fault: str | None, with_reference: bool, expected: dict[str, int], basis: str
) -> None:
    from llmedic_sandbox.data_faults import corrupt

    good, cfg = lab(group_by="drug" if group else False)
    batch = corrupt(good, fault, "dose_mg", 0.03, seed=5) if fault else good  # type: ignore[arg-type]
    audit = audit_frame(
        batch,
        cfg,
        reference=good if with_reference else None,
        reference_version="v1" if with_reference else None,
    )
    assert {f.kind: f.count for f in audit.findings if f.column == "dose_mg"} == expected
    report = audit.column("dose_mg")
    assert report is not None and report.outlier_basis.startswith(basis)
    outliers = next((f for f in audit.findings if f.kind == "outliers" and f.column == "dose_mg"), None)
    if outliers is not None:
        assert basis in outliers.message  # the finding says what it was judged by


def test_values_the_reference_shows_are_never_outliers() -> None:
    good, cfg = lab(group_by="drug")
    # Every row takes a value the reference has for its own drug (reshuffled within each drug).
    batch = good.copy()
    batch["dose_mg"] = good.groupby("drug")["dose_mg"].transform(
        lambda s: s.sample(frac=1, random_state=1).to_numpy()
    )
    audit = audit_frame(batch, cfg, reference=good, reference_version="v1")
    assert [f.kind for f in audit.findings] == []
    # A dose the reference shows for another drug only: an outlier for this one.
    batch.loc[batch.index[batch["drug"] == "warfarin"][0], "dose_mg"] = "1000"
    assert [(f.kind, f.count) for f in audit_frame(batch, cfg, reference=good).findings] == [("outliers", 1)]


@pytest.mark.fault(
    tried="a unit change: every value of one numeric column × 1.5, one drifted column of three",
    survives="the column is a data_quality drift breach on its own (under the dataset's drift_share); "
    "every data anomaly diagnoses it as a batch to roll back, never to repair",
)
def test_a_drifted_column_is_a_breach_on_its_own() -> None:
    from llmedic_sandbox.data_faults import corrupt

    good, cfg = lab(group_by="drug")
    batch = corrupt(good, "shift", "dose_mg", 1.0)
    batch.loc[0:2, "drug"] = ""  # and a few missing drugs (a data_missing breach)
    batch.loc[3, "measured_at"] = "01/10/2026"  # and a date in another format (a data_format breach)
    audit = audit_frame(batch, cfg, reference=good, reference_version="v1")
    assert audit.drifted_columns == ["dose_mg"] and not audit.dataset_drift  # 1 of 3 < drift_share 0.5
    drift = [(f.column, f.breach) for f in audit.findings if f.kind == "drift"]
    assert drift == [("dose_mg", True), (None, False)]
    assert [diagnose_data(a, audit, 0.3, 0.05)[0] for a in DATA] == ["batch_broken", "batch_broken", "drift"]


DATA = [AnomalyType.DATA_MISSING, AnomalyType.DATA_FORMAT, AnomalyType.DATA_QUALITY]


@pytest.mark.parametrize(
    ("fault", "share", "drifted"),
    [
        ("outliers", 0.03, []),  # 6 broken cells are outliers, not a shifted distribution
        ("outliers", 0.1, []),
        ("wrong_type", 0.1, []),  # 'N/A' cells are type errors, not drift
        ("shift", 1.0, ["dose_mg"]),
    ],
)
def test_drift_is_measured_on_the_cells_no_check_found_broken(
    fault: str, share: float, drifted: list[str]
) -> None:
    from llmedic_sandbox.data_faults import corrupt

    good, cfg = lab(group_by="drug")
    audit = audit_frame(corrupt(good, fault, "dose_mg", share, seed=5), cfg, reference=good)  # type: ignore[arg-type]
    assert audit.drifted_columns == drifted


@pytest.mark.fault(
    tried="a clean repair of a multi-modal column (doses of eight drugs) with 6 broken cells",
    survives="only the 6 broken cells change (capped to their drug's reference fences, or blanked and "
    "imputed with their drug's median); every legitimate value, metformin's included, is untouched",
)
def test_a_repair_changes_only_the_cells_found_broken() -> None:
    from llmedic.actions.data import RepairParams
    from llmedic.playbook import load_playbook
    from llmedic_sandbox.data_faults import corrupt

    good, cfg = lab(group_by="drug")
    batch = corrupt(good, "outliers", "dose_mg", 0.03, seed=5)
    clean = next(f for f in load_playbook(AnomalyType.DATA_QUALITY).fixes if f.name == "clean")
    ops = RepairParams.model_validate(clean.params).operations
    out, log = apply_operations(batch, cfg, list(ops), focus=["dose_mg"], reference=good)
    broken = batch["dose_mg"] != good["dose_mg"]
    changed = out["dose_mg"] != batch["dose_mg"]
    assert changed.tolist() == broken.tolist() and int(broken.sum()) == 6
    assert list(zip(out["drug"][changed], out["dose_mg"][changed], strict=True)) == [
        ("warfarin", "137.5"),  # capped to warfarin's reference fence
        ("atorvastatin", "57.5"),
        ("warfarin", "137.5"),
        ("rivaroxaban", "7.5"),  # 4000 mg, out of range: blanked, then rivaroxaban's median
        ("metformin", "850"),  # 85000 mg: metformin's median, not the column's 10
        ("lisinopril", "40"),
    ]
    assert audit_frame(out, cfg, reference=good).breaches() == []
    # Without a reference the repair says it judged by the batch's own fences.
    _, log = apply_operations(batch, cfg, [Outliers(op="outliers")], focus=["dose_mg"])
    assert "the batch's own fences per drug" in log.steps[0]


@pytest.mark.parametrize(
    ("column", "error"),
    [
        ({"dtype": "string", "group_by": "drug"}, "group_by applies to int and float columns"),
        ({"dtype": "float", "group_by": "nowhere"}, "group_by names 'nowhere'"),
        ({"dtype": "float", "group_by": "x"}, "group_by names 'x'"),
    ],
)
def test_group_by_must_name_another_declared_column(column: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        config({"x": column, "drug": {"dtype": "category"}})
