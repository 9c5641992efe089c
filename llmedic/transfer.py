"""Resumable transfers with checksum verification: a model or data sync interrupted by the network
goes on from the byte it reached (HTTP ``Range``), retries with exponential backoff, and only a file
whose SHA-256 matches replaces the destination (atomically). Nothing half-written is ever in place.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from llmedic.errors import RemoteCommandError

__all__ = ["SyncResult", "partial_of", "resume_download", "sha256_of"]


def sha256_of(path: Path) -> str:
    """SHA-256 of a file."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def partial_of(dest: Path) -> Path:
    """Where the bytes of an unfinished transfer of ``dest`` are kept."""
    return dest.with_name(dest.name + ".part")


@dataclass(frozen=True)
class SyncResult:
    """How a sync went."""

    bytes_total: int
    resumed_from: int
    attempts: int
    sha256: str


def resume_download(
    url: str,
    dest: Path,
    sha256: str,
    *,
    attempts: int = 5,
    backoff_seconds: float = 0.5,
    timeout: float = 10.0,
) -> SyncResult:
    """Bring ``dest`` to the file at ``url`` with ``sha256``: resume ``dest.part`` with a Range
    request, retry ``attempts`` times with doubling pauses, verify, then rename into place."""
    if dest.exists() and sha256_of(dest) == sha256:
        return SyncResult(dest.stat().st_size, dest.stat().st_size, 0, sha256)
    part = partial_of(dest)
    part.parent.mkdir(parents=True, exist_ok=True)
    first = part.stat().st_size if part.exists() else 0
    last_error = ""
    for attempt in range(1, attempts + 1):
        have = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            with httpx.stream("GET", url, headers=headers, timeout=timeout) as resp:
                if resp.status_code == 416:  # nothing left to send: the part is already whole
                    pass
                elif resp.status_code == 200 and have:
                    # The server ignored the range: start over rather than append the whole file.
                    part.unlink()
                    have = 0
                elif resp.status_code not in (200, 206):
                    raise RemoteCommandError(f"{url} answered HTTP {resp.status_code}")
                if resp.status_code in (200, 206):
                    with part.open("ab") as fh:
                        for chunk in resp.iter_bytes(1 << 16):
                            fh.write(chunk)
                        fh.flush()
                        os.fsync(fh.fileno())
            digest = sha256_of(part)
            if digest == sha256:
                os.replace(part, dest)
                return SyncResult(dest.stat().st_size, first, attempt, digest)
            # A whole file with the wrong checksum is not resumable: discard it and start over.
            last_error = f"checksum mismatch ({digest[:12]}… ≠ {sha256[:12]}…)"
            part.unlink()
        except (httpx.HTTPError, OSError) as exc:
            last_error = f"{type(exc).__name__}: {exc}"
        except RemoteCommandError as exc:
            last_error = exc.message
        if attempt < attempts:
            time.sleep(backoff_seconds * 2 ** (attempt - 1))
    raise RemoteCommandError(
        f"sync of {url} to {dest} failed after {attempts} attempt(s): {last_error}",
        hint="the bytes received are kept in the .part file; the next sync resumes from them",
    )
