"""``llmedic up``: the Prefect server, every deployment, and the approval sweeper, supervised.

Stopping it (Ctrl-C / SIGTERM) stops the children gracefully. Runs waiting at an approval gate are
*suspended* — they hold no process — so they are still waiting when ``llmedic up`` starts again.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from prefect.settings import PREFECT_API_URL, temporary_settings

from llmedic.approvals import sweep_expired
from llmedic.config import Settings
from llmedic.errors import LlmedicError, OrchestrationError
from llmedic.incident import IncidentStore
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

__all__ = ["Stack"]

log = logging.getLogger("llmedic.up")


@dataclass
class Stack:
    """The processes of one llmedic installation."""

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
    _auth: tuple[str | None] | None = field(default=None, repr=False)

    @property
    def home(self) -> Path:
        """State directory."""
        return self.settings.home.resolve()

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

    def start(self) -> None:
        """Start the server (unless PREFECT_API_URL names a running one) and the deployments."""
        logs = self.log_dir or self.home / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        auth = self.api_auth()
        if auth is not None:
            # This process's own clients (the sweeper thread, stopping the runner) send it too.
            use_api_auth(auth)
        external = os.environ.get("PREFECT_API_URL")
        if external:
            if not api_healthy(external):
                raise OrchestrationError(
                    f"PREFECT_API_URL={external} does not answer", hint="start that server or unset it"
                )
            self.api_url = external
        else:
            self.server = PrefectServer(
                self.home,
                self.host,
                self.port,
                log_path=logs / "prefect-server.log",
                database_url=self.database_url,
                auth_string=auth,
            )
            self.server.start()
            self.api_url = self.server.api_url
        env = prefect_env(self.home, self.api_url, poll_seconds=self.poll_seconds, auth_string=auth)
        config = self.config_path or self.settings.config_path()
        if config.exists():
            env["LLMEDIC_CONFIG"] = str(config.resolve())
        log = open(logs / "runner.log", "ab")  # noqa: SIM115 - the child keeps it
        self.runner = subprocess.Popen(
            [sys.executable, "-m", "flows"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if not (
            self.settings.receiver_token
            or self.settings.receiver_token_file
            or self.settings.receiver_basic_user
        ):
            # No credentials configured: make a random token only this user can read, and point
            # Alertmanager's `credentials_file` at it.
            env["LLMEDIC_RECEIVER_TOKEN_FILE"] = str(ensure_token_file(self.home / "receiver.token"))
        rlog = open(logs / "receiver.log", "ab")  # noqa: SIM115 - the child keeps it
        self.receiver = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llmedic",
                "receiver",
                "--host",
                self.host,
                "--port",
                str(self.receiver_port),
            ],
            env=env,
            stdout=rlog,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def sweep_forever(self) -> None:
        """Every ``approval_sweep_seconds`` (15 s by default): reject approvals past their deadline,
        then close, escalated, the open incidents whose flow run ended or is gone (the reconciler;
        so no incident stays open more than a minute after its run ended)."""
        store = IncidentStore(self.settings.incidents_dir.resolve())
        updates: dict[str, object] = {"home": self.home}
        if self.config_path is not None:
            updates["config"] = self.config_path.resolve()
        settings = self.settings.model_copy(update=updates)
        with temporary_settings(updates={PREFECT_API_URL: self.api_url}):
            while not self.stop_event.wait(self.settings.approval_sweep_seconds):
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
                    continue
                except Exception:
                    log.exception("reconciler failed; trying again next sweep")
                    continue
                for item in done.closed:
                    log.warning(
                        "incident %s closed escalated: flow run %s is %s",
                        item.incident_id,
                        item.flow_run_id,
                        item.run_state,
                    )

    def stop(self) -> None:
        """Stop the runner, then the server."""
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

    def run_forever(self) -> int:
        """Start, supervise until a signal or a child's death, stop. Returns an exit status."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stop_event.set())
        self.start()
        sweeper = threading.Thread(target=self.sweep_forever, name="approval-sweeper", daemon=True)
        sweeper.start()
        status = 0
        while not self.stop_event.wait(1.0):
            if any(p is not None and p.poll() is not None for p in (self.runner, self.receiver)):
                status = 1
                break
            if (
                self.server is not None
                and self.server.process is not None
                and self.server.process.poll() is not None
            ):
                status = 1
                break
        self.stop()
        return status
