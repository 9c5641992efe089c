"""The model registry: releases, the last good version, reference baselines, freezes; and the
`llmedic model` commands, including a release and an ingest refused while an incident froze updates."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from llmedic.cli import main
from llmedic.errors import ModelRegistryError, UpdatesFrozen
from llmedic.registry import ModelRegistry, config_diff
from llmedic.store.tables import registry_events
from llmedic_sandbox.knowledge import golden_path, shipped_path

S = "svc"


@pytest.fixture
def reg(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path)


def test_last_good_skips_the_current_and_bad_versions(reg: ModelRegistry) -> None:
    for v in ("1.0", "1.1", "1.2", "1.3"):
        reg.record_release(S, v, by="ci")
    reg.mark(S, "1.2", good=False, by="llmedic", note="rolled back")
    assert [r.version for r in reg.releases(S) if r.bad] == ["1.2"]
    last = reg.last_good(S)
    assert last is not None and last.version == "1.1"
    reg.mark(S, "1.2", good=True, by="llmedic", note="verdict withdrawn")
    last = reg.last_good(S)
    assert last is not None and last.version == "1.2"
    reg.record_release(S, "1.1", by="llmedic", note="rollback", incident="inc-1")  # 1.1 serves again
    last = reg.last_good(S)
    assert last is not None and last.version == "1.3"


def test_reference_is_own_baseline_else_the_last_good_one(reg: ModelRegistry) -> None:
    reg.record_release(S, "1.0", by="ci")
    reg.record_baseline(S, "1.0", "g", {"a": 1, "b": 1}, by="t")
    reg.record_release(S, "1.1", by="ci")
    ref = reg.reference(S, "g")
    assert ref is not None and (ref.version, ref.accuracy) == ("1.0", 1.0)
    reg.record_baseline(S, "1.1", "g", {"a": 1, "b": 0}, by="t")
    ref = reg.reference(S, "g")
    assert ref is not None and (ref.version, ref.accuracy) == ("1.1", 0.5)
    assert reg.reference(S, "other") is None


def test_a_freeze_refuses_releases_but_not_the_incidents_own_rollback(reg: ModelRegistry) -> None:
    reg.record_release(S, "1.0", by="ci")
    reg.freeze(S, by="llmedic", note="accuracy incident", incident="inc-7")
    with pytest.raises(UpdatesFrozen) as err:
        reg.record_release(S, "1.1", by="ci")
    assert err.value.code == "updates-frozen" and "by llmedic (inc-7): accuracy incident" in err.value.message
    reg.record_release(S, "0.9", by="llmedic", incident="inc-7")
    assert reg.unfreeze(S, by="alice") and not reg.unfreeze(S, by="alice")
    reg.record_release(S, "1.1", by="ci")
    cur = reg.current(S)
    assert cur is not None and cur.version == "1.1"


def test_a_damaged_registry_event_is_named(reg: ModelRegistry) -> None:
    reg.record_release(S, "1.0", by="ci")
    with reg.store.write() as db:
        db.execute(
            sa.insert(registry_events).values(
                service=S, event="release", at=datetime.now(UTC), doc={"event": "release", "by": "x"}
            )
        )
    with pytest.raises(ModelRegistryError, match=rf"registry event 2 of '{S}' is damaged \(Field required\)"):
        reg.releases(S)


@pytest.mark.parametrize("service", ["", "a/b", ".hidden", "x" * 201])
def test_invalid_service_names_are_refused(reg: ModelRegistry, service: str) -> None:
    with pytest.raises(ModelRegistryError, match="invalid service name"):
        reg.events(service)


@pytest.mark.parametrize(
    ("old", "new", "diff"),
    [
        ({"a": 1}, {"a": 1}, []),
        ({"a": 1}, {"a": 2}, [{"key": "a", "old": 1, "new": 2}]),
        ({}, {"q": "awq"}, [{"key": "q", "old": None, "new": "awq"}]),
        (
            {"t": 0.0, "q": "awq"},
            {"t": 0.7},
            [{"key": "q", "old": "awq", "new": None}, {"key": "t", "old": 0.0, "new": 0.7}],
        ),
    ],
)
def test_config_diff(old: dict[str, object], new: dict[str, object], diff: list[dict[str, object]]) -> None:
    assert config_diff(old, new) == diff  # type: ignore[arg-type]


@pytest.fixture
def env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cfg = {
        "services": [
            {"name": S, "model": "m-1.0", "instances": [{"name": "i0", "url": "http://127.0.0.1:9"}]}
        ],
        "golden_sets": {"g": {"path": str(golden_path()), "service": S}},
        "datasets": {
            "kb": {
                "path": str(shipped_path()),
                "format": "jsonl",
                "columns": {"id": {"dtype": "string"}, "question": {"dtype": "string"}},
                "consumers": [S],
            }
        },
    }
    path = tmp_path / "llmedic.yaml"
    path.write_text(yaml.safe_dump(cfg))
    monkeypatch.setenv("LLMEDIC_CONFIG", str(path))
    return path


def cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.argv", ["llmedic", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    captured = capsys.readouterr()
    return int(exit_.value.code or 0), captured.out, captured.err


def test_model_cli_release_diff_and_freeze(
    env_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], clean_environ: Path
) -> None:
    assert (
        cli(
            monkeypatch,
            capsys,
            "model",
            "release",
            S,
            "m-1.1",
            "--by",
            "ci",
            "--set",
            "quantization=awq",
            "--set",
            "max_num_seqs=128",
        )[0]
        == 0
    )
    code, out, _ = cli(monkeypatch, capsys, "model", "diff", S, "m-1.0", "m-1.1")
    assert (code, out) == (0, "max_num_seqs: None → 128\nquantization: None → 'awq'\n")
    code, _, err = cli(monkeypatch, capsys, "model", "release", S, "m-1.2", "--by", "ci", "--set", "bad")
    assert (code, err.splitlines()[0]) == (2, "error [config-invalid]: --set 'bad' is not KEY=VALUE")
    ModelRegistry(clean_environ).freeze(S, by="llmedic", note="accuracy", incident="inc-1")
    code, _, err = cli(monkeypatch, capsys, "model", "release", S, "m-1.2", "--by", "ci")
    assert code == 1 and err.startswith("error [updates-frozen]: release of 'm-1.2' refused")
    code, _, err = cli(monkeypatch, capsys, "data", "ingest", "kb", str(shipped_path()), "--by", "etl")
    assert code == 1 and err.startswith("error [updates-frozen]: ingest into kb refused")
    assert cli(monkeypatch, capsys, "model", "unfreeze", S, "--by", "alice")[1] == f"{S}: unfrozen\n"
    code, out, _ = cli(monkeypatch, capsys, "model", "list", S)
    assert code == 0 and "current: m-1.1" in out and "FROZEN" not in out


def test_golden_check_cli(
    env_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(monkeypatch, capsys, "golden", "check", "g")
    assert code == 0 and out.startswith("g: 100 items, ")
    code, _, err = cli(monkeypatch, capsys, "golden", "check", "nope")
    assert (code, err.splitlines()[0]) == (2, "error [config-invalid]: no golden set 'nope'")
