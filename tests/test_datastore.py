"""The versioned dataset store: immutable versions, the event log, quarantine, rollback, publishing,
and bad input that must leave the store exactly as it was."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pandas as pd
import pytest

from llmedic.adapters.datastore import DataStore, Producer, read_table
from llmedic.config import DatasetConfig
from llmedic.errors import DatasetError, DataStoreError


def cfg(tmp_path: Path, fmt: str = "csv", **more: object) -> DatasetConfig:
    return DatasetConfig.model_validate(
        {
            "format": fmt,
            "columns": {"id": {"dtype": "int"}, "name": {"dtype": "string"}},
            "publish_to": str(tmp_path / "pub" / f"data.{fmt}"),
            **more,
        }
    )


def frame(n: int = 3, offset: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {"id": range(offset, offset + n), "name": [f"n{i}" for i in range(offset, offset + n)]}
    )


def snapshot(root: Path) -> dict[str, str]:
    """Every file under the store with its content hash (to prove nothing changed)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_versions_are_immutable_and_history_is_kept(tmp_path: Path, fmt: str) -> None:
    store, c = DataStore(tmp_path / "store"), cfg(tmp_path, fmt)
    v1 = store.commit("d", frame(3), c, by="etl", why="first", producer=Producer(step="load", job="1"))
    v1_bytes = store.file_of("d", v1).read_bytes()
    v2 = store.commit("d", frame(4, 10), c, by="etl", why="second")
    assert (v1.seq, v2.seq, v2.parent, v1.parent) == (1, 2, v1.id, None)
    assert store.file_of("d", v1).read_bytes() == v1_bytes  # untouched by the second write
    assert oct(store.file_of("d", v1).stat().st_mode & 0o777) == "0o444"
    assert store.state("d").current == v2.id and store.state("d").reference == v1.id
    assert [v.rows for v in store.versions("d")] == [3, 4]
    assert [v.id for v in store.lineage("d")] == [v2.id, v1.id]
    _, back = store.read("d", c, v2.id)
    assert back["id"].astype(int).tolist() == [10, 11, 12, 13]
    assert hashlib.sha256((tmp_path / "pub" / f"data.{fmt}").read_bytes()).hexdigest() == v2.sha256
    assert (tmp_path / "store" / "d" / "CURRENT").read_text().strip() == v2.id


def test_quarantine_moves_consumers_and_rollback_is_an_event(tmp_path: Path) -> None:
    store, c = DataStore(tmp_path / "store"), cfg(tmp_path)
    v1 = store.commit("d", frame(3), c, by="a", why="1")
    v2 = store.commit("d", frame(3, 5), c, by="a", why="2")
    v3 = store.commit("d", frame(3, 9), c, by="a", why="3")
    moved = store.quarantine("d", v3.id, c, by="llmedic", why="bad")
    assert moved is not None and moved.id == v2.id and store.state("d").current == v2.id
    with pytest.raises(DataStoreError, match="quarantined"):
        store.set_current("d", v3.id, c, by="x", why="y")
    store.set_current("d", "v0001", c, by="ops", why="rollback")  # by prefix
    assert store.state("d").current == v1.id
    assert store.last_good("d").id == v2.id  # type: ignore[union-attr]
    store.release("d", v3.id, by="ops", why="false alarm")
    assert store.set_current("d", v3.id, c, by="ops", why="back").id == v3.id
    kinds = [e.kind for e in store.state("d").events]
    assert kinds == [
        "commit", "reference", "current", "commit", "current", "commit", "current",
        "quarantine", "current", "current", "release", "current",
    ]  # fmt: skip
    assert len(store.versions("d")) == 3  # nothing was ever deleted


@pytest.mark.parametrize(
    ("content", "encoding", "fmt", "message"),
    [
        (b"", "utf-8", "csv", "the file is empty"),
        (b"id,name\n", "utf-8", "csv", "the dataset has no rows"),
        ("id,name\n1,Ad\u00e9lie\n".encode("latin-1"), "utf-8", "csv", "line 2, byte 12: not valid utf-8"),
        (b"other,cols\n1,2\n", "utf-8", "csv", "declares column(s) ['id', 'name']"),
        (b'{"id": 1, "name": "a"}\n{broken\n', "utf-8", "jsonl", "not valid jsonl"),
        (b"not parquet at all", "utf-8", "parquet", "not valid parquet (Could not open Parquet input"),
    ],
)
def test_bad_batches_are_refused_and_nothing_is_written(
    tmp_path: Path, content: bytes, encoding: str, fmt: str, message: str
) -> None:
    store, c = DataStore(tmp_path / "store"), cfg(tmp_path, fmt, encoding=encoding)
    store.commit("d", frame(2), c, by="a", why="good")
    before = snapshot(tmp_path)
    batch = tmp_path / f"batch.{fmt}"
    batch.write_bytes(content)
    with pytest.raises(DatasetError, match=re.escape(message)):
        store.commit("d", batch, c, by="a", why="bad")
    after = snapshot(tmp_path)
    after.pop(f"batch.{fmt}")
    assert after == before


def test_wrong_encoding_names_the_likely_one(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes("name\nM\u00fcller\n".encode("cp1252"))
    with pytest.raises(DatasetError) as err:
        read_table(path, "csv", "utf-8")
    assert err.value.hint is not None and "looks like cp1252" in err.value.hint
    assert read_table(path, "csv", "cp1252")["name"].tolist() == ["Müller"]


def test_unreadable_file_and_unknown_version(tmp_path: Path) -> None:
    store, c = DataStore(tmp_path / "store"), cfg(tmp_path)
    with pytest.raises(DatasetError, match="file not found"):
        store.commit("d", tmp_path / "nope.csv", c, by="a", why="b")
    locked = tmp_path / "locked.csv"
    locked.write_text("id,name\n1,a\n")
    locked.chmod(0)
    if os.geteuid() != 0:  # root reads anything
        with pytest.raises(DatasetError, match="cannot be read"):
            store.commit("d", locked, c, by="a", why="b")
    assert store.versions("d") == []
    with pytest.raises(DataStoreError, match="no version matches 'v0009'"):
        store.version("d", "v0009")


def test_damaged_manifest_is_reported_not_ignored(tmp_path: Path) -> None:
    store, c = DataStore(tmp_path / "store"), cfg(tmp_path)
    v = store.commit("d", frame(2), c, by="a", why="b")
    manifest = tmp_path / "store" / "d" / "versions" / v.id / "manifest.json"
    manifest.chmod(0o644)
    manifest.write_text(json.dumps({"id": v.id}))
    with pytest.raises(DataStoreError, match="damaged manifest"):
        store.versions("d")


def test_seeding_imports_the_declared_file_once(tmp_path: Path) -> None:
    src = tmp_path / "seed.csv"
    frame(5).to_csv(src, index=False)
    store, c = DataStore(tmp_path / "store"), cfg(tmp_path, path=str(src))
    first = store.ensure_seeded("d", c)
    again = store.ensure_seeded("d", c)
    assert first is not None and again is not None and first.id == again.id
    assert first.producer.step == "import" and len(store.versions("d")) == 1
    assert first.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()  # copied byte for byte
