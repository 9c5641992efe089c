from pathlib import Path

import pytest

from llmedic.catalog import AnomalyType, Risk
from llmedic.config import Settings
from llmedic.errors import PlaybookError
from llmedic.playbook import load_all_playbooks, load_playbook

SHIPPED = Path(__file__).resolve().parents[1] / "playbooks" / "latency.yaml"


def test_every_shipped_playbook_validates() -> None:
    books = load_all_playbooks()
    assert AnomalyType.LATENCY in books
    latency = books[AnomalyType.LATENCY]
    assert [(f.name, f.risk) for f in latency.fixes] == [
        ("lower_concurrency", Risk.LOW),
        ("restart_instance", Risk.HIGH),
        ("switch_to_quantised", Risk.HIGH),
        ("scale_out", Risk.HIGH),
    ]
    assert set(books) == {
        AnomalyType.DATA_MISSING,
        AnomalyType.DATA_FORMAT,
        AnomalyType.DATA_QUALITY,
        AnomalyType.LATENCY,
        AnomalyType.MEMORY_LEAK,
        AnomalyType.ACCURACY_DROP,
        AnomalyType.GPU_FAULT,
        AnomalyType.DEPENDENCY_CONFLICT,
        AnomalyType.NETWORK_INTERRUPTION,
    }
    assert latency.approval.needs_approval(Risk.HIGH) and not latency.approval.needs_approval(Risk.LOW)


@pytest.mark.parametrize(
    ("diagnosis", "fix"),
    [
        ("kv_cache_pressure", "lower_concurrency"),
        ("queueing", "lower_concurrency"),
        ("instance_degraded", "restart_instance"),
        ("slow_decode", "switch_to_quantised"),
        ("fleet_overload", "scale_out"),
        ("unknown", None),
    ],
)
def test_fix_for_diagnosis(diagnosis: str, fix: str | None) -> None:
    chosen = load_playbook("latency").fix_for(diagnosis)
    assert (chosen.name if chosen else None) == fix


def _override_dir(tmp_path: Path, old: str, new: str) -> Settings:
    text = SHIPPED.read_text()
    assert old in text
    (tmp_path / "latency.yaml").write_text(text.replace(old, new, 1))
    return Settings(playbooks_dir=tmp_path)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(
            "isolate: true",
            "isolate: true\nisolation: true",
            "latency.yaml:36: isolation: Extra inputs are not permitted",
            id="typo-key",
        ),
        pytest.param(
            "risk: high",
            "risk: extreme",
            "latency.yaml:47: fixes[1].risk: Input should be 'none', 'low', 'medium' or 'high' (got 'extreme')",
            id="bad-risk",
        ),
        pytest.param(
            "action: scale_out",
            "action: reboot_cluster",
            "latency.yaml:37: fixes: [3] (scale_out): action 'reboot_cluster' is not available to latency playbooks",
            id="unknown-action",
        ),
        pytest.param(
            "params: {replicas: 1}",
            "params: {replicas: 0}",
            "latency.yaml:37: fixes: [3].params.replicas: Input should be greater than or equal to 1 (got 0)",
            id="bad-params",
        ),
        pytest.param(
            "slo_p99_seconds: 2.0",
            "slo_p99_seconds: fast",
            "latency.yaml:10: settings: slo_p99_seconds: Input should be a valid number",
            id="bad-setting",
        ),
        pytest.param(
            "confirm:   {retries: 2",
            "confrim:   {retries: 2",
            "latency.yaml:26: steps.confrim: Input should be 'detect', 'confirm'",
            id="unknown-step",
        ),
    ],
)
def test_playbook_errors_name_file_line_and_fix(tmp_path: Path, old: str, new: str, expected: str) -> None:
    with pytest.raises(PlaybookError) as exc:
        load_playbook("latency", _override_dir(tmp_path, old, new))
    line = exc.value.message.splitlines()[1].strip()
    assert line.startswith(str(tmp_path) + "/" + expected), line


def test_file_name_must_match_anomaly(tmp_path: Path) -> None:
    (tmp_path / "gpu_fault.yaml").write_text(SHIPPED.read_text())
    with pytest.raises(PlaybookError) as exc:
        load_playbook("gpu_fault", Settings(playbooks_dir=tmp_path))
    assert (
        exc.value.message
        == f"{tmp_path / 'gpu_fault.yaml'}: declares anomaly 'latency' but is named gpu_fault.yaml"
    )


def test_file_name_must_be_an_anomaly(tmp_path: Path) -> None:
    (tmp_path / "slowness.yaml").write_text("anomaly: latency\n")
    with pytest.raises(PlaybookError) as exc:
        load_playbook("latency", Settings(playbooks_dir=tmp_path))
    assert exc.value.message == f"{tmp_path / 'slowness.yaml'}: file name 'slowness' is not an anomaly type"


def test_overrides_are_validated_too() -> None:
    book = load_playbook(
        "latency", overrides={"settings": {"slo_p99_seconds": 1.5}, "approval": {"timeout_minutes": 5}}
    )
    assert (book.settings["slo_p99_seconds"], book.approval.timeout_minutes) == (1.5, 5)
    with pytest.raises(PlaybookError) as exc:
        load_playbook("latency", overrides={"approval": {"timeout_minutes": -1}})
    assert "approval.timeout_minutes: Input should be greater than 0 (got -1)" in exc.value.message


def test_no_playbook_for_a_type(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every type ships a playbook; an installation that lost one says which and how to fix it.
    (tmp_path / "latency.yaml").write_text(SHIPPED.read_text())
    monkeypatch.setattr("llmedic.playbook._shipped_dir", lambda: tmp_path)
    with pytest.raises(PlaybookError) as exc:
        load_playbook("gpu_fault")
    assert exc.value.message == "no playbook for anomaly type 'gpu_fault'"
