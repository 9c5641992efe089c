"""Acting on a service: drain, undrain, restart, concurrency limit, scale out/in.

Two implementations behind :class:`ServiceControl`: the sandbox's admin API (``kind: sandbox``) and
allowlisted command templates run through the shell adapter (``kind: commands``), which is how a
real vLLM/TGI fleet is driven (``systemctl restart vllm@{port}``, a load-balancer CLI, ...).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from llmedic.adapters.endpoint import Endpoint
from llmedic.adapters.http import translate_http_errors
from llmedic.adapters.shell import CommandResult, Shell, make_shell, run_template
from llmedic.config import EnvironmentFile, InstanceConfig, ServiceConfig
from llmedic.errors import ConfigError, ControlError

__all__ = [
    "CommandControl",
    "InstanceState",
    "SandboxControl",
    "ServiceControl",
    "make_control",
    "read_prompt_log",
]


@dataclass(frozen=True)
class InstanceState:
    """What the control plane knows about an instance: only what a real fleet's control plane
    could tell too (the sandbox's admin API also lists its injected faults; they are never read,
    so they cannot reach evidence, decisions or archives)."""

    name: str
    healthy: bool
    drained: bool = False
    concurrency_limit: int | None = None
    model_version: str | None = None
    restarts: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return dict(self.__dict__)


class ServiceControl(Protocol):
    """Actions on the instances of one service."""

    def state(self, instance: InstanceConfig) -> InstanceState:
        """Current state of an instance."""
        ...

    def drain(self, instance: InstanceConfig) -> None:
        """Take the instance out of rotation."""
        ...

    def undrain(self, instance: InstanceConfig) -> None:
        """Put the instance back into rotation."""
        ...

    def restart(self, instance: InstanceConfig, *, ready_timeout: float) -> None:
        """Restart and wait until ``/health`` answers 200."""
        ...

    def set_concurrency(self, instance: InstanceConfig, limit: int) -> None:
        """Set the concurrent-request limit."""
        ...

    def set_model(self, instance: InstanceConfig, version: str) -> None:
        """Serve another model version (e.g. a quantised variant)."""
        ...

    def recent_prompts(self, instance: InstanceConfig, limit: int) -> list[str] | None:
        """The latest user prompts the instance served (None: no prompt log to read)."""
        ...

    def heap_profile(self, instance: InstanceConfig) -> dict[str, Any]:
        """Where the instance's process holds memory (tracemalloc top sites, or a ``py-spy dump``);
        raises :class:`ControlError` saying why when the target does not allow it."""
        ...

    def rss_bytes(self, instance: InstanceConfig) -> float | None:
        """Resident memory of the serving process read on its host (``ps``/``/proc``), or None."""
        ...


def wait_healthy(instance: InstanceConfig, timeout: float) -> None:
    """Poll ``/health`` until 200 or ``timeout``."""
    deadline = time.monotonic() + timeout
    with Endpoint(instance.base_url, timeout=5) as ep:
        while time.monotonic() < deadline:
            if ep.health():
                return
            time.sleep(0.25)
    raise ControlError(f"{instance.name} did not become healthy within {timeout:g}s after restart")


class SandboxControl:
    """The sandbox's admin API (``/admin/*``)."""

    def __init__(self, token: str | None = None, transport: httpx.BaseTransport | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(timeout=10, headers=headers, transport=transport)

    def _post(self, instance: InstanceConfig, path: str, body: dict[str, Any] | None = None) -> Any:
        with translate_http_errors(ControlError, f"{instance.name} POST {path}"):
            resp = self._client.post(f"{instance.base_url}{path}", json=body or {})
            resp.raise_for_status()
        return resp.json()

    def state(self, instance: InstanceConfig) -> InstanceState:
        """Read ``/admin/state``; an unreachable instance is reported unhealthy, not raised."""
        try:
            resp = self._client.get(f"{instance.base_url}/admin/state")
            resp.raise_for_status()
            s = resp.json()
        except (httpx.HTTPError, ValueError):
            return InstanceState(instance.name, healthy=False)
        return InstanceState(
            instance.name,
            healthy=bool(s.get("healthy")),
            drained=bool(s.get("drained")),
            concurrency_limit=s.get("concurrency_limit"),
            model_version=s.get("model_version"),
            restarts=s.get("restarts"),
        )

    def drain(self, instance: InstanceConfig) -> None:
        """POST /admin/drain."""
        self._post(instance, "/admin/drain")

    def undrain(self, instance: InstanceConfig) -> None:
        """POST /admin/undrain."""
        self._post(instance, "/admin/undrain")

    def restart(self, instance: InstanceConfig, *, ready_timeout: float) -> None:
        """POST /admin/restart, then wait for /health."""
        self._post(instance, "/admin/restart")
        wait_healthy(instance, ready_timeout)

    def set_concurrency(self, instance: InstanceConfig, limit: int) -> None:
        """POST /admin/concurrency."""
        self._post(instance, "/admin/concurrency", {"limit": limit})

    def set_model(self, instance: InstanceConfig, version: str) -> None:
        """POST /admin/model."""
        self._post(instance, "/admin/model", {"version": version})

    def rss_bytes(self, instance: InstanceConfig) -> float | None:
        """The instance's resident memory as its admin API reports it."""
        try:
            resp = self._client.get(f"{instance.base_url}/admin/state")
            resp.raise_for_status()
            return float(resp.json()["rss_bytes"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return None

    def heap_profile(self, instance: InstanceConfig) -> dict[str, Any]:
        """GET /admin/heap: the top allocation sites (tracemalloc) of the sandbox process."""
        try:
            resp = self._client.get(f"{instance.base_url}/admin/heap")
        except httpx.HTTPError as exc:
            raise ControlError(f"{instance.name}: heap profile unavailable ({type(exc).__name__})") from None
        if resp.status_code != 200:
            try:
                why = str(resp.json().get("error"))
            except ValueError:
                why = f"HTTP {resp.status_code}"
            raise ControlError(f"{instance.name}: heap profile unavailable: {why}")
        return dict(resp.json())

    def recent_prompts(self, instance: InstanceConfig, limit: int) -> list[str] | None:
        """GET /admin/prompts (the sandbox keeps its last 2,000 user prompts)."""
        with translate_http_errors(ControlError, f"{instance.name} GET /admin/prompts"):
            resp = self._client.get(f"{instance.base_url}/admin/prompts", params={"limit": limit})
            resp.raise_for_status()
        try:
            return [str(p["prompt"]) for p in resp.json()["prompts"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise ControlError(f"{instance.name}: /admin/prompts answered nonsense ({exc})") from None


class CommandControl:
    """Drives a real fleet with the allowlisted command templates named in the service's control."""

    def __init__(self, service: ServiceConfig, env: EnvironmentFile, shells: dict[str, Shell]) -> None:
        self.service = service
        self.env = env
        self.shells = shells

    def _run(
        self, action: str, instance: InstanceConfig, *, check: bool = True, **extra: object
    ) -> CommandResult:
        name = self.service.control.commands.get(action)  # type: ignore[call-overload]
        if name is None:
            raise ConfigError(
                f"service {self.service.name!r} has no command for {action!r}",
                hint=f"add `{action}: <template>` under the service's control.commands",
            )
        shell = self.shells.get(instance.host)
        if shell is None:
            raise ConfigError(f"no shell for host {instance.host!r}")
        template = self.env.commands[name]
        values: dict[str, object] = {"instance": instance.name, "host": instance.host, **extra}
        params = {k: v for k, v in values.items() if k in template.params}
        return run_template(shell, self.env.commands, name, params, check=check)

    def state(self, instance: InstanceConfig) -> InstanceState:
        """Only health is known without an admin API."""
        with Endpoint(instance.base_url, timeout=5) as ep:
            return InstanceState(instance.name, healthy=ep.health())

    def drain(self, instance: InstanceConfig) -> None:
        """Run the service's ``drain`` command."""
        self._run("drain", instance)

    def undrain(self, instance: InstanceConfig) -> None:
        """Run the service's ``undrain`` command."""
        self._run("undrain", instance)

    def restart(self, instance: InstanceConfig, *, ready_timeout: float) -> None:
        """Run the ``restart`` command and wait for /health."""
        self._run("restart", instance)
        wait_healthy(instance, ready_timeout)

    def set_concurrency(self, instance: InstanceConfig, limit: int) -> None:
        """Run the ``set_concurrency`` command with ``{limit}``."""
        self._run("set_concurrency", instance, limit=limit)

    def set_model(self, instance: InstanceConfig, version: str) -> None:
        """Run the ``switch_model`` command with ``{version}``."""
        self._run("switch_model", instance, version=version)

    def rss_bytes(self, instance: InstanceConfig) -> float | None:
        """Run the service's ``rss`` command; it prints the resident set in KiB, as ``ps -o rss=``
        and ``VmRSS`` in ``/proc/PID/status`` do. A failed run or an unreadable answer is None."""
        res = self._run("rss", instance, check=False)
        try:
            return float(res.stdout.split()[0]) * 1024 if res.ok else None
        except (IndexError, ValueError):
            return None

    def heap_profile(self, instance: InstanceConfig) -> dict[str, Any]:
        """Run the service's ``profile`` command (e.g. ``py-spy dump --pid ...``) and keep its output."""
        res = self._run("profile", instance)
        return {
            "kind": "command",
            "command": self.service.control.commands["profile"],
            "output": res.stdout[-8000:],
        }

    def recent_prompts(self, instance: InstanceConfig, limit: int) -> list[str] | None:
        """The tail of the service's ``prompt_log`` (JSONL with a ``prompt`` field), if it has one."""
        return read_prompt_log(self.service.prompt_log, limit) if self.service.prompt_log else None


def read_prompt_log(path: Path, limit: int) -> list[str]:
    """The last ``limit`` prompts of a JSONL prompt log (lines that are not objects with a string
    ``prompt`` are skipped: a gateway log may hold other events)."""
    try:
        lines = path.read_text("utf-8", errors="replace").splitlines()[-limit * 2 :]
    except OSError as exc:
        raise ControlError(f"prompt log {path}: {exc.strerror or exc}") from None
    out: list[str] = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("prompt"), str):
            out.append(row["prompt"])
    return out[-limit:]


def make_control(service: ServiceConfig, env: EnvironmentFile) -> ServiceControl:
    """The control adapter a service's configuration asks for."""
    if service.control.kind == "sandbox":
        token = service.control.admin_token
        return SandboxControl(token.get_secret_value() if token else None)
    shells: dict[str, Shell] = {}
    for host in env.hosts:
        shells[host.name] = make_shell(host)
    return CommandControl(service, env, shells)
