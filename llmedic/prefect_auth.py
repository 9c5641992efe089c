"""The Prefect API's basic authentication for one llmedic installation.

Prefect's server refuses every API request (the UI's included; ``/api/health`` and ``/api/ready``
excepted) that does not carry ``Authorization: Basic base64(AUTH)`` when it is started with
``PREFECT_SERVER_API_AUTH_STRING=AUTH``; every client sends it when ``PREFECT_API_AUTH_STRING=AUTH``.
``llmedic up`` sets both from one string: the operator's (either variable), else
``<home>/prefect-api.auth``, which it generates (mode 0600) whenever the server listens on anything
but loopback. The ``llmedic`` command reads that file too, so ``llmedic approve`` works unchanged.

No Prefect import here: the CLI calls :func:`adopt_api_auth` before Prefect reads its settings.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path

from llmedic.errors import ConfigError

__all__ = [
    "AUTH_FILE",
    "CLIENT_VAR",
    "SERVER_VAR",
    "adopt_api_auth",
    "auth_file",
    "configured_auth_string",
    "ensure_auth_file",
    "is_loopback",
    "use_api_auth",
]

AUTH_FILE = "prefect-api.auth"
SERVER_VAR = "PREFECT_SERVER_API_AUTH_STRING"
CLIENT_VAR = "PREFECT_API_AUTH_STRING"


def auth_file(home: Path) -> Path:
    """Where an installation keeps its generated auth string."""
    return home / AUTH_FILE


def is_loopback(host: str) -> bool:
    """Does ``host`` name only this machine (``localhost``, ``127.0.0.0/8``, ``::1``)?"""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def _read(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read the Prefect API auth string in {path} ({exc.strerror})") from None
    return text or None


def ensure_auth_file(home: Path) -> Path:
    """Create ``<home>/prefect-api.auth`` (``llmedic:<random>``, mode 0600) unless it exists."""
    path = auth_file(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL with the mode at creation: the secret is never readable by others, not even briefly.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(f"llmedic:{secrets.token_urlsafe(32)}\n")
    return path


def configured_auth_string(home: Path, environ: Mapping[str, str] | None = None) -> str | None:
    """The auth string the operator set (either variable), else the one in the home's file."""
    env = os.environ if environ is None else environ
    client, server = env.get(CLIENT_VAR) or None, env.get(SERVER_VAR) or None
    if client and server and client != server:
        raise ConfigError(
            f"{CLIENT_VAR} and {SERVER_VAR} are set to different values",
            hint="set one of them (llmedic gives the server and every client the same string)",
        )
    return client or server or _read(auth_file(home))


def adopt_api_auth(home: Path) -> bool:
    """Make this process's Prefect clients send the installation's auth string when the environment
    sets none; returns whether one is now set."""
    if os.environ.get(CLIENT_VAR):
        return True
    found = configured_auth_string(home)
    if found is None:
        return False
    use_api_auth(found)
    return True


def use_api_auth(auth_string: str) -> None:
    """Every Prefect client of this process, in every thread, sends ``auth_string`` from now on."""
    os.environ[CLIENT_VAR] = auth_string
    if "prefect.context" in sys.modules:
        # Prefect read its settings when it was imported: read them again.
        from prefect.context import refresh_global_settings_context

        refresh_global_settings_context()
