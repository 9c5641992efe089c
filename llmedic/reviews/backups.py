"""Backups of model weights, serving configuration and datasets: make one, and verify the latest.

A backup of an artifact is a directory under its ``backups`` directory, named by UTC time
(``20261124T230000Z``; sorted by name, newest last) and holding a copy of the files plus
``MANIFEST.sha256`` in ``sha256sum`` format (``<hex>  <relative path>`` per line), so the standard
tools can check it too. Verification of the latest backup:

1. **exists** — there is a backup with a manifest;
2. **recent** — it is younger than ``max_age_hours`` (by its name's timestamp);
3. **checksums** — every file in the manifest is there with its SHA-256, and nothing is unlisted;
4. **restore** — it is copied into a scratch directory (never over the live copy) and read back
   as what it is: a dataset loads with rows, a configuration parses (YAML/JSON), model weights'
   ``safetensors`` headers parse and their tensors fit the file, ``*.json`` next to them parse.

The weekly review (``flows/backup_verify.py`` wires it) verifies every declared artifact, writes
the report under ``<home>/reviews/`` and opens a review incident per failing artifact.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field

from llmedic.config import BackupArtifact, EnvironmentFile, load_environment, settings_from_env
from llmedic.errors import DataStoreError, LlmedicError
from llmedic.incident import utcnow
from llmedic.reviews.incidents import ReviewIncidents
from llmedic.reviews.selection import choose

__all__ = [
    "BackupCheck",
    "BackupReport",
    "BackupRequest",
    "check_request",
    "conclude",
    "make_backup",
    "open_incidents",
    "render",
    "table_rows",
    "verify_backup",
    "verify_declared",
    "write_report",
]

MANIFEST = "MANIFEST.sha256"
STAMP = "%Y%m%dT%H%M%SZ"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST)


def make_backup(artifact: BackupArtifact, *, now: datetime | None = None) -> Path:
    """Copy the live artifact into a new backup directory with its manifest; returns the directory."""
    src = artifact.source
    if not src.exists():
        raise DataStoreError(f"cannot back up {src}: it does not exist")
    at = (now or datetime.now(UTC)).strftime(STAMP)
    dest = artifact.backups / at
    tmp = artifact.backups / f".{at}.partial"
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        if src.is_dir():
            shutil.copytree(src, tmp, dirs_exist_ok=True)
        else:
            shutil.copy2(src, tmp / src.name)
        lines = [f"{_sha256(p)}  {p.relative_to(tmp).as_posix()}" for p in _files(tmp)]
        (tmp / MANIFEST).write_text("\n".join(lines) + "\n", encoding="utf-8")
        tmp.rename(dest)  # a backup is whole or absent
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataStoreError(
            f"backup of {src} into {artifact.backups} failed: {exc.strerror or exc}"
        ) from None
    return dest


@dataclass(frozen=True)
class BackupCheck:
    """One verification check."""

    name: str
    passed: bool
    detail: str


@dataclass
class BackupReport:
    """Verification of one artifact's latest backup."""

    artifact: str
    kind: str
    backup: str | None
    age_hours: float | None
    checks: list[BackupCheck] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Every check passed."""
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def failed(self) -> list[BackupCheck]:
        """The checks that failed."""
        return [c for c in self.checks if not c.passed]

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form."""
        return {
            "artifact": self.artifact,
            "kind": self.kind,
            "backup": self.backup,
            "age_hours": round(self.age_hours, 2) if self.age_hours is not None else None,
            "passed": self.passed,
            "checks": [c.__dict__ for c in self.checks],
        }


def _latest(backups: Path) -> Path | None:
    if not backups.is_dir():
        return None
    dirs = sorted(p for p in backups.iterdir() if p.is_dir() and not p.name.startswith("."))
    return dirs[-1] if dirs else None


def _manifest(backup: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for n, line in enumerate((backup / MANIFEST).read_text("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64:
            raise ValueError(f"{MANIFEST}:{n} is not `<sha256>  <path>`")
        out[name] = digest
    return out


def _safetensors(path: Path) -> str:
    """Parse a safetensors header and check the tensors' byte ranges fit the file."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        raw = fh.read(8)
        if len(raw) != 8:
            raise ValueError("shorter than a safetensors header")
        (n,) = struct.unpack("<Q", raw)
        if n > min(size - 8, 100 << 20):
            raise ValueError(f"header length {n} does not fit the file")
        header = json.loads(fh.read(n))
    end = 0
    tensors = 0
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        lo, hi = meta["data_offsets"]
        end = max(end, int(hi))
        tensors += 1
        if lo > hi:
            raise ValueError(f"tensor {name!r} has offsets {lo}>{hi}")
    if 8 + n + end > size:
        raise ValueError(f"tensors need {8 + n + end} bytes, the file has {size}")
    return f"{tensors} tensors"


def _read_back(kind: str, fmt: str, root: Path) -> str:
    """Read a restored copy as what it is; returns what was read, raises on failure."""
    from llmedic.adapters.datastore import read_table

    files = _files(root)
    if not files:
        raise ValueError("the restore is empty")
    said: list[str] = []
    for p in files:
        suffix = p.suffix.lower().lstrip(".")
        f = fmt if fmt not in ("auto", "any") else suffix
        if kind == "dataset" and f in ("csv", "parquet", "jsonl"):
            frame = read_table(p, f)  # type: ignore[arg-type]
            if frame.empty:
                raise ValueError(f"{p.name}: no rows")
            said.append(f"{p.name}: {len(frame)} rows")
        elif f in ("yaml", "yml"):
            yaml.safe_load(p.read_text("utf-8"))
            said.append(f"{p.name}: YAML parses")
        elif f == "json":
            json.loads(p.read_text("utf-8"))
            said.append(f"{p.name}: JSON parses")
        elif f == "safetensors":
            said.append(f"{p.name}: {_safetensors(p)}")
        else:
            p.read_bytes()
            said.append(f"{p.name}: readable")
    return "; ".join(said[:6]) + (f"; … {len(said) - 6} more" if len(said) > 6 else "")


def verify_backup(name: str, artifact: BackupArtifact, *, now: datetime | None = None) -> BackupReport:
    """Verify the latest backup of ``artifact`` (never touches the live copy)."""
    now = now or datetime.now(UTC)
    latest = _latest(artifact.backups)
    report = BackupReport(name, artifact.kind, latest.name if latest else None, None)
    if latest is None or not (latest / MANIFEST).exists():
        report.checks.append(
            BackupCheck("exists", False, f"no backup with a {MANIFEST} under {artifact.backups}")
        )
        return report
    report.checks.append(BackupCheck("exists", True, str(latest)))
    try:
        taken = datetime.strptime(latest.name, STAMP).replace(tzinfo=UTC)
    except ValueError:
        taken = datetime.fromtimestamp((latest / MANIFEST).stat().st_mtime, UTC)
    report.age_hours = (now - taken).total_seconds() / 3600
    report.checks.append(
        BackupCheck(
            "recent",
            report.age_hours <= artifact.max_age_hours,
            f"{report.age_hours:.1f} h old (limit {artifact.max_age_hours:g} h)",
        )
    )
    try:
        listed = _manifest(latest)
    except (OSError, ValueError) as exc:
        report.checks.append(BackupCheck("checksums", False, f"unreadable manifest: {exc}"))
        return report
    present = {p.relative_to(latest).as_posix(): p for p in _files(latest)}
    missing = sorted(set(listed) - set(present))
    unlisted = sorted(set(present) - set(listed))
    actual = {k: _sha256(p) for k, p in present.items()}
    bad = sorted(k for k in set(listed) & set(present) if actual[k] != listed[k])
    problems = (
        [f"missing {missing[:5]}"] * bool(missing)
        + [f"checksum mismatch {bad[:5]}"] * bool(bad)
        + [f"not in the manifest {unlisted[:5]}"] * bool(unlisted)
    )
    report.checks.append(
        BackupCheck(
            "checksums",
            not problems,
            "; ".join(problems) if problems else f"{len(listed)} file(s) match {MANIFEST}",
        )
    )
    with tempfile.TemporaryDirectory(prefix=f"llmedic-restore-{name}-") as scratch:
        target = Path(scratch) / "restore"
        try:
            shutil.copytree(latest, target, ignore=shutil.ignore_patterns(MANIFEST))
            copied = {p.relative_to(target).as_posix(): _sha256(p) for p in _files(target)}
            if copied != actual:
                raise ValueError("the restored copy differs from the backup it was copied from")
            what = _read_back(artifact.kind, artifact.format, target)
            report.checks.append(BackupCheck("restore", True, f"restored into scratch and read: {what}"))
        except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError, LlmedicError) as exc:
            message = exc.message if isinstance(exc, LlmedicError) else str(exc)
            report.checks.append(BackupCheck("restore", False, f"restore failed: {message}"))
    return report


class BackupRequest(BaseModel):
    """Parameters of a backup-verification run (the Prefect UI shows them as a form)."""

    artifacts: list[str] = Field(default_factory=list)
    """Artifacts to verify; empty: all declared."""
    open_incidents: bool = True


def check_request(env: EnvironmentFile, req: BackupRequest) -> tuple[list[str], str | None]:
    """The artifacts to verify, or why the run cannot go on (then the list is empty)."""
    return choose(req.artifacts, env.backups, kind="artifact")


def verify_declared(name: str) -> BackupReport:
    """Verify the latest backup of the artifact declared as ``name`` in llmedic.yaml."""
    env = load_environment(settings=settings_from_env())
    return verify_backup(name, env.backups[name])


def render(reports: list[BackupReport], when: str) -> str:
    """The Markdown report: a row per artifact, then every check with its detail."""
    lines = [
        f"# Backup verification {when}",
        "",
        "| artifact | kind | latest backup | age (h) | exists | recent | checksums | restore |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in reports:
        checks = {c.name: c for c in r.checks}

        def cell(n: str, checks: dict[str, BackupCheck] = checks) -> str:
            c = checks.get(n)
            return "—" if c is None else ("ok" if c.passed else "**FAILED**")

        age = round(r.age_hours, 2) if r.age_hours is not None else "—"
        lines.append(
            f"| {r.artifact} | {r.kind} | {r.backup or '—'} | {age} | "
            f"{cell('exists')} | {cell('recent')} | {cell('checksums')} | {cell('restore')} |"
        )
    lines += ["", "## Details", ""]
    for r in reports:
        lines.append(f"### {r.artifact}")
        lines += [f"- {c.name}: {'ok' if c.passed else 'FAILED'} — {c.detail}" for c in r.checks]
        lines.append("")
    return "\n".join(lines) + "\n"


def write_report(home: Path, reports: list[BackupReport]) -> tuple[Path, str]:
    """Write ``<home>/reviews/backups-….md``; returns its path and text."""
    when = f"{utcnow():%Y-%m-%d %H:%M} UTC"
    out = home / "reviews" / f"backups-{utcnow():%Y%m%d-%H%M%S}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    report = render(reports, when)
    out.write_text(report, encoding="utf-8")
    return out, report


def table_rows(reports: list[BackupReport]) -> list[dict[str, Any]]:
    """The table artifact: one row per artifact."""
    return [
        {
            "artifact": r.artifact,
            "kind": r.kind,
            "backup": r.backup,
            "age_hours": round(r.age_hours, 2) if r.age_hours is not None else None,
            "passed": r.passed,
            "failed": ", ".join(c.name for c in r.failed),
        }
        for r in reports
    ]


def open_incidents(
    env: EnvironmentFile, home: Path, reports: list[BackupReport], report: Path
) -> dict[str, str]:
    """A review incident per failing artifact (one per artifact and ISO week: a second run that
    week updates it). Artifact → ``opened|updated <id>``."""
    store = ReviewIncidents(home)
    week = f"{utcnow():%G-W%V}"
    opened: dict[str, str] = {}
    for r in reports:
        if r.passed:
            continue
        rec, new = store.open(
            env,
            kind="backup",
            subject=r.artifact,
            period=week,
            title=f"backup of {r.artifact} ({r.kind}) failed verification",
            findings=[f"{c.name}: {c.detail}" for c in r.failed],
            report_path=str(report),
        )
        opened[r.artifact] = f"{'opened' if new else 'updated'} {rec.id}"
    return opened


def conclude(
    reports: list[BackupReport], report: Path, opened: dict[str, str]
) -> tuple[bool, str, dict[str, Any]]:
    """Whether every backup passed, the run's message and its result data."""
    failing = [r.artifact for r in reports if not r.passed]
    data = {"report": str(report), "reports": [r.as_dict() for r in reports], "incidents": opened}
    return not failing, f"{len(reports)} backup(s) verified; failing: {failing or 'none'}", data
