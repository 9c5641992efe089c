import re

import pytest

from llmedic.anomalies import DIAGNOSES, diagnoses_of
from llmedic.catalog import CATALOG, AnomalyType, Category, Team, anomaly_info, parse_anomaly
from llmedic.errors import UnknownAnomalyType


def test_catalog_has_the_nine_types_in_three_categories() -> None:
    by_category = {c: sorted(t.value for t, i in CATALOG.items() if i.category == c) for c in Category}
    assert by_category == {
        Category.DATA: ["data_format", "data_missing", "data_quality"],
        Category.MODEL: ["accuracy_drop", "latency", "memory_leak"],
        Category.SYSTEM: ["dependency_conflict", "gpu_fault", "network_interruption"],
    }


@pytest.mark.parametrize(
    ("anomaly", "team", "deployment"),
    [
        (AnomalyType.DATA_MISSING, Team.DATA, "llmedic-data-missing/default"),
        (AnomalyType.LATENCY, Team.ALGORITHM, "llmedic-latency/default"),
        (AnomalyType.GPU_FAULT, Team.OPS, "llmedic-gpu-fault/default"),
    ],
)
def test_team_and_deployment(anomaly: AnomalyType, team: Team, deployment: str) -> None:
    info = anomaly_info(anomaly)
    assert (info.team, info.deployment_name) == (team, deployment)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("latency", AnomalyType.LATENCY),
        ("GPU-Fault", AnomalyType.GPU_FAULT),
        (" data_missing ", AnomalyType.DATA_MISSING),
    ],
)
def test_parse_anomaly(name: str, expected: AnomalyType) -> None:
    assert parse_anomaly(name) == expected


def test_unknown_anomaly_names_the_known_ones() -> None:
    with pytest.raises(UnknownAnomalyType) as exc:
        parse_anomaly("slowness")
    assert exc.value.message == "unknown anomaly type 'slowness'"
    assert exc.value.hint is not None and "latency" in exc.value.hint and "gpu_fault" in exc.value.hint


def test_every_anomaly_type_declares_its_diagnoses() -> None:
    assert set(DIAGNOSES) == set(AnomalyType)
    names = {kind: diagnoses_of(kind) for kind in AnomalyType}
    assert all(v and len(set(v)) == len(v) for v in names.values())
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", d) for v in names.values() for d in v)
    # Each producer's "nothing explains it" value is a diagnosis too (it escalates).
    assert {
        k: [d for d in v if d in ("unknown", "unexplained", "none", "healthy")] for k, v in names.items()
    } == {
        AnomalyType.DATA_MISSING: ["none"],
        AnomalyType.DATA_FORMAT: ["none"],
        AnomalyType.DATA_QUALITY: ["none"],
        AnomalyType.ACCURACY_DROP: ["unexplained"],
        AnomalyType.LATENCY: ["unknown"],
        AnomalyType.MEMORY_LEAK: [],
        AnomalyType.GPU_FAULT: ["healthy", "unknown"],
        AnomalyType.DEPENDENCY_CONFLICT: ["unknown"],
        AnomalyType.NETWORK_INTERRUPTION: ["healthy"],
    }
