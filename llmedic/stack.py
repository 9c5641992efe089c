"""The one stack launcher: the Prefect server, the deployment runner, the alert receiver and the
approval/reconcile sweeper, started in order and stopped in the reverse order.

``llmedic up`` runs it supervised (:meth:`Stack.run_forever`); the demo and the game days start
the same pieces through the same methods (their own server on a free port, their own receiver
token), with their sandbox in between when the runner must see the sandbox's llmedic.yaml.

Stopping it (Ctrl-C / SIGTERM under ``llmedic up``) stops the children gracefully: the receiver,
then the runner (without losing runs that are being suspended), then the server. Runs waiting at an
approval gate are *suspended* — they hold no process — so they are still waiting when the stack
starts again.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prefect.settings import PREFECT_API_URL, temporary_settings

from llmedic.approval import sweep_expired
from llmedic.config import Settings
from llmedic.errors import LlmedicError, OrchestrationError
from llmedic.orchestration import PrefectServer, api_healthy, prefect_env, stop_process, stop_runner
from llmedic.prefect_auth import (
    CLIENT_VAR,
    SERVER_VAR,
    auth_file,
    configured_auth_string,
    ensure_auth_file,
    is_loopback,
    use_api_auth,
)
from llmedic.receiver.server import ensure_token_file
from llmedic.reconcile import reconcile
from llmedic.store.incidents import IncidentStore

__all__ = ["READY_DEPLOYMENT", "Stack"]

log = logging.getLogger("llmedic.stack")

READY_DEPLOYMENT = "llmedic-latency/default"
"""A deployment the runner serves: once the API knows it, the runner is serving."""


@dataclass
class Stack:
    """The processes of one llmedic installation (or of one demo or game day)."""

    settings: Settings
    host: str = "127.0.0.1"
    port: int = 4200
    config_path: Path | None = None
    poll_seconds: float = 5.0
    log_dir: Path | None = None
    server: PrefectServer | None = None
    runner: subprocess.Popen[bytes] | None = None
    receiver: subprocess.Popen[bytes] | None = None
    receiver_port: int = 9095
    database_url: str | None = None
    api_url: str = ""
    stop_event: threading.Event = field(default_factory=threading.Event)
    auth_path: Path | None = None
    """The file the Prefect API auth string was read from or written to (None: from the environment, or none)."""
    external_api: bool = True
    """Use the server ``PREFECT_API_URL`` names when it is set (``llmedic up``); False: always start
    one (the demo and the game days run on their own)."""
    own_receiver_token: bool = False
    """Always give the receiver a bearer token file of its own (``<home>/receiver.token``), even when
    credentials are configured (the demo and the game days post alerts with it)."""
    child_env: dict[str, str] = field(default_factory=dict)
    """Extra environment for the runner and the receiver (e.g. ``LLMEDIC_PLAYBOOKS_DIR``)."""
    receiver_token_file: Path | None = None
    """The token file the receiver was started with, when the stack made one."""
    _auth: tuple[str | None] | None = field(default=None, repr=False)

    @property
    def home(self) -> Path:
        """State directory."""
        return self.settings.home.resolve()

    @property
    def logs(self) -> Path:
        """Where the children's logs go (``<home>/logs`` unless ``log_dir`` says otherwise)."""
        return self.log_dir or self.home / "logs"

    @property
    def receiver_url(self) -> str:
        """The receiver's base URL."""
        return f"http://{self.host}:{self.receiver_port}"

    def api_auth(self) -> str | None:
        """The Prefect API's auth string for the server and every client: the operator's
        (``PREFECT_API_AUTH_STRING`` / ``PREFECT_SERVER_API_AUTH_STRING``), else the one in
        ``<home>/prefect-api.auth``, which is generated (mode 0600) when the server listens on
        anything but loopback. None: the API is open (loopback only)."""
        if self._auth is None:
            found = configured_auth_string(self.home)
            if found is None and not os.environ.get("PREFECT_API_URL") and not is_loopback(self.host):
                ensure_auth_file(self.home)
                found = configured_auth_string(self.home)
            if found is not None and not (os.environ.get(CLIENT_VAR) or os.environ.get(SERVER_VAR)):
                self.auth_path = auth_file(self.home)
            self._auth = (found,)
        return self._auth[0]

    # -- starting, in order --------------------------------------------------------------------

    def start(self) -> None:
        """Start the server (unless PREFECT_API_URL names a running one), the runner and the receiver."""
        self.start_server()
        self.start_runner()
        self.start_receiver()

    def start_server(self) -> str:
        """The Prefect API: the one ``PREFECT_API_URL`` names (when ``external_api``) or a server
        started here; returns its URL once it answers."""
        self.logs.mkdir(parents=True, exist_ok=True)
        auth = self.api_auth()
        if auth is not None:
            # This process's own clients (the sweeper thread, stopping the runner) send it too.
            use_api_auth(auth)
        external = os.environ.get("PREFECT_API_URL") if self.external_api else None
        if external:
            if not api_healthy(external):
                raise OrchestrationError(
                    f"PREFECT_API_URL={external} does not answer", hint="start that server or unset it"
                )
            self.api_url = external
            return self.api_url
        self.server = PrefectServer(
            self.home,
            self.host,
            self.port,
            log_path=self.logs / "prefect-server.log",
            database_url=self.database_url,
            auth_string=auth,
        )
        self.server.start()
        self.api_url = self.server.api_url
        return self.api_url

    def environment(self) -> dict[str, str]:
        """The children's environment: the API (and its auth), the poll interval, llmedic.yaml."""
        env = prefect_env(
            self.home, self.api_url, poll_seconds=self.poll_seconds, auth_string=self.api_auth()
        )
        config = self.config_path or self.settings.config_path()
        if config.exists():
            env["LLMEDIC_CONFIG"] = str(config.resolve())
        env.update(self.child_env)
        return env

    def _spawn(self, args: list[str], env: dict[str, str], log_name: str) -> subprocess.Popen[bytes]:
        fh = open(self.logs / log_name, "ab")  # noqa: SIM115 - the child keeps it
        return subprocess.Popen(args, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)

    def start_runner(self) -> None:
        """Serve every deployment (``python -m flows``), logging to ``runner.log``."""
        self.runner = self._spawn([sys.executable, "-m", "flows"], self.environment(), "runner.log")

    def start_receiver(self) -> None:
        """The alert receiver (``llmedic receiver``), logging to ``receiver.log``."""
        env = self.environment()
        configured = (
            self.settings.receiver_token
            or self.settings.receiver_token_file
            or self.settings.receiver_basic_user
        )
        if self.own_receiver_token or not configured:
            # No credentials configured: make a random token only this user can read, and point
            # Alertmanager's `credentials_file` at it.
            self.receiver_token_file = ensure_token_file(self.home / "receiver.token")
            env["LLMEDIC_RECEIVER_TOKEN_FILE"] = str(self.receiver_token_file)
        args = ["receiver", "--host", self.host, "--port", str(self.receiver_port)]
        self.receiver = self._spawn([sys.executable, "-m", "llmedic", *args], env, "receiver.log")

    # -- waiting until it serves -----------------------------------------------------------------

    def wait_receiver(self, timeout: float = 60) -> None:
        """Until the receiver answers ``/healthz`` (200, or 503 while its dispatcher catches up)."""

        def ready() -> bool:
            return httpx.get(f"{self.receiver_url}/healthz", timeout=1).status_code in (200, 503)

        self._wait(ready, self.receiver, "the alert receiver", "receiver.log", timeout)

    def wait_deployments(self, timeout: float = 90) -> None:
        """Until the runner serves the deployments (the API knows :data:`READY_DEPLOYMENT`)."""
        from prefect.client.orchestration import get_client

        def served() -> bool:
            with get_client(sync_client=True) as client:
                client.read_deployment_by_name(READY_DEPLOYMENT)
            return True

        with temporary_settings(updates={PREFECT_API_URL: self.api_url}):
            self._wait(served, self.runner, "the deployments", "runner.log", timeout)

    def _wait(
        self,
        ready: Callable[[], bool],
        child: subprocess.Popen[bytes] | None,
        what: str,
        log_name: str,
        timeout: float,
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if ready():
                    return
            except Exception:  # not up yet: connection refused, 404 for the deployment ...
                pass
            if child is not None and child.poll() is not None:
                raise OrchestrationError(
                    f"{what}: the process exited with status {child.returncode}",
                    hint=f"see {self.logs / log_name}",
                )
            time.sleep(0.3)
        raise OrchestrationError(
            f"{what} did not come up within {timeout:g}s", hint=f"see {self.logs / log_name}"
        )

    # -- the sweeper ----------------------------------------------------------------------------

    def sweep_once(self, store: IncidentStore, settings: Settings) -> None:
        """Reject approvals past their deadline, then close, escalated, the open incidents whose
        flow run ended or is gone (the reconciler). Any error is logged, never raised."""
        try:
            sweep_expired(store)
        except LlmedicError as exc:
            log.warning("approval sweep: %s: %s", exc.code, exc.message)
        except Exception:  # a disk or library error must not end the sweeper thread for good
            log.exception("approval sweep failed; trying again next sweep")
        try:
            done = reconcile(settings)
        except LlmedicError as exc:
            log.warning("reconciler: %s: %s", exc.code, exc.message)
            return
        except Exception:
            log.exception("reconciler failed; trying again next sweep")
            return
        for item in done.closed:
            log.warning(
                "incident %s closed escalated: flow run %s is %s",
                item.incident_id,
                item.flow_run_id,
                item.run_state,
            )

    def sweep_forever(self) -> None:
        """Every ``approval_sweep_seconds`` (15 s by default) until stopped: :meth:`sweep_once` (so no
        incident stays open more than a minute after its run ended)."""
        store = IncidentStore.from_settings(self.settings)
        updates: dict[str, object] = {"home": self.home}
        if self.config_path is not None:
            updates["config"] = self.config_path.resolve()
        settings = self.settings.model_copy(update=updates)
        with temporary_settings(updates={PREFECT_API_URL: self.api_url}):
            while not self.stop_event.wait(self.settings.approval_sweep_seconds):
                self.sweep_once(store, settings)

    # -- stopping, in reverse order ---------------------------------------------------------------

    def stop(self) -> None:
        """Stop the receiver, then the runner, then the server."""
        self.stop_event.set()
        if self.receiver is not None:
            stop_process(self.receiver, timeout=15)
            self.receiver = None
        if self.runner is not None:
            with temporary_settings(updates={PREFECT_API_URL: self.api_url}):
                stop_runner(self.runner)
            self.runner = None
        if self.server is not None:
            self.server.stop()
            self.server = None

    def _child_died(self) -> bool:
        if any(p is not None and p.poll() is not None for p in (self.runner, self.receiver)):
            return True
        proc = self.server.process if self.server is not None else None
        return proc is not None and proc.poll() is not None

    def run_forever(self) -> int:
        """Start, supervise until a signal or a child's death, stop. Returns an exit status."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stop_event.set())
        self.start()
        sweeper = threading.Thread(target=self.sweep_forever, name="approval-sweeper", daemon=True)
        sweeper.start()
        status = 0
        while not self.stop_event.wait(1.0):
            if self._child_died():
                status = 1
                break
        self.stop()
        return status
