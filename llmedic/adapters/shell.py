"""Running commands: one interface, allowlisted templates, every parameter validated and quoted.

Commands only come from the ``commands:`` catalogue of ``llmedic.yaml``. A parameter value must match
its declared pattern (and choices) and is then shell-quoted, so nothing from an alert can change the
shape of a command. This module has the local implementation; the SSH one shares the interface.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from llmedic.config import CommandTemplate
from llmedic.errors import ConfigError, RemoteCommandError

__all__ = ["CommandResult", "LocalShell", "Shell", "render_command", "run_template"]


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
