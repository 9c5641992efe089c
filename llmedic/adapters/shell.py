"""Running commands: one interface, allowlisted templates, every parameter validated and quoted.

Commands only come from the ``commands:`` catalogue of ``llmedic.yaml``. A parameter value must match
its declared pattern (and choices) and is then shell-quoted, so nothing from an alert can change the
shape of a command. Two implementations share the interface: local (``/bin/sh -c``) and SSH (paramiko).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import shlex
import socket
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import paramiko

from llmedic.config import CommandTemplate, HostConfig
from llmedic.errors import ConfigError, RemoteCommandError

__all__ = [
    "CommandResult",
    "LocalShell",
    "Shell",
    "SshShell",
    "fingerprint",
    "make_shell",
    "render_command",
    "run_template",
]


@dataclass(frozen=True)
class CommandResult:
    """What a command did."""

    command: str
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        """Exit status 0."""
        return self.returncode == 0


class Shell(Protocol):
    """Runs an already-rendered command string on one host."""

    host: str

    def run(self, command: str, *, timeout: float) -> CommandResult:
        """Run ``command``; raise :class:`RemoteCommandError` if it cannot run or times out."""
        ...


def render_command(name: str, template: CommandTemplate, params: Mapping[str, object]) -> str:
    """Fill a template: validate each value against its declaration, then quote it."""
    missing = sorted(set(template.params) - set(params))
    extra = sorted(set(params) - set(template.params))
    if missing or extra:
        raise ConfigError(
            f"command {name!r}: parameters do not match the template (missing {missing}, unexpected {extra})",
            hint="pass exactly the parameters declared under the template's params:",
        )
    quoted: dict[str, str] = {}
    for key, spec in template.params.items():
        value = str(params[key])
        if spec.choices is not None and value not in spec.choices:
            raise RemoteCommandError(
                f"command {name!r}: {key}={value!r} is not one of {spec.choices}; refused"
            )
        if not spec.allow_parent_dirs and re.search(r"(^|/)\.\.(/|$)", value):
            raise RemoteCommandError(
                f"command {name!r}: {key}={value!r} climbs out of its directory ('..'); refused",
                hint="set allow_parent_dirs: true on the parameter if a relative path upwards is intended",
            )
        if not re.fullmatch(spec.pattern, value):
            raise RemoteCommandError(
                f"command {name!r}: {key}={value!r} does not match {spec.pattern!r}; refused",
                hint="the value came from an alert or config and is not allowed in a command",
            )
        quoted[key] = shlex.quote(value)
    return template.template.format(**quoted)


class LocalShell:
    """Runs commands on this machine with ``/bin/sh -c``."""

    host = "local"

    def run(self, command: str, *, timeout: float) -> CommandResult:
        """Run ``command`` locally."""
        start = time.perf_counter()
        try:
            proc = subprocess.run(
                ["/bin/sh", "-c", command],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise RemoteCommandError(f"local: {command!r} timed out after {timeout:g}s") from exc
        except OSError as exc:
            raise RemoteCommandError(f"local: cannot run {command!r}: {exc.strerror}") from exc
        return CommandResult(command, proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - start)


def run_template(
    shell: Shell,
    commands: Mapping[str, CommandTemplate],
    name: str,
    params: Mapping[str, object],
    *,
    check: bool = True,
) -> CommandResult:
    """Render the allowlisted template ``name`` and run it; non-zero exit raises when ``check``."""
    if name not in commands:
        raise ConfigError(
            f"command {name!r} is not in the allowlist (commands: in llmedic.yaml)",
            hint=f"known commands: {sorted(commands)}",
        )
    template = commands[name]
    result = shell.run(render_command(name, template, params), timeout=template.timeout_seconds)
    if check and not result.ok:
        raise RemoteCommandError(
            f"{shell.host}: command {name!r} exited {result.returncode}: {result.stderr.strip()[:300]}"
        )
    return result


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's ``SHA256:…`` fingerprint of a public key (what ``ssh-keygen -lf`` prints)."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class _PinnedKey(paramiko.MissingHostKeyPolicy):
    """Accept a host key missing from known_hosts only when it matches the pinned fingerprint."""

    def __init__(self, pinned: str | None) -> None:
        self.pinned = pinned

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        seen = fingerprint(key)
        if self.pinned is not None and hmac.compare_digest(seen, self.pinned):
            return
        raise RemoteCommandError(
            f"{hostname}: unknown host key {key.get_name()} {seen}; refused",
            hint="pin it: add the host to known_hosts (ssh-keyscan, checked out of band) or set "
            "host_key_fingerprint under hosts: in llmedic.yaml",
        )


class SshShell:
    """Runs commands on a remote host over SSH (paramiko): key authentication only, the host key
    must be in ``known_hosts`` or match the pinned fingerprint, connect and command timeouts, and
    every paramiko/socket error translated into :class:`RemoteCommandError` here."""

    def __init__(self, cfg: HostConfig, *, connect_timeout: float = 10.0) -> None:
        if cfg.kind != "ssh" or not cfg.address:
            raise ConfigError(f"host {cfg.name!r} is not an ssh host with an address")
        self.host = cfg.name
        self.cfg = cfg
        self.connect_timeout = connect_timeout
        self._client: paramiko.SSHClient | None = None
        self._lock = threading.Lock()

    def _where(self) -> str:
        return f"{self.cfg.user + '@' if self.cfg.user else ''}{self.cfg.address}:{self.cfg.port}"

    def _connect(self) -> paramiko.SSHClient:
        transport = self._client.get_transport() if self._client is not None else None
        if self._client is not None and transport is not None and transport.is_active():
            return self._client
        client = paramiko.SSHClient()
        try:
            if self.cfg.known_hosts is not None:
                client.load_host_keys(str(self.cfg.known_hosts))
            client.set_missing_host_key_policy(_PinnedKey(self.cfg.host_key_fingerprint))
            client.connect(
                hostname=str(self.cfg.address),
                port=self.cfg.port,
                username=self.cfg.user,
                key_filename=str(self.cfg.key_file) if self.cfg.key_file else None,
                timeout=self.connect_timeout,
                banner_timeout=self.connect_timeout,
                auth_timeout=self.connect_timeout,
                allow_agent=False,
                look_for_keys=False,
            )
        except RemoteCommandError:
            client.close()
            raise
        except Exception as exc:  # the one seam for paramiko and socket errors
            client.close()
            raise _translate(exc, f"{self.host} ({self._where()})") from None
        self._client = client
        return client

    def run(self, command: str, *, timeout: float) -> CommandResult:
        """Run ``command`` remotely; stdout/stderr are read as they come, so a chatty command never
        blocks on a full window. Raises on timeout and on a connection dropped mid-command."""
        where = f"{self.host} ({self._where()})"
        with self._lock:
            start = time.perf_counter()
            client = self._connect()
            try:
                transport = client.get_transport()
                if transport is None:
                    raise RemoteCommandError(f"{where}: no SSH transport")
                chan = transport.open_session(timeout=self.connect_timeout)
                chan.settimeout(0.2)
                chan.exec_command(command)
                out, err = bytearray(), bytearray()
                deadline = time.monotonic() + timeout
                while True:
                    got = False
                    while chan.recv_ready():
                        out += chan.recv(65536)
                        got = True
                    while chan.recv_stderr_ready():
                        err += chan.recv_stderr(65536)
                        got = True
                    if chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
                        break
                    if chan.closed or not transport.is_active():
                        raise RemoteCommandError(
                            f"{where}: the connection dropped while {command[:80]!r} ran (no exit status)",
                            hint="the command may or may not have taken effect; check the host before retrying",
                        )
                    if time.monotonic() > deadline:
                        chan.close()
                        raise RemoteCommandError(f"{where}: {command[:80]!r} timed out after {timeout:g}s")
                    if not got:
                        time.sleep(0.02)
                code = chan.recv_exit_status()
                chan.close()
                if code == -1:  # paramiko's "the server sent no exit status": the session died
                    raise RemoteCommandError(
                        f"{where}: the connection dropped while {command[:80]!r} ran (no exit status)",
                        hint="the command may or may not have taken effect; check the host before retrying",
                    )
            except RemoteCommandError:
                self.close()
                raise
            except Exception as exc:  # paramiko/socket errors mid-command
                self.close()
                raise _translate(exc, where) from None
            return CommandResult(
                command,
                code,
                out.decode("utf-8", "replace"),
                err.decode("utf-8", "replace"),
                time.perf_counter() - start,
            )

    def close(self) -> None:
        """Drop the connection (the next command reconnects)."""
        if self._client is not None:
            self._client.close()
            self._client = None


def _translate(exc: Exception, where: str) -> RemoteCommandError:
    """paramiko and socket errors → the project's error, with what to do about each."""
    if isinstance(exc, paramiko.BadHostKeyException):
        return RemoteCommandError(
            f"{where}: the host key changed ({exc.key.get_name()} {fingerprint(exc.key)}); refused",
            hint="a changed host key can mean a rebuilt host or an attack: verify it out of band, then update known_hosts",
        )
    if isinstance(exc, paramiko.AuthenticationException):
        return RemoteCommandError(
            f"{where}: key authentication refused",
            hint="check user and key_file, and the host's authorized_keys",
        )
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return RemoteCommandError(f"{where}: timed out connecting", hint="check address, port and firewalls")
    if isinstance(exc, paramiko.SSHException):
        return RemoteCommandError(f"{where}: SSH error: {exc}")
    if isinstance(exc, OSError):
        return RemoteCommandError(
            f"{where}: unreachable: {exc.strerror or exc}", hint="check address and port"
        )
    return RemoteCommandError(f"{where}: {type(exc).__name__}: {exc}")


def make_shell(cfg: HostConfig) -> Shell:
    """The shell for a host of ``llmedic.yaml``."""
    return SshShell(cfg) if cfg.kind == "ssh" else LocalShell()
