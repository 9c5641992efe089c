"""Dependency health of a Python environment: what ``pip check`` reports, computed from the
environment's own metadata; installed versions against the lock file; torch's CUDA against the
driver's; import failures in a service log. Pure (the environment is described by
``llmedic/probes/envprobe.py``'s JSON)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

__all__ = [
    "LockDiff",
    "broken_requirements",
    "cuda_mismatch",
    "diff_lock",
    "import_failures",
    "parse_lock",
]

_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*([^\s;#]+)")


def parse_lock(text: str, where: str = "lock file") -> dict[str, str]:
    """``name==version`` pins of a requirements-style lock (comments, blank lines, ``--`` options
    and hashes ignored). Raises ``ValueError`` naming the line for anything that is not a pin."""
    pins: dict[str, str] = {}
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip().rstrip("\\").strip()
        if not line or line.startswith("-"):
            continue
        m = _PIN.match(line)
        if m is None:
            raise ValueError(f"{where}:{n}: {raw.strip()!r} is not an exact pin (name==version)")
        pins[str(canonicalize_name(m.group(1)))] = m.group(3)
    if not pins:
        raise ValueError(f"{where}: no pins found")
    return pins


def broken_requirements(dists: dict[str, Any], python: str) -> list[str]:
    """What ``pip check`` would say, from the distributions' own ``Requires-Dist`` (markers
    evaluated for ``python``; extras not requested are skipped)."""
    env: dict[str, str] = {
        **{k: str(v) for k, v in default_environment().items()},
        "python_version": ".".join(python.split(".")[:2]),
        "python_full_version": python,
    }
    installed: dict[str, Any] = {str(canonicalize_name(k)): v for k, v in dists.items()}
    out: list[str] = []
    for key in sorted(installed):
        d = installed[key]
        for spec in d.get("requires") or []:
            try:
                req = Requirement(spec)
            except InvalidRequirement:
                continue
            if req.marker is not None and not req.marker.evaluate({**env, "extra": ""}):
                continue
            dep = installed.get(str(canonicalize_name(req.name)))
            if dep is None:
                out.append(f"{d['name']} {d['version']} requires {req.name}, which is not installed.")
                continue
            try:
                ok = req.specifier.contains(Version(dep["version"]), prereleases=True)
            except InvalidVersion:
                ok = True
            if not ok:
                out.append(
                    f"{d['name']} {d['version']} has requirement {req.name}{req.specifier}, "
                    f"but you have {dep['name']} {dep['version']}."
                )
    return out


@dataclass
class LockDiff:
    """Installed against the lock."""

    missing: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, str, str]] = field(default_factory=list)
    """(name, locked, installed)."""

    @property
    def clean(self) -> bool:
        """The environment has exactly the locked versions of everything locked."""
        return not self.missing and not self.mismatched

    def lines(self) -> list[str]:
        """Human-readable differences."""
        return [f"{n}: locked {want}, installed {have}" for n, want, have in self.mismatched] + [
            f"{n}: locked, not installed" for n in self.missing
        ]


def diff_lock(dists: dict[str, Any], lock: dict[str, str]) -> LockDiff:
    """Compare installed versions with the lock (packages the lock does not name are not judged)."""
    installed: dict[str, str] = {str(canonicalize_name(k)): v["version"] for k, v in dists.items()}
    out = LockDiff()
    for name, want in sorted(lock.items()):
        have = installed.get(name)
        if have is None:
            out.missing.append(name)
        elif Version(have) != Version(want):
            out.mismatched.append((name, want, have))
    return out


def cuda_mismatch(torch_cuda: str | None, driver_cuda: str | None) -> str | None:
    """A torch built for a newer CUDA than the driver supports cannot use the GPU."""
    if not torch_cuda or not driver_cuda or torch_cuda.startswith("unavailable"):
        return None
    try:
        built, driver = Version(torch_cuda), Version(driver_cuda)
    except InvalidVersion:
        return None
    if (built.major, built.minor) > (driver.major, driver.minor):
        return f"torch was built for CUDA {torch_cuda} but the driver supports CUDA {driver_cuda}: upgrade the driver or install a torch build for {driver.major}.{driver.minor}"
    return None


_IMPORT = re.compile(
    r"(ModuleNotFoundError: No module named '[^']+'|ImportError: cannot import name '[^']+' from '[^']+'"
    r"|ImportError: [^\n]{0,200})"
)


def import_failures(log: str) -> dict[str, int]:
    """Distinct import errors in a service log, with how often each appears."""
    out: dict[str, int] = {}
    for m in _IMPORT.finditer(log):
        key = re.sub(r" \(.*\)$", "", m.group(1).strip())
        out[key] = out.get(key, 0) + 1
    return out
