"""Versioned datasets: every write is a new immutable version; nothing is ever overwritten.

Layout of one dataset under the store's root (``<home>/datasets`` by default)::

    <name>/versions/<id>/data.<csv|parquet|jsonl>   the bytes of the version (read-only)
    <name>/versions/<id>/manifest.json              content hash, rows, columns, who/why/parent, producer
    <name>/events.jsonl                             append-only log: commit, current, quarantine, reference
    <name>/CURRENT                                  the current version id, for readers outside llmedic

The event log is the source of truth: the current version, the reference version and the
quarantined versions are all derived from it, so a "rollback" is one more event, and the history of
who changed what (and why) is never lost. A dataset's ``publish_to`` file, when declared, is
atomically replaced with the current version's bytes on every change, so consumers (a RAG index, a
fine-tuning job, the sandbox's knowledge base) only ever see a whole, unquarantined version.

Reading goes through :func:`read_table`, the one seam where file and parser errors become
:class:`~llmedic.errors.DatasetError` with the line and the fix.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from llmedic.config import DatasetConfig
from llmedic.errors import DatasetError, DataStoreError
from llmedic.incident import utcnow

__all__ = [
    "DataStore",
    "DatasetState",
    "Producer",
    "StoreEvent",
    "Version",
    "check_columns",
    "read_table",
    "serialise",
]

Format = Literal["csv", "parquet", "jsonl"]


class Producer(BaseModel):
    """The pipeline step (and job/run) that produced a version: the lineage of the data."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    step: str = "manual"
    job: str = ""
    run: str = ""


class Version(BaseModel):
    """The manifest of one immutable version."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    seq: int
    sha256: str
    format: Format
    file: str
    rows: int
    columns: list[str]
    bytes: int
    created_at: datetime
    by: str
    why: str
    parent: str | None = None
    producer: Producer = Producer()


class StoreEvent(BaseModel):
    """One line of a dataset's event log."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["commit", "current", "quarantine", "release", "reference"]
    version: str
    at: datetime
    by: str
    why: str = ""


class DatasetState(BaseModel):
    """What the event log says now."""

    current: str | None = None
    reference: str | None = None
    quarantined: dict[str, str] = Field(default_factory=dict)
    """Version id → why it was quarantined."""
    events: list[StoreEvent] = Field(default_factory=list)


# --- reading files: the one seam for parser errors ------------------------------------------------


def _decode(raw: bytes, encoding: str, where: str) -> str:
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        guess = next((enc for enc in ("utf-8", "cp1252") if enc != encoding and _decodes(raw, enc)), None)
        raise DatasetError(
            f"{where}: line {line}, byte {exc.start}: not valid {encoding} ({exc.reason}: {raw[exc.start : exc.start + 4]!r})",
            hint=(f"the file looks like {guess}; " if guess else "")
            + "convert it to the dataset's encoding, or declare the right `encoding:` for the dataset",
        ) from None
    except LookupError:
        raise DatasetError(
            f"{where}: unknown encoding {encoding!r}", hint="use e.g. utf-8 or cp1252"
        ) from None


def _decodes(raw: bytes, encoding: str) -> bool:
    try:
        raw.decode(encoding)
    except UnicodeDecodeError:
        return False
    return True


def read_table(path: Path, fmt: Format, encoding: str = "utf-8", *, where: str | None = None) -> pd.DataFrame:
    """Read one data file *as written*: CSV cells stay text (so "N/A" in a numeric column is seen as
    such, not silently turned into a missing value), JSONL keeps the JSON types, Parquet its schema."""
    where = where or str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{where}: file not found", hint="check the path") from None
    except IsADirectoryError:
        raise DatasetError(f"{where}: is a directory, not a data file") from None
    except OSError as exc:
        raise DatasetError(f"{where}: cannot be read ({exc.strerror})") from None
    if not raw.strip():
        raise DatasetError(f"{where}: the file is empty", hint="a batch needs a header and at least one row")
    try:
        if fmt == "parquet":
            frame = pd.read_parquet(io.BytesIO(raw))
        else:
            text = _decode(raw, encoding, where)
            if fmt == "csv":
                frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=[])
            else:
                frame = pd.read_json(io.StringIO(text), lines=True, dtype=False, convert_dates=False)
    except DatasetError:
        raise
    except pd.errors.EmptyDataError:
        raise DatasetError(f"{where}: no columns to read", hint="the file needs a header row") from None
    except pd.errors.ParserError as exc:
        raise DatasetError(
            f"{where}: not valid CSV ({exc})".strip(), hint="check quoting and delimiters"
        ) from None
    except ValueError as exc:
        raise DatasetError(
            f"{where}: not valid {fmt} ({str(exc).splitlines()[0][:200]})",
            hint="JSONL needs one JSON object per line" if fmt == "jsonl" else f"is it really {fmt}?",
        ) from None
    except Exception as exc:  # pyarrow raises its own tree for a damaged Parquet file
        raise DatasetError(f"{where}: cannot be parsed as {fmt} ({type(exc).__name__}: {exc})") from None
    if frame.empty:
        raise DatasetError(f"{where}: the dataset has no rows", hint="a batch needs at least one row")
    return frame


def check_columns(frame: pd.DataFrame, cfg: DatasetConfig, where: str) -> None:
    """Every declared column must be present."""
    missing = [c for c in cfg.columns if c not in frame.columns]
    if missing:
        raise DatasetError(
            f"{where}: the schema declares column(s) {missing}, which the data does not have "
            f"(it has {list(frame.columns)[:20]})",
            hint="fix the batch, or the dataset's columns: in llmedic.yaml",
        )


def serialise(frame: pd.DataFrame, fmt: Format, encoding: str = "utf-8") -> bytes:
    """The bytes of a version written from a frame."""
    if fmt == "parquet":
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        return buf.getvalue()
    if fmt == "csv":
        return frame.to_csv(index=False).encode(encoding)
    text = frame.to_json(orient="records", lines=True, date_format="iso", force_ascii=False)
    return (text if text.endswith("\n") else text + "\n").encode(encoding)


# --- the store ----------------------------------------------------------------------------------


def _fsync_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class DataStore:
    """The versioned store of every declared dataset."""

    def __init__(self, root: Path) -> None:
        self.root = root

    # paths
    def _dir(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise DataStoreError(f"invalid dataset name {name!r}")
        return self.root / name

    def file_of(self, name: str, version: Version) -> Path:
        """Where the bytes of a version are."""
        return self._dir(name) / "versions" / version.id / version.file

    @contextlib.contextmanager
    def _locked(self, name: str) -> Iterator[Path]:
        directory = self._dir(name)
        try:
            (directory / "versions").mkdir(parents=True, exist_ok=True)
            with (directory / ".lock").open("a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    yield directory
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)
        except OSError as exc:
            raise DataStoreError(f"dataset store {directory}: {exc.strerror or exc}") from None

    # reading
    def versions(self, name: str) -> list[Version]:
        """Every version, oldest first."""
        base = self._dir(name) / "versions"
        if not base.is_dir():
            return []
        out = []
        for manifest in base.glob("*/manifest.json"):
            try:
                out.append(Version.model_validate_json(manifest.read_text(encoding="utf-8")))
            except (OSError, ValueError) as exc:
                raise DataStoreError(
                    f"{manifest}: damaged manifest ({str(exc).splitlines()[0]})",
                    hint="restore the file from a backup; versions are never rewritten by llmedic",
                ) from None
        return sorted(out, key=lambda v: v.seq)

    def version(self, name: str, ref: str) -> Version:
        """A version by id, by a unique prefix of it (``v0003``), or ``current``/``reference``."""
        state = self.state(name)
        if ref in ("current", "reference"):
            chosen = state.current if ref == "current" else state.reference
            if chosen is None:
                raise DataStoreError(f"dataset {name!r} has no {ref} version yet")
            ref = chosen
        matches = [v for v in self.versions(name) if v.id == ref or v.id.startswith(ref)]
        if len(matches) != 1:
            known = [v.id for v in self.versions(name)]
            raise DataStoreError(
                f"dataset {name!r}: {'no' if not matches else 'more than one'} version matches {ref!r}",
                hint=f"known versions: {known[-10:]}" if known else "the dataset has no versions yet",
            )
        return matches[0]

    def state(self, name: str) -> DatasetState:
        """Current, reference and quarantined versions, replayed from the event log."""
        log = self._dir(name) / "events.jsonl"
        state = DatasetState()
        if not log.exists():
            return state
        for n, line in enumerate(log.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                ev = StoreEvent.model_validate_json(line)
            except ValueError:
                raise DataStoreError(
                    f"{log}:{n}: damaged event line", hint="restore it from a backup"
                ) from None
            state.events.append(ev)
            if ev.kind == "current":
                state.current = ev.version
            elif ev.kind == "reference":
                state.reference = ev.version
            elif ev.kind == "quarantine":
                state.quarantined[ev.version] = ev.why
            elif ev.kind == "release":
                state.quarantined.pop(ev.version, None)
        return state

    def current(self, name: str) -> Version | None:
        """The version consumers see."""
        cur = self.state(name).current
        return self.version(name, cur) if cur else None

    def read(self, name: str, cfg: DatasetConfig, ref: str = "current") -> tuple[Version, pd.DataFrame]:
        """A version and its data."""
        v = self.version(name, ref)
        return v, read_table(self.file_of(name, v), v.format, cfg.encoding, where=f"{name}@{v.id}")

    def last_good(self, name: str, before: str | None = None) -> Version | None:
        """The newest version that is not quarantined (older than ``before`` when given)."""
        state = self.state(name)
        versions = self.versions(name)
        if before is not None:
            cut = self.version(name, before).seq
            versions = [v for v in versions if v.seq < cut]
        good = [v for v in versions if v.id not in state.quarantined]
        return good[-1] if good else None

    def lineage(self, name: str, ref: str = "current") -> list[Version]:
        """The chain of parents from ``ref`` back to the first version (newest first)."""
        chain: list[Version] = []
        seen: set[str] = set()
        v: Version | None = self.version(name, ref)
        while v is not None and v.id not in seen:
            chain.append(v)
            seen.add(v.id)
            v = self.version(name, v.parent) if v.parent else None
        return chain

    # writing
    def _append(self, directory: Path, event: StoreEvent) -> None:
        with (directory / "events.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(event.model_dump_json() + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def _point(
        self, name: str, directory: Path, cfg: DatasetConfig | None, vid: str, by: str, why: str
    ) -> None:
        self._append(directory, StoreEvent(kind="current", version=vid, at=utcnow(), by=by, why=why))
        _fsync_write(directory / "CURRENT", (vid + "\n").encode())
        if cfg is not None and cfg.publish_to is not None:
            v = self.version(name, vid)
            cfg.publish_to.parent.mkdir(parents=True, exist_ok=True)
            _fsync_write(cfg.publish_to, self.file_of(name, v).read_bytes())

    def commit(
        self,
        name: str,
        data: pd.DataFrame | Path,
        cfg: DatasetConfig,
        *,
        by: str,
        why: str,
        parent: str | None = "current",
        producer: Producer | None = None,
        make_current: bool = True,
    ) -> Version:
        """Write a new version (from a file, copied byte for byte, or from a frame).

        The data is read back and checked (encoding, rows, declared columns) *before* anything is
        written, so a bad batch leaves the store exactly as it was.
        """
        if isinstance(data, Path):
            frame = read_table(data, cfg.format, cfg.encoding)
            check_columns(frame, cfg, str(data))
            payload = data.read_bytes()
        else:
            if data.empty:
                raise DatasetError(f"{name}: refusing to write a version with no rows")
            check_columns(data, cfg, f"{name} (new version)")
            frame = data
            payload = serialise(data, cfg.format, cfg.encoding)
        with self._locked(name) as directory:
            state = self.state(name)
            parent_id = state.current if parent == "current" else parent
            if parent_id is not None:
                parent_id = self.version(name, parent_id).id
            seq = len(self.versions(name)) + 1
            sha = hashlib.sha256(payload).hexdigest()
            vid = f"v{seq:04d}-{sha[:10]}"
            vdir = directory / "versions" / vid
            tmp = Path(tempfile.mkdtemp(dir=directory / "versions", prefix=".tmp-"))
            try:
                version = Version(
                    id=vid,
                    seq=seq,
                    sha256=sha,
                    format=cfg.format,
                    file=f"data.{cfg.format}",
                    rows=len(frame),
                    columns=[str(c) for c in frame.columns],
                    bytes=len(payload),
                    created_at=utcnow(),
                    by=by,
                    why=why,
                    parent=parent_id,
                    producer=producer or Producer(),
                )
                _fsync_write(tmp / version.file, payload)
                _fsync_write(tmp / "manifest.json", version.model_dump_json(indent=2).encode())
                for f in tmp.iterdir():
                    f.chmod(0o444)
                os.rename(tmp, vdir)  # atomic: a version is either whole or absent
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            self._append(
                directory, StoreEvent(kind="commit", version=vid, at=version.created_at, by=by, why=why)
            )
            if state.reference is None:
                self._append(
                    directory,
                    StoreEvent(kind="reference", version=vid, at=utcnow(), by=by, why="first version"),
                )
            if make_current:
                self._point(name, directory, cfg, vid, by, why)
        return version

    def set_current(self, name: str, ref: str, cfg: DatasetConfig | None, *, by: str, why: str) -> Version:
        """Point consumers at another existing version (a rollback is this). Quarantined versions
        cannot become current; release them first."""
        with self._locked(name) as directory:
            v = self.version(name, ref)
            reason = self.state(name).quarantined.get(v.id)
            if reason is not None:
                raise DataStoreError(
                    f"dataset {name!r}: version {v.id} is quarantined ({reason})",
                    hint=f"release it first: llmedic data release {name} {v.id}",
                )
            self._point(name, directory, cfg, v.id, by, why)
        return v

    def quarantine(
        self, name: str, ref: str, cfg: DatasetConfig | None, *, by: str, why: str
    ) -> Version | None:
        """Hold a version back. When it is current, consumers are re-pointed to the newest good
        version before it; returns that version (None when nothing had to move)."""
        with self._locked(name) as directory:
            v = self.version(name, ref)
            state = self.state(name)
            self._append(directory, StoreEvent(kind="quarantine", version=v.id, at=utcnow(), by=by, why=why))
            if state.current != v.id:
                return None
            good = self.last_good(name, before=v.id)
            if good is None:
                return None
            self._point(name, directory, cfg, good.id, by, f"quarantine of {v.id}: {why}")
            return good

    def release(self, name: str, ref: str, *, by: str, why: str) -> Version:
        """Lift a quarantine (the version does not become current by itself)."""
        with self._locked(name) as directory:
            v = self.version(name, ref)
            self._append(directory, StoreEvent(kind="release", version=v.id, at=utcnow(), by=by, why=why))
        return v

    def set_reference(self, name: str, ref: str, *, by: str, why: str) -> Version:
        """The version drift is measured against."""
        with self._locked(name) as directory:
            v = self.version(name, ref)
            self._append(directory, StoreEvent(kind="reference", version=v.id, at=utcnow(), by=by, why=why))
        return v

    def ensure_seeded(self, name: str, cfg: DatasetConfig) -> Version | None:
        """Import ``cfg.path`` as the first version when the dataset has none yet."""
        if self.versions(name) or cfg.path is None:
            return self.current(name)
        return self.commit(
            name,
            cfg.path,
            cfg,
            by="llmedic",
            why=f"imported from {cfg.path}",
            producer=Producer(step="import"),
        )

    def describe(self, name: str) -> dict[str, Any]:
        """A JSON-able summary (``llmedic data versions``)."""
        state = self.state(name)
        return {
            "dataset": name,
            "current": state.current,
            "reference": state.reference,
            "quarantined": state.quarantined,
            "versions": [v.model_dump(mode="json") for v in self.versions(name)],
        }
