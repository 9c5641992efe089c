"""Which endpoint of each network link is active: the record a failover writes and consumers read
(``<home>/network/active.json``), with the history of every switch beside it."""

from __future__ import annotations

import json
import os
from pathlib import Path

from llmedic.config import NetworkLink
from llmedic.incident import utcnow

__all__ = ["active_url", "set_active_url"]


def _file(home: Path) -> Path:
    return home / "network" / "active.json"


def active_url(home: Path, name: str, link: NetworkLink) -> str:
    """The endpoint the link's consumers use now (the primary unless failed over)."""
    try:
        data = json.loads(_file(home).read_text("utf-8"))
    except (OSError, ValueError):
        return str(link.url)
    return str(data.get(name, {}).get("url") or link.url)


def set_active_url(home: Path, name: str, url: str, *, by: str) -> None:
    """Record ``url`` as the link's active endpoint (atomic rewrite; history appended)."""
    path = _file(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        data = {}
    data[name] = {"url": url, "at": utcnow().isoformat(), "by": by}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(tmp, path)
    with (path.parent / "history.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"link": name, **data[name]}) + "\n")
