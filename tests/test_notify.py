"""Notifications through a real Slack-compatible webhook capture server and a real SMTP server
(aiosmtpd) on loopback: routed by team, escalations copied to the escalation route, delivery
failures reported and never raised."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from llmedic.catalog import AnomalyType, Team
from llmedic.config import EnvironmentFile
from llmedic.notify import notify_team, notify_team_of
from llmedic.sandbox.fleet import free_port


class Capture:
    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self.mails: list[tuple[list[str], str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd's hook
        self.mails.append((list(envelope.rcpt_tos), envelope.content.decode()))
        return "250 OK"


@pytest.fixture
def capture() -> Iterator[tuple[Capture, str, int]]:
    cap = Capture()

    class Hook(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return None

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            cap.posts.append((self.path, json.loads(body)))
            self.send_response(200)
            self.end_headers()

    web = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    smtp_port = free_port()
    smtp = Controller(cap, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    yield cap, f"http://127.0.0.1:{web.server_address[1]}", smtp_port
    smtp.stop()
    web.shutdown()


def env(url: str, smtp_port: int) -> EnvironmentFile:
    return EnvironmentFile.model_validate(
        {
            "teams": {
                "data": {"webhook_url": f"{url}/data", "email": ["data@example.org"]},
                "ops": {"webhook_url": f"{url}/ops", "channel": "#ops-oncall"},
                "escalation": {"email": ["oncall-lead@example.org"]},
            },
            "smtp": {"host": "127.0.0.1", "port": smtp_port, "sender": "llmedic@example.org"},
        }
    )


def test_routed_by_category_to_webhook_and_email(capture: tuple[Capture, str, int]) -> None:
    cap, url, port = capture
    line = notify_team_of(
        env(url, port),
        AnomalyType.DATA_MISSING,
        "[llmedic] [approval] approve repair: llmedic approve R --by NAME",
    )
    assert line.endswith("— data: webhook HTTP 200; email to 1 recipient(s)")
    assert cap.posts == [
        ("/data", {"text": "[llmedic] [approval] approve repair: llmedic approve R --by NAME"})
    ]
    ((to, mail),) = cap.mails
    assert to == ["data@example.org"] and "Subject: [llmedic] [approval] approve repair" in mail


def test_escalations_also_reach_the_escalation_route(capture: tuple[Capture, str, int]) -> None:
    cap, url, port = capture
    line = notify_team(
        env(url, port), Team.OPS, "[llmedic] [escalated] gpu-fault-1: verification failed", escalate=True
    )
    assert line.endswith("— ops: webhook HTTP 200 | escalation: email to 1 recipient(s)")
    assert cap.posts[0] == (
        "/ops",
        {"text": "[llmedic] [escalated] gpu-fault-1: verification failed", "channel": "#ops-oncall"},
    )
    assert cap.mails[0][0] == ["oncall-lead@example.org"]


def test_failures_are_reported_not_raised() -> None:
    dead = free_port()
    e = env(f"http://127.0.0.1:{dead}", dead)
    line = notify_team(e, Team.DATA, "hello")
    assert line.endswith("— data: webhook failed: ConnectError; email failed: ConnectionRefusedError")
    assert notify_team(e, Team.ALGORITHM, "x").endswith(
        "algorithm: recorded (no channel configured for the team)"
    )
