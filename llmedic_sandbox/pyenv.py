"""The sandbox's service environment: a throw-away Python virtual environment with a lock file and
a wheelhouse, built offline (hand-made wheels, a real ``python -m venv``, real ``pip install
--no-index``), that a bad deploy can break — the dependency-conflict fault of the tests and game days.

``vertical-core 1.0`` needs ``vertical-utils>=2,<3`` and imports its ``normalize``; ``vertical-utils
3.1`` renamed it to ``normalise``. The lock pins 2.4. Installing 3.1 is the bad deploy."""

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
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: llmedic-sandbox\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{p},,\n" for p in files) + f"{info}/RECORD,,\n"
    path = wheelhouse / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for p, text in files.items():
            zf.writestr(p, text)
    return path


__all__ = ["BAD_DEPLOY", "BrokenEnv", "make_wheel", "service_env"]

BAD_DEPLOY = "vertical-utils==3.1"
"""The pin whose installation breaks the environment."""


@dataclass(frozen=True)
class BrokenEnv:
    """A service environment and everything needed to break and repair it."""

    python: Path
    lock: Path
    wheelhouse: Path

    def install(self, *pins: str) -> None:
        """``pip install --no-deps --no-index`` from the wheelhouse (``-r LOCK`` restores the lock)."""
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
    """Build the environment under ``base``, healthy (installed from the lock)."""
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
