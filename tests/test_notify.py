"""Notifications through a real Slack-compatible webhook server and a real SMTP server (aiosmtpd)
on loopback: routed by team, escalations copied to the escalation route; a non-2xx answer, a
timeout, a refused connection or an SMTP refusal is retried within the ``notify:`` bounds and then
recorded *failed*, never raised; the incident keeps what reached whom, old records still load."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from llmedic.alerts import Alert
from llmedic.catalog import AnomalyType, Team, anomaly_info
from llmedic.config import EnvironmentFile
from llmedic.incident import Incident, NotificationRecord
from llmedic.notify import deliver, notify_team, notify_team_of, redact_webhook
from llmedic.report import render_markdown
from llmedic.store.importer import import_home
from llmedic.store.incidents import IncidentStore
from llmedic_sandbox.fleet import free_port

FAST = {"attempts": 3, "backoff_seconds": 0.05, "timeout_seconds": 2, "max_seconds": 10}


class Capture:
    """What the webhook and SMTP servers received; ``scripts`` says what each webhook path answers
    (status codes in turn, the last repeated; a ``None`` waits past any client timeout)."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, Any], float]] = []
        self.mails: list[tuple[list[str], str]] = []
        self.scripts: dict[str, list[int | None]] = {}
        self.smtp_answers: list[str] = []
        self.release = threading.Event()

    def answer(self, path: str) -> int | None:
        script = self.scripts.get(path, [200])
        return script.pop(0) if len(script) > 1 else script[0]

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd's hook
        reply = self.smtp_answers.pop(0) if self.smtp_answers else "250 OK"
        if reply.startswith("250"):
            self.mails.append((list(envelope.rcpt_tos), envelope.content.decode()))
        return reply


@pytest.fixture
def capture() -> Iterator[tuple[Capture, str, int]]:
    cap = Capture()

    class Hook(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return None

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            cap.posts.append((self.path, json.loads(body), time.monotonic()))
            code = cap.answer(self.path)
            if code is None:
                cap.release.wait(10)  # until the test ends: the client must time out first
                return
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

    web = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    web.daemon_threads = True
    threading.Thread(target=web.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    smtp_port = free_port()
    smtp = Controller(cap, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    yield cap, f"http://127.0.0.1:{web.server_address[1]}", smtp_port
    cap.release.set()
    smtp.stop()
    web.shutdown()


def env(url: str, smtp_port: int, notify: dict[str, Any] | None = None, **teams: Any) -> EnvironmentFile:
    return EnvironmentFile.model_validate(
        {
            "teams": teams
            or {
                "data": {"webhook_url": f"{url}/data", "email": ["data@example.org"]},
                "ops": {"webhook_url": f"{url}/ops", "channel": "#ops-oncall"},
                "escalation": {"email": ["oncall-lead@example.org"]},
            },
            "smtp": {"host": "127.0.0.1", "port": smtp_port, "sender": "llmedic@example.org"},
            "notify": notify or FAST,
        }
    )


def deliveries(record: NotificationRecord) -> list[tuple[Any, ...]]:
    return [
        (d.route, d.channel, d.destination, d.status, d.attempts, d.http_status, d.error)
        for d in record.deliveries
    ]


def test_routed_by_category_to_webhook_and_email(capture: tuple[Capture, str, int]) -> None:
    cap, url, port = capture
    text = "[llmedic] [approval] approve repair: llmedic approve R --by NAME"
    line = notify_team_of(env(url, port), AnomalyType.DATA_MISSING, text)
    assert line == (
        f"data ← {text} — data: webhook delivered to {url} (1 attempt); "
        "email delivered to data@example.org (1 attempt)"
    )
    assert [(p, b) for p, b, _ in cap.posts] == [("/data", {"text": text})]
    ((to, mail),) = cap.mails
    assert to == ["data@example.org"] and "Subject: [llmedic] [approval] approve repair" in mail


def test_escalations_also_reach_the_escalation_route(capture: tuple[Capture, str, int]) -> None:
    cap, url, port = capture
    record = deliver(
        env(url, port), Team.OPS, "[llmedic] [escalated] gpu-fault-1: failed", kind="escalated", escalate=True
    )
    assert (record.kind, record.team, record.delivered) == ("escalated", "ops", True)
    assert deliveries(record) == [
        ("ops", "webhook", url, "delivered", 1, 200, ""),
        ("escalation", "email", "oncall-lead@example.org", "delivered", 1, None, ""),
    ]
    assert [(p, b) for p, b, _ in cap.posts] == [
        ("/ops", {"text": "[llmedic] [escalated] gpu-fault-1: failed", "channel": "#ops-oncall"})
    ]
    assert cap.mails[0][0] == ["oncall-lead@example.org"]


@pytest.mark.fault(
    tried="a team webhook answering 500, 500 then 200; always 500; 503 then 429 then 200; 404; 301",
    survives="retried with doubling waits up to notify.attempts; only a 2xx is delivered; a 4xx is not retried; "
    "every try counted on the incident record",
)
@pytest.mark.parametrize(
    ("script", "status", "attempts", "http_status"),
    [
        ([500, 500, 200], "delivered", 3, 200),
        ([500], "failed", 3, 500),
        ([503, 429, 200], "delivered", 3, 200),
        ([404], "failed", 1, 404),
        ([301], "failed", 1, 301),
        ([204], "delivered", 1, 204),
    ],
)
def test_a_webhook_is_delivered_only_by_a_2xx_and_retried_within_bounds(
    capture: tuple[Capture, str, int], script: list[int | None], status: str, attempts: int, http_status: int
) -> None:
    cap, url, port = capture
    cap.scripts["/ops"] = list(script)
    record = deliver(env(url, port, ops={"webhook_url": f"{url}/ops"}), Team.OPS, "hello")
    assert deliveries(record) == [("ops", "webhook", url, status, attempts, http_status, "")]
    assert len(cap.posts) == attempts
    gaps = [b[2] - a[2] for a, b in zip(cap.posts, cap.posts[1:], strict=False)]
    assert all(g >= w for g, w in zip(gaps, (0.05, 0.1), strict=False)), gaps  # 0.05 s, then doubled
    tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
    assert record.line() == (
        f"ops ← hello — ops: webhook delivered to {url} ({tries})"
        if status == "delivered"
        else f"ops ← hello — ops: webhook to {url} failed after {tries} (HTTP {http_status})"
    )


@pytest.mark.fault(
    tried="a team webhook that refuses connections; one that never answers",
    survives="failed after notify.attempts tries with the transport error recorded; nothing raised",
)
def test_refused_and_silent_webhooks_fail_without_raising(capture: tuple[Capture, str, int]) -> None:
    cap, url, port = capture
    dead = f"http://127.0.0.1:{free_port()}"
    record = deliver(env(url, port, ops={"webhook_url": f"{dead}/ops"}), Team.OPS, "x")
    assert deliveries(record) == [("ops", "webhook", dead, "failed", 3, None, "ConnectError")]
    assert record.line() == f"ops ← x — ops: webhook to {dead} failed after 3 attempts (ConnectError)"

    cap.scripts["/slow"] = [None]
    policy = {"attempts": 2, "backoff_seconds": 0.01, "timeout_seconds": 0.3, "max_seconds": 10}
    record = deliver(env(url, port, policy, ops={"webhook_url": f"{url}/slow"}), Team.OPS, "x")
    assert deliveries(record) == [("ops", "webhook", url, "failed", 2, None, "ReadTimeout")]


def test_the_total_time_bound_stops_retries_before_the_attempt_limit(
    capture: tuple[Capture, str, int],
) -> None:
    cap, url, port = capture
    cap.scripts["/ops"] = [500]
    # Waits 0.2, 0.4, 0.8 s: the third try starts at ~0.6 s; the fourth would start at ~1.4 s,
    # past the 1.2 s bound, so it never does.
    policy = {"attempts": 10, "backoff_seconds": 0.2, "timeout_seconds": 2, "max_seconds": 1.2}
    started = time.monotonic()
    record = deliver(env(url, port, policy, ops={"webhook_url": f"{url}/ops"}), Team.OPS, "x")
    assert deliveries(record) == [("ops", "webhook", url, "failed", 3, 500, "")]
    assert time.monotonic() - started < 1.2


@pytest.mark.fault(
    tried="a Slack webhook URL (its path is the secret) and a webhook URL with credentials and a token",
    survives="the record, its line and the report keep scheme and host only",
)
def test_webhook_secrets_never_reach_the_record(capture: tuple[Capture, str, int]) -> None:
    cap, url, port = capture
    secret = "T0000/B0000/XXXXsecretXXXX"
    record = deliver(env(url, port, ops={"webhook_url": f"{url}/services/{secret}"}), Team.OPS, "x")
    assert cap.posts[0][0] == f"/services/{secret}"  # it was sent there ...
    assert deliveries(record) == [("ops", "webhook", url, "delivered", 1, 200, "")]
    assert "secret" not in record.model_dump_json() + record.line()  # ... and is recorded nowhere
    for given, kept in (
        (f"https://hooks.slack.com/services/{secret}", "https://hooks.slack.com"),
        ("http://user:pw@hooks.example.org:8443/x?token=abc", "http://hooks.example.org:8443"),
        ("http://[::1]:9000/hook", "http://[::1]:9000"),
    ):
        assert redact_webhook(given) == kept


@pytest.mark.fault(
    tried="an SMTP relay that answers 550; 451 then accepts; 451 every time",
    survives="550 is failed at once; 451 is retried, delivered when the relay accepts, failed after the bound",
)
@pytest.mark.parametrize(
    ("answers", "status", "attempts", "error", "mails"),
    [
        ([], "delivered", 1, "", 1),
        (["550 mailbox unavailable"], "failed", 1, "SMTPDataError 550", 0),
        (["451 try again later"], "delivered", 2, "", 1),
        (["451 try again later"] * 3, "failed", 3, "SMTPDataError 451", 0),
    ],
)
def test_email_delivery_and_its_failures(
    capture: tuple[Capture, str, int], answers: list[str], status: str, attempts: int, error: str, mails: int
) -> None:
    cap, url, port = capture
    cap.smtp_answers = list(answers)
    record = deliver(env(url, port, ops={"email": ["a@example.org", "b@example.org"]}), Team.OPS, "x")
    assert deliveries(record) == [
        ("ops", "email", "a@example.org, b@example.org", status, attempts, None, error)
    ]
    assert len(cap.mails) == mails


@pytest.mark.fault(
    tried="an SMTP relay that refuses connections",
    survives="failed after notify.attempts tries, recorded; nothing raised",
)
def test_email_without_a_relay_and_routes_without_channels() -> None:
    dead = free_port()
    e = env(f"http://127.0.0.1:{dead}", dead, ops={"email": ["a@example.org"]}, data={})
    record = deliver(e, Team.OPS, "x")
    assert deliveries(record) == [
        ("ops", "email", "a@example.org", "failed", 3, None, "ConnectionRefusedError")
    ]
    no_relay = e.model_copy(update={"smtp": None})
    assert notify_team(no_relay, Team.OPS, "x") == "ops ← x — ops: email skipped (no smtp: configured)"
    assert (
        notify_team(e, Team.DATA, "x")
        == "data ← x — data: recorded (the route has neither webhook nor email)"
    )
    assert notify_team(e, Team.ALGORITHM, "x") == (
        "algorithm ← x — algorithm: recorded (no channel configured for the team)"
    )


def incident(notifications: list[Any]) -> Incident:
    info = anomaly_info(AnomalyType.LATENCY)
    at = datetime(2026, 11, 3, 10, tzinfo=UTC)
    return Incident.model_validate(
        {
            "id": "latency-1",
            "anomaly": "latency",
            "category": info.category,
            "team": info.team,
            "title": "slow",
            "target": "sandbox-1",
            "alert": Alert(source="manual", anomaly=AnomalyType.LATENCY, target="sandbox-1", starts_at=at),
            "opened_at": at,
            "notifications": notifications,
        }
    )


def test_incident_records_keep_deliveries_and_old_files_still_load(
    capture: tuple[Capture, str, int], tmp_path: Any
) -> None:
    cap, url, port = capture
    cap.scripts["/ops"] = [500]
    record = deliver(env(url, port), Team.OPS, "[llmedic] [opened] slow | p99", kind="opened", escalate=True)
    old_line = "ops ← [llmedic] [closed] … — ops: webhook HTTP 500"
    store = IncidentStore(tmp_path)
    # An incident file written before delivery records: notifications were plain lines.
    legacy = json.loads(incident([]).model_dump_json())
    legacy["notifications"] = [old_line]
    (tmp_path / "incidents").mkdir()
    (tmp_path / "incidents" / "latency-1.json").write_text(json.dumps(legacy))
    import_home(tmp_path, store.store)  # `llmedic store import`: how old files reach the store
    loaded = store.load("latency-1")
    assert [(n.kind, n.text, n.deliveries, n.line()) for n in loaded.notifications] == [
        ("legacy", old_line, [], old_line)
    ]
    loaded.notifications.append(record)
    store.save(loaded)
    again = store.load("latency-1")
    assert again.notifications == [NotificationRecord(kind="legacy", text=old_line), record]
    at = f"{record.deliveries[0].at:%H:%M:%S}"
    report = render_markdown(again)
    section = report.split("## Notifications\n\n", 1)[1].split("\n\n## ", 1)[0]
    assert section.splitlines() == [
        "| message | at (UTC) | route | channel | destination | status | attempts | detail |",
        "|---|---|---|---|---|---|---|---|",
        f"| opened | {at} | ops | webhook | {url} | **failed** | 3 | HTTP 500 |",
        f"| opened | {record.deliveries[1].at:%H:%M:%S} | escalation | email | oncall-lead@example.org "
        "| **delivered** | 1 | — |",
        "",
        f"- {old_line}",
    ]
    assert "## Notifications\n\n- none sent\n" in render_markdown(incident([]))
