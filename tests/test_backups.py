"""Backup verification: an intact backup passes; a stale one, a corrupted file, one that fails to
restore and a missing one are each reported by the right check; the live copy is never touched; the
weekly flow writes its report and opens one review incident per failing artifact (once per week)."""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmedic.config import BackupArtifact
from llmedic.reviews.backups import MANIFEST, make_backup, verify_backup
from llmedic.reviews.incidents import ReviewIncidents
from llmedic_sandbox.knowledge import shipped_path

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def safetensors(path: Path, tensors: int = 2, truncate: int = 0) -> None:
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    for i in range(tensors):
        header[f"w{i}"] = {"dtype": "F32", "shape": [4], "data_offsets": [16 * i, 16 * (i + 1)]}
    raw = json.dumps(header).encode()
    body = struct.pack("<Q", len(raw)) + raw + bytes(16 * tensors)
    path.write_bytes(body[: len(body) - truncate] if truncate else body)


@pytest.fixture
def live(tmp_path: Path) -> dict[str, BackupArtifact]:
    model = tmp_path / "live" / "model"
    model.mkdir(parents=True)
    safetensors(model / "model.safetensors")
    (model / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    cfg = tmp_path / "live" / "serving.yaml"
    cfg.write_text("max_num_seqs: 128\nquantization: awq\n")
    data = tmp_path / "live" / "kb.jsonl"
    data.write_bytes(shipped_path().read_bytes())
    b = tmp_path / "backups"
    return {
        "weights": BackupArtifact(kind="model", source=model, backups=b / "weights"),
        "serving": BackupArtifact(kind="config", source=cfg, backups=b / "serving"),
        "kb": BackupArtifact(kind="dataset", source=data, backups=b / "kb"),
    }


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_intact_backups_pass_every_check(live: dict[str, BackupArtifact], tmp_path: Path) -> None:
    before = snapshot(tmp_path / "live")
    for name, art in live.items():
        make_backup(art, now=NOW - timedelta(hours=2))
        rep = verify_backup(name, art, now=NOW)
        assert rep.passed, rep.as_dict()
        assert [c.name for c in rep.checks] == ["exists", "recent", "checksums", "restore"]
        assert rep.age_hours == 2.0
    restores = {n: verify_backup(n, a, now=NOW).checks[-1].detail for n, a in live.items()}
    assert restores["weights"] == (
        "restored into scratch and read: config.json: JSON parses; model.safetensors: 2 tensors"
    )
    assert restores["serving"] == "restored into scratch and read: serving.yaml: YAML parses"
    assert restores["kb"] == "restored into scratch and read: kb.jsonl: 100 rows"
    assert snapshot(tmp_path / "live") == before


def _stale(b: Path) -> None:
    """Nothing is damaged: the backup is simply too old (taken 80 hours ago)."""


def _corrupt(b: Path) -> None:
    f = b / "model.safetensors"
    f.chmod(0o644)
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF
    f.write_bytes(bytes(data))


def _truncate_and_rewrite_manifest(b: Path) -> None:
    # A backup that was taken of an already broken file: the manifest matches, the restore fails.
    safetensors(b / "model.safetensors", truncate=10)
    import hashlib

    lines = [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(b).as_posix()}"
        for p in sorted(b.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    ]
    (b / MANIFEST).write_text("\n".join(lines) + "\n")


def _drop_file(b: Path) -> None:
    (b / "config.json").unlink()


@pytest.mark.parametrize(
    ("damage", "taken_hours_ago", "failed", "detail"),
    [
        (_stale, 80, ["recent"], "80.0 h old (limit 26 h)"),
        (_corrupt, 1, ["checksums"], "checksum mismatch ['model.safetensors']"),
        (_drop_file, 1, ["checksums"], "missing ['config.json']"),
        (
            _truncate_and_rewrite_manifest,
            1,
            ["restore"],
            "restore failed: tensors need 201 bytes, the file has 191",
        ),
    ],
)
def test_each_failure_is_reported_by_its_check(
    live: dict[str, BackupArtifact],
    damage: Callable[[Path], None],
    taken_hours_ago: int,
    failed: list[str],
    detail: str,
) -> None:
    art = live["weights"]
    b = make_backup(art, now=NOW - timedelta(hours=taken_hours_ago))
    damage(b)
    rep = verify_backup("weights", art, now=NOW)
    assert [c.name for c in rep.failed] == failed
    assert rep.failed[0].detail == detail


def test_no_backup_at_all(live: dict[str, BackupArtifact]) -> None:
    rep = verify_backup("kb", live["kb"], now=NOW)
    assert [(c.name, c.passed) for c in rep.checks] == [("exists", False)]


def test_a_dataset_backup_that_does_not_load_fails_the_restore(live: dict[str, BackupArtifact]) -> None:
    art = live["kb"]
    art.source.write_text('{"id": "ddi-001", "question": \n')  # the live file was already broken
    make_backup(art, now=NOW)
    rep = verify_backup("kb", art, now=NOW)
    assert [c.name for c in rep.failed] == ["restore"]
    assert rep.failed[0].detail.startswith("restore failed: ")


def test_weekly_flow_reports_and_opens_one_incident_per_failing_artifact(
    live: dict[str, BackupArtifact], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_harness: None
) -> None:
    from flows.backup_verify import backup_verify

    now = datetime.now(UTC)
    make_backup(live["weights"], now=now)
    make_backup(live["serving"], now=now - timedelta(hours=100))
    kb = make_backup(live["kb"], now=now)
    (kb / "kb.jsonl").chmod(0o644)
    (kb / "kb.jsonl").write_text("changed after the backup was taken\n")
    env = {"backups": {n: json.loads(a.model_dump_json()) for n, a in live.items()}}
    (tmp_path / "llmedic.yaml").write_text(yaml.safe_dump(env))
    monkeypatch.setenv("LLMEDIC_CONFIG", str(tmp_path / "llmedic.yaml"))
    for _ in range(2):
        state = backup_verify(return_state=True)
        data = state.result(raise_on_failure=False)
        assert state.is_failed() and state.message == "3 backup(s) verified; failing: ['kb', 'serving']"
    report = Path(data["report"]).read_text()
    # serving: too old; kb: checksum mismatch, and the changed file no longer loads either.
    assert "| weights | model |" in report and report.count("**FAILED**") == 3
    incidents = sorted(r.id for r in ReviewIncidents(Path(os.environ["LLMEDIC_HOME"])).all())
    assert [rid.split("-20")[0] for rid in incidents] == ["backup-kb", "backup-serving"]
    assert data["incidents"]["kb"].startswith("updated backup-kb-")  # the second run updated it


def test_backup_and_review_commands(
    live: dict[str, BackupArtifact],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    prefect_harness: None,
) -> None:
    from llmedic.cli import main

    env = {"backups": {"serving": json.loads(live["serving"].model_dump_json())}}
    (tmp_path / "llmedic.yaml").write_text(yaml.safe_dump(env))
    monkeypatch.setenv("LLMEDIC_CONFIG", str(tmp_path / "llmedic.yaml"))

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr("sys.argv", ["llmedic", *args])
        with pytest.raises(SystemExit) as done:
            main()
        cap = capsys.readouterr()
        return int(done.value.code or 0), cap.out, cap.err

    code, _, err = run("review", "backups")
    assert code == 1
    code, out, _ = run("review", "incidents", "--json")
    (rec,) = json.loads(out)
    rid = rec["id"]
    assert (
        code == 0 and rid.startswith("backup-serving-") and rec["findings"][0].startswith("exists: no backup")
    )
    code, out, _ = run("backup", "make", "serving")
    assert code == 0 and out.startswith("serving: ")
    code, out, _ = run("review", "backups")
    assert code == 0 and out.startswith("1 backup(s) verified; failing: none")
    assert run("review", "close", rid, "--by", "alice")[1] == f"{rid} closed by alice\n"
    assert "no review incidents" in run("review", "incidents")[1]
    code, _, err = run("backup", "make", "nope")
    assert (code, err.splitlines()[0]) == (2, "error [config-invalid]: no artifact 'nope' under backups:")
