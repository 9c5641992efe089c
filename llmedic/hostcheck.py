"""Host resources: CPU load, memory, disk space and I/O, the heaviest processes (and who holds the
GPUs), and whether the service may read (and write) its model and data paths.

Read from ``/proc`` and the standard library on the host itself: locally here, or on a remote host
by running ``llmedic host check --json`` there through an allowlisted command.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

__all__ = ["host_report", "problems"]


def _meminfo() -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            out[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return out


def _diskstats() -> tuple[int, int]:
    """Sectors read and written, summed over whole disks."""
    read = written = 0
    try:
        for line in Path("/proc/diskstats").read_text().splitlines():
            f = line.split()
            if len(f) > 9 and not f[2][-1].isdigit():
                read, written = read + int(f[5]), written + int(f[9])
    except (OSError, ValueError):
        pass
    return read, written


def _processes(top: int) -> list[dict[str, Any]]:
    procs: list[dict[str, Any]] = []
    page = os.sysconf("SC_PAGE_SIZE")
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            statm = (d / "statm").read_text().split()
            comm = (d / "comm").read_text().strip()
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        procs.append(
            {"pid": int(d.name), "comm": comm, "rss_bytes": int(statm[1]) * page, "cmdline": cmd[:160]}
        )
    return sorted(procs, key=lambda p: -int(p["rss_bytes"]))[:top]


def host_report(
    paths: list[Path] | None = None, *, write_paths: list[Path] | None = None, top: int = 5
) -> dict[str, Any]:
    """Everything this host says about itself (no exceptions: unreadable parts are left out)."""
    load1, load5, load15 = os.getloadavg()
    mem = _meminfo()
    r1, w1 = _diskstats()
    time.sleep(0.5)
    r2, w2 = _diskstats()
    disks: list[dict[str, Any]] = []
    for p in paths or []:
        target = p if p.exists() else p.parent
        try:
            usage = shutil.disk_usage(target)
        except OSError as exc:
            disks.append({"path": str(p), "error": exc.strerror or str(exc)})
            continue
        disks.append(
            {"path": str(p), "free_bytes": usage.free, "used_share": round(usage.used / usage.total, 4)}
        )
    perms = []
    for p in paths or []:
        perms.append(
            {
                "path": str(p),
                "exists": p.exists(),
                "readable": os.access(p, os.R_OK),
                "writable": os.access(p, os.W_OK) if p in (write_paths or []) else None,
            }
        )
    return {
        "cpus": os.cpu_count(),
        "load": [round(load1, 2), round(load5, 2), round(load15, 2)],
        "memory_total_bytes": mem.get("MemTotal"),
        "memory_available_bytes": mem.get("MemAvailable"),
        "disk_io_sectors_per_s": {"read": (r2 - r1) * 2, "write": (w2 - w1) * 2},
        "disks": disks,
        "permissions": perms,
        "top_processes": _processes(top),
    }


def problems(
    report: dict[str, Any], *, gpu_pids: set[int] | None = None, expected: set[str] | None = None
) -> list[str]:
    """What in the report needs a look: CPU saturated, memory short, a disk nearly full, a path the
    service cannot use, and GPU processes that are not the service's."""
    out = []
    cpus = report.get("cpus") or 1
    if report["load"][0] > 2 * cpus:
        out.append(f"CPU load {report['load'][0]} on {cpus} CPUs")
    total, avail = report.get("memory_total_bytes"), report.get("memory_available_bytes")
    if total and avail is not None and avail / total < 0.1:
        out.append(f"memory available {avail / total:.0%}")
    for d in report["disks"]:
        if "error" in d:
            out.append(f"disk of {d['path']}: {d['error']}")
        elif d["used_share"] > 0.9:
            out.append(f"disk of {d['path']} {d['used_share']:.0%} full")
    for p in report["permissions"]:
        if not p["exists"]:
            out.append(f"{p['path']} does not exist")
        elif not p["readable"]:
            out.append(f"{p['path']} is not readable")
        elif p["writable"] is False:
            out.append(f"{p['path']} is not writable")
    if gpu_pids and expected is not None:
        names = {pr["pid"]: pr["comm"] for pr in report["top_processes"]}
        foreign = sorted(pid for pid in gpu_pids if names.get(pid) not in expected)
        if foreign:
            out.append(f"GPU processes not known to the service: {foreign}")
    return out
