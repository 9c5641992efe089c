"""Throw-away Python environments with a dependency conflict, built offline: hand-made wheels in a
wheelhouse, a real ``python -m venv``, real ``pip install --no-index``."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path


def make_wheel(wheelhouse: Path, name: str, version: str, code: str, requires: tuple[str, ...] = ()) -> Path:
    """A pure-Python wheel for module ``name`` (``<name>/__init__.py`` holding ``code``)."""
    wheelhouse.mkdir(parents=True, exist_ok=True)
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires
    )
    files = {
        f"{dist}/__init__.py": code,
        f"{info}/METADATA": meta,
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: llmedic-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{p},,\n" for p in files) + f"{info}/RECORD,,\n"
    path = wheelhouse / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for p, text in files.items():
            zf.writestr(p, text)
    return path


@dataclass(frozen=True)
class BrokenEnv:
    """A service environment and everything needed to break and repair it."""

    python: Path
    lock: Path
    wheelhouse: Path

    def install(self, *pins: str) -> None:
        subprocess.run(
            [
                str(self.python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "--no-index",
                "--find-links",
                str(self.wheelhouse),
                *pins,
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )


def service_env(base: Path) -> BrokenEnv:
    """``vertical-core 1.0`` needs ``vertical-utils>=2,<3`` and imports its ``normalize``;
    ``vertical-utils 3.1`` renamed it. The lock pins 2.4; the env starts healthy (from the lock)."""
    wh = base / "wheelhouse"
    make_wheel(wh, "vertical-utils", "2.4", "def normalize(x):\n    return x.strip().lower()\n")
    make_wheel(wh, "vertical-utils", "3.1", "def normalise(x):\n    return x.strip().lower()\n")
    make_wheel(
        wh,
        "vertical-core",
        "1.0",
        "from vertical_utils import normalize\n\ndef answer(q):\n    return normalize(q)\n",
        requires=("vertical-utils>=2,<3",),
    )
    lock = base / "requirements.lock"
    lock.write_text("# the service's lock\nvertical-core==1.0\nvertical-utils==2.4\n")
    venv = base / "service-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
    env = BrokenEnv(venv / "bin" / "python", lock, wh)
    env.install("-r", str(lock))
    return env
