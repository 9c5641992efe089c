"""A service's Python environment: describe it (with its own interpreter), build a throw-away one
from the lock and import-test it, and re-pin the live one to the lock.

Every command line is built from ``llmedic.yaml`` (interpreter, lock file, wheelhouse, module
names), never from an alert; subprocess failures are translated into :class:`RemoteCommandError`
here.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from llmedic.errors import RemoteCommandError

__all__ = ["LockEnv", "install_pins", "probe_env", "try_lock_env"]


def _probe_script() -> Path:
    return Path(str(resources.files("llmedic.probes").joinpath("envprobe.py")))


def _run(cmd: list[str], timeout: float, what: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise RemoteCommandError(f"{what} timed out after {timeout:g}s") from None
    except OSError as exc:
        raise RemoteCommandError(f"{what}: cannot run {cmd[0]}: {exc.strerror or exc}") from None


def probe_env(
    python: Path, imports: list[str], *, torch: bool = False, timeout: float = 120
) -> dict[str, Any]:
    """What ``python``'s environment holds (distributions, requirements, imports, torch's CUDA)."""
    cmd = [str(python), str(_probe_script())] + [a for m in imports for a in ("--import", m)]
    if torch:
        cmd.append("--torch")
    res = _run(cmd, timeout, f"probing {python}")
    if res.returncode != 0:
        raise RemoteCommandError(
            f"probing {python} failed (exit {res.returncode}): {res.stderr.strip()[-300:]}"
        )
    try:
        return dict(json.loads(res.stdout))
    except ValueError:
        raise RemoteCommandError(f"probing {python} printed something that is not JSON") from None


def install_pins(
    python: Path, requirements: Path, wheelhouse: Path | None, *, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """``python -m pip install --no-deps -r requirements`` (offline from ``wheelhouse`` when given):
    exactly the pinned versions, nothing resolved beyond them."""
    cmd = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps"]
    if wheelhouse is not None:
        cmd += ["--no-index", "--find-links", str(wheelhouse)]
    cmd += ["-r", str(requirements)]
    res = _run(cmd, timeout, f"installing {requirements} into {python}")
    if res.returncode != 0:
        raise RemoteCommandError(
            f"pip could not install {requirements} into {python}: {res.stderr.strip()[-400:]}",
            hint="check the lock and that the wheelhouse holds every pinned version",
        )
    return res


class LockEnv:
    """What a throw-away environment built from the lock showed."""

    def __init__(self, built: bool, detail: str, probe: dict[str, Any] | None) -> None:
        self.built = built
        self.detail = detail
        self.probe = probe

    @property
    def imports_ok(self) -> bool:
        """Every module imported in it."""
        return bool(self.probe) and all(v == "ok" for v in (self.probe or {}).get("imports", {}).values())


def try_lock_env(
    python: Path, lock: Path, wheelhouse: Path | None, imports: list[str], *, timeout: float = 600
) -> LockEnv:
    """Build a venv with ``python`` in a scratch directory, install the lock, import-test it; the
    directory is removed afterwards. The live environment is not touched."""
    with tempfile.TemporaryDirectory(prefix="llmedic-lockenv-") as tmp:
        venv = Path(tmp) / "venv"
        res = _run([str(python), "-m", "venv", str(venv)], timeout, "creating a scratch venv")
        if res.returncode != 0:
            return LockEnv(False, f"venv creation failed: {res.stderr.strip()[-300:]}", None)
        vpy = venv / "bin" / "python"
        try:
            install_pins(vpy, lock, wheelhouse, timeout=timeout)
        except RemoteCommandError as exc:
            return LockEnv(False, exc.message, None)
        probe = probe_env(vpy, imports, timeout=timeout)
        return LockEnv(True, f"built from {lock.name} in a scratch venv", probe)
