"""What stays a file — rendered reports, dataset bytes, caches of them — is written here, atomically.

A location is a local path or an fsspec URL (``s3://bucket/llmedic/kb``, ``memory://…``). Local
writes go to a unique temporary file beside the target, are fsynced and renamed over it, so a
reader sees the old file or the new one and a crash never leaves half a file; other filesystems
get a whole-object put (object stores replace objects atomically).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write", "is_url"]


def is_url(location: str | Path) -> bool:
    """True for an fsspec URL (``scheme://…``), False for a local path."""
    return isinstance(location, str) and "://" in location and not location.startswith("file://")


def atomic_write(location: str | Path, data: str | bytes) -> None:
    """Replace the file at ``location`` with ``data`` (text is written as UTF-8)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if is_url(location):
        import fsspec  # type: ignore[import-untyped]

        with fsspec.open(str(location), "wb") as fh:
            fh.write(raw)
        return
    path = Path(str(location).removeprefix("file://"))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
