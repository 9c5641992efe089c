"""Everything llmedic asks of Prefect from outside a flow: a managed server, alert dispatch to
deployments, and run-state polling. Prefect and connection errors become
:class:`~llmedic.errors.OrchestrationError` here.

Deployments are started *by name* (``llmedic-latency/default``): ``llmedic`` never imports ``flows``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL
from prefect.settings.legacy import Setting

from llmedic.alerts import Alert
from llmedic.catalog import anomaly_info
from llmedic.errors import FlowRunNotFound, OrchestrationError
from llmedic.prefect_auth import CLIENT_VAR, SERVER_VAR

__all__ = [
    "Dispatched",
    "PrefectServer",
    "client_settings",
    "dispatch_alerts",
    "prefect_env",
    "read_run",
    "runner_children",
    "stop_runner",
    "wait_for_run",
]


def prefect_env(
    home: Path,
    api_url: str | None = None,
    *,
    poll_seconds: float | None = None,
    auth_string: str | None = None,
) -> dict[str, str]:
    """Environment for every process of one llmedic installation (server, runner, flow runs,
    receiver); ``auth_string`` is the Prefect API's basic authentication every client sends."""
    env = dict(os.environ)
    prefect_home = (home / "prefect").resolve()
    env.update(
        {
            "PREFECT_HOME": str(prefect_home),
            "PREFECT_LOCAL_STORAGE_PATH": str(prefect_home / "storage"),
            # No telemetry: the server's heartbeat is off, and clients do not even ask it.
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
            "LLMEDIC_HOME": str(home.resolve()),
        }
    )
    if api_url:
        env["PREFECT_API_URL"] = api_url
    if poll_seconds is not None:
        env["PREFECT_RUNNER_POLL_FREQUENCY"] = str(max(1, int(poll_seconds)))
    if auth_string:
        env[CLIENT_VAR] = auth_string
    return env


def client_settings(api_url: str, auth_string: str | None = None) -> dict[Setting, str | None]:
    """``temporary_settings`` updates for this process's Prefect clients: the API and its auth
    string. A context does not cross into new threads: enter it in the thread that calls."""
    updates: dict[Setting, str | None] = {PREFECT_API_URL: api_url}
    if auth_string:
        updates[PREFECT_API_AUTH_STRING] = auth_string
    return updates


@dataclass
class PrefectServer:
    """A Prefect API server (SQLite under ``<home>/prefect``) run as a child process.

    It requires ``auth_string`` (Prefect's basic authentication) from every API client when set,
    and nothing otherwise: an auth variable inherited from the environment is not passed on, so
    the server never demands a string its owner does not know.
    """

    home: Path
    host: str = "127.0.0.1"
    port: int = 4200
    log_path: Path | None = None
    database_url: str | None = None
    """SQLAlchemy URL of the server's database (``postgresql+asyncpg://…``); SQLite under ``home`` if unset."""
    auth_string: str | None = None
    """``user:password`` every API request must carry (HTTP basic); None: the API is open."""
    process: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        """The API base URL clients use."""
        return f"http://{self.host}:{self.port}/api"

    @property
    def ui_url(self) -> str:
        """The UI's URL."""
        return f"http://{self.host}:{self.port}"

    def environment(self) -> dict[str, str]:
        """The server process's environment (telemetry off; its own auth string or none)."""
        env = prefect_env(self.home)
        for var in (SERVER_VAR, CLIENT_VAR):
            env.pop(var, None)
        if self.auth_string:
            env[SERVER_VAR] = env[CLIENT_VAR] = self.auth_string
        return env

    def start(self, timeout: float = 90.0) -> None:
        """Start the server and wait until ``/api/health`` answers."""
        self.home.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path or self.home / "prefect-server.log", "ab")  # noqa: SIM115 - child keeps it
        cmd = [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            self.host,
            "--port",
            str(self.port),
        ]
        env = self.environment()
        # The UI asks the API at PREFECT_SERVER_API_HOST/PORT (4200 by default), not at the port
        # the server was started on: without these, the UI of a server on another port is blank.
        env.update(
            {
                "PREFECT_SERVER_API_HOST": self.host,
                "PREFECT_SERVER_API_PORT": str(self.port),
                "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
            }
        )
        if self.database_url:
            env["PREFECT_API_DATABASE_CONNECTION_URL"] = self.database_url
        self.process = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise OrchestrationError(
                    f"the Prefect server exited with status {self.process.returncode} while starting",
                    hint=f"see {log.name}; is port {self.port} already in use?",
                )
            if api_healthy(self.api_url):
                return
            time.sleep(0.5)
        self.stop()
        raise OrchestrationError(
            f"the Prefect server did not answer within {timeout:g}s", hint=f"see {log.name}"
        )

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL)."""
        if self.process is not None:
            stop_process(self.process, timeout)
            self.process = None


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """Terminate a child gracefully, kill it if it does not exit in time."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def runner_children(pid: int) -> list[int]:
    """PIDs of a process's direct children (Linux ``/proc``; empty elsewhere)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def stop_runner(proc: subprocess.Popen[bytes], *, settle: float = 10.0, timeout: float = 30.0) -> None:
    """Stop a ``serve()`` runner without losing runs that are being suspended.

    A flow that suspends at an approval gate exits its process a moment later. A SIGTERM that
    reaches the runner inside that moment makes Prefect cancel the run ("Runner is shutting
    down"), so first wait (up to ``settle`` seconds) for flow processes to finish exiting when
    the runner has no other work.
    """
    deadline = time.monotonic() + settle
    while runner_children(proc.pid) and time.monotonic() < deadline and _only_suspending(proc.pid):
        time.sleep(0.2)
    stop_process(proc, timeout)


def _only_suspending(pid: int) -> bool:
    # A child whose run is still Running must be cancelled by the shutdown (that is Prefect's
    # contract); we only wait while every child is on its way out after a suspension.
    try:
        with get_client(sync_client=True) as client:
            from prefect.client.schemas.filters import (
                FlowRunFilter,
                FlowRunFilterState,
                FlowRunFilterStateType,
            )
            from prefect.client.schemas.objects import StateType

            running = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING]))
                )
            )
    except Exception:
        return False
    return not running


def api_healthy(api_url: str) -> bool:
    """Does the Prefect API answer ``/health``?"""
    try:
        return httpx.get(f"{api_url.rstrip('/')}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass(frozen=True)
class Dispatched:
    """What happened to one alert."""

    alert: Alert
    status: str
    """``started``, ``duplicate`` (same idempotency key), ``resolved`` (no run), ``unrouted``."""
    flow_run_id: str | None = None
    deployment: str | None = None


def dispatch_alerts(alerts: Sequence[Alert], *, dry_run: bool = False) -> list[Dispatched]:
    """Start one deployment run per routed, firing alert (idempotent per alert firing)."""
    out: list[Dispatched] = []
    for alert in alerts:
        if alert.anomaly is None:
            out.append(Dispatched(alert, "unrouted"))
            continue
        if alert.status == "resolved":
            out.append(Dispatched(alert, "resolved"))
            continue
        name = anomaly_info(alert.anomaly).deployment_name
        params: dict[str, Any] = {"request": {"alert": alert.model_dump(mode="json"), "dry_run": dry_run}}
        asked = time.time()
        try:
            run: FlowRun = run_deployment(  # type: ignore[assignment] # sync call: a FlowRun
                name,
                parameters=params,
                timeout=0,
                idempotency_key=alert.idempotency_key,
                tags=["llmedic", f"anomaly:{alert.anomaly.value}", f"source:{alert.source}"],
                flow_run_name=f"{alert.anomaly.value}-{alert.target}"[:120],
                as_subflow=False,
            )
        except ObjectNotFound:
            raise OrchestrationError(
                f"deployment {name!r} does not exist on the Prefect server",
                hint="start the deployments with `llmedic up` (or `python -m flows`)",
            ) from None
        except PrefectHTTPStatusError as exc:
            raise OrchestrationError(f"Prefect refused the run for {name!r}: {exc}") from exc
        except (httpx.HTTPError, OSError, RuntimeError) as exc:
            raise OrchestrationError(
                f"cannot reach the Prefect API to start {name!r} ({type(exc).__name__}: {exc})",
                hint="start it with `llmedic up`, or set PREFECT_API_URL",
            ) from exc
        created = run.created.timestamp() if run.created else asked
        status = "duplicate" if created < asked else "started"
        out.append(Dispatched(alert, status, str(run.id), name))
    return out


def read_run(run_id: str | uuid.UUID) -> FlowRun:
    """The flow run, from the API (:class:`FlowRunNotFound` when the server has no such run, the
    plain :class:`OrchestrationError` when the API cannot be asked)."""
    try:
        with get_client(sync_client=True) as client:
            return client.read_flow_run(uuid.UUID(str(run_id)))
    except ObjectNotFound:
        raise FlowRunNotFound(f"no flow run {run_id} on this Prefect server") from None
    except (httpx.HTTPError, OSError) as exc:
        raise OrchestrationError(f"cannot reach the Prefect API ({type(exc).__name__})") from exc


def wait_for_run(
    run_id: str | uuid.UUID,
    until: Callable[[FlowRun], bool],
    *,
    timeout: float,
    poll: float = 1.0,
    on_poll: Callable[[FlowRun], None] | None = None,
) -> FlowRun:
    """Poll a run until ``until(run)`` or ``timeout`` (raises :class:`OrchestrationError`)."""
    deadline = time.monotonic() + timeout
    run = read_run(run_id)
    while not until(run):
        if on_poll:
            on_poll(run)
        if time.monotonic() > deadline:
            state = run.state.name if run.state else "unknown"
            raise OrchestrationError(
                f"flow run {run_id} did not get there within {timeout:g}s (state {state})"
            )
        time.sleep(poll)
        run = read_run(run_id)
    return run
