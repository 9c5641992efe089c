"""Run the receiver: the ASGI app on uvicorn plus the dispatcher thread, over one outbox."""

from __future__ import annotations

import logging
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from llmedic.alerts import target_matcher
from llmedic.config import EnvironmentFile, Settings
from llmedic.errors import ConfigError
from llmedic.receiver.app import ReceiverAuth, ReceiverMetrics, create_receiver_app
from llmedic.receiver.dispatcher import Dispatcher
from llmedic.receiver.outbox import Outbox
from llmedic.store.incidents import IncidentStore

__all__ = ["Receiver", "auth_from_settings", "ensure_token_file"]


def auth_from_settings(settings: Settings, *, insecure: bool = False) -> ReceiverAuth:
    """Credentials from settings; without any, refuse to start unless ``insecure``."""
    bearer = settings.receiver_bearer()
    password = (
        settings.receiver_basic_password.get_secret_value() if settings.receiver_basic_password else None
    )
    if bearer is None and not (settings.receiver_basic_user and password) and not insecure:
        raise ConfigError(
            "the receiver has no credentials configured and will not accept unauthenticated alerts",
            hint="set LLMEDIC_RECEIVER_TOKEN or LLMEDIC_RECEIVER_TOKEN_FILE (or basic auth); "
            "--insecure allows unauthenticated alerts for local demos only",
        )
    hmac_secret = settings.grafana_hmac_secret.get_secret_value() if settings.grafana_hmac_secret else None
    return ReceiverAuth(
        bearer=bearer,
        basic_user=settings.receiver_basic_user,
        basic_password=password,
        insecure=insecure,
        grafana_hmac_secret=hmac_secret,
        grafana_timestamp_header=settings.grafana_timestamp_header,
    )


def _log_to_stderr() -> None:
    """The dispatcher's log lines (failed attempts, dead rows) with a time, on the process's stderr
    (``llmedic up`` sends it to ``logs/receiver.log``)."""
    logger = logging.getLogger("llmedic.receiver")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def ensure_token_file(path: Path) -> Path:
    """Create a random bearer token file (mode 0600) if there is none; return its path."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32) + "\n", encoding="utf-8")
    return path


@dataclass
class Receiver:
    """The receiver process's parts."""

    settings: Settings
    env: EnvironmentFile
    auth: ReceiverAuth
    host: str = "127.0.0.1"
    port: int = 9095
    dispatch: bool = True

    def build(self) -> tuple[Outbox, Dispatcher, ReceiverMetrics, object]:
        """Outbox, dispatcher, metrics and the ASGI app."""
        outbox = Outbox.from_settings(self.settings)
        store = IncidentStore.from_settings(self.settings)
        metrics = ReceiverMetrics(outbox, store)
        dispatcher = Dispatcher(
            outbox,
            store,
            self.env,
            on_event=lambda state, row, seconds: metrics.dispatched(state, seconds),
        )
        self._thread: threading.Thread | None = None

        def alive() -> bool:
            return not self.dispatch or (self._thread is not None and self._thread.is_alive())

        app = create_receiver_app(
            outbox,
            self.auth,
            self.env.alert_rules,
            metrics=metrics,
            max_body_bytes=self.settings.receiver_max_body_bytes,
            dispatcher_alive=alive,
            known_target=target_matcher(self.env),
        )
        return outbox, dispatcher, metrics, app

    def serve(self) -> None:
        """Serve until SIGINT/SIGTERM; pending rows stay in the outbox for the next start."""
        _log_to_stderr()
        _, dispatcher, _, app = self.build()
        if self.dispatch:
            self._thread = threading.Thread(target=dispatcher.run_forever, name="dispatcher", daemon=True)
            self._thread.start()
        config = uvicorn.Config(app, host=self.host, port=self.port, log_level="warning", access_log=False)  # type: ignore[arg-type]
        try:
            uvicorn.Server(config).run()
        finally:
            dispatcher.stop_event.set()
            if self._thread is not None:
                self._thread.join(10)
            # Throttle and dead-row notices are sent off the dispatch loop; give those still
            # queued a bounded chance to go out (each is retried for up to notify.max_seconds).
            if not dispatcher.wait_for_notifications(10):
                logging.getLogger("llmedic.receiver").error("stopping with notifications still unsent")
