"""The receiver in-process: auth, validation, routing, outbox, dispatcher decisions, metrics, fuzz."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import os
import threading
import time
import types
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prefect.client.schemas.objects import State
from prefect.states import Cancelled, Completed, Crashed, Failed, Paused, Pending, Running, Scheduled
from starlette.testclient import TestClient
from typer.testing import CliRunner

from llmedic.alerts import Alert
from llmedic.catalog import AnomalyType, Team, anomaly_info
from llmedic.cli import app as cli_app
from llmedic.config import AlertRule, EnvironmentFile, ReceiverConfig, Settings
from llmedic.errors import ConfigError, FlowRunNotFound, OrchestrationError, OutboxError
from llmedic.incident import Incident, Outcome, utcnow
from llmedic.orchestration import Dispatched
from llmedic.receiver.app import ReceiverAuth, create_receiver_app, openapi
from llmedic.receiver.dispatcher import Dispatcher
from llmedic.receiver.outbox import Outbox
from llmedic.receiver.server import Receiver, auth_from_settings, ensure_token_file
from llmedic.store.incidents import IncidentStore
from llmedic_sandbox.fleet import free_port

TOKEN = "s3cret-token"
RULES = [AlertRule(match={"alertname": "VLLMHighP99Latency"}, anomaly=AnomalyType.LATENCY)]


def am_body(*alerts: dict[str, Any]) -> dict[str, Any]:
    return {"version": "4", "status": "firing", "groupKey": "g", "alerts": list(alerts)}


def am_alert(
    instance: str = "127.0.0.1:8101",
    status: str = "firing",
    starts: str = "2026-11-24T10:00:00Z",
    **labels: str,
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": "VLLMHighP99Latency", "instance": instance, **labels},
        "annotations": {"summary": "slow"},
        "startsAt": starts,
        "endsAt": "2026-11-24T10:30:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
    }


@pytest.fixture(params=["sqlite", "postgres"])
def outbox(request: pytest.FixtureRequest, tmp_path: Path) -> Outbox:
    """Every outbox test runs on both backends."""
    if request.param == "postgres":
        return Outbox(url=request.getfixturevalue("postgres_url"))
    return Outbox(tmp_path / "llmedic.db")


def client(outbox: Outbox, auth: ReceiverAuth | None = None, max_body: int = 1_048_576) -> TestClient:
    app = create_receiver_app(outbox, auth or ReceiverAuth(bearer=TOKEN), RULES, max_body_bytes=max_body)
    return TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"})


def test_accepts_writes_and_counts_repeats(outbox: Outbox) -> None:
    c = client(outbox)
    body = am_body(
        am_alert(), am_alert(instance="127.0.0.1:8102"), am_alert(instance="x:1", alertname="DiskFull")
    )
    first = c.post("/alerts/alertmanager", json=body)
    assert first.status_code == 202
    assert {k: first.json()[k] for k in ("accepted", "new", "repeats", "unrouted")} == {
        "accepted": 3,
        "new": 3,
        "repeats": 0,
        "unrouted": 1,
    }
    again = c.post("/alerts/alertmanager", json=body)  # Alertmanager retry / HA twin
    assert {k: again.json()[k] for k in ("new", "repeats", "unrouted")} == {
        "new": 0,
        "repeats": 3,
        "unrouted": 0,
    }
    assert [(r.state, r.seen) for r in outbox.rows()] == [("unrouted", 2), ("pending", 2), ("pending", 2)]
    assert outbox.depth() == 2


@pytest.mark.parametrize(
    ("headers", "auth", "status"),
    [
        ({}, ReceiverAuth(bearer=TOKEN), 401),
        ({"Authorization": "Bearer wrong"}, ReceiverAuth(bearer=TOKEN), 401),
        ({"Authorization": f"Bearer {TOKEN}"}, ReceiverAuth(bearer=TOKEN), 202),
        (
            {"Authorization": "Basic " + base64.b64encode(b"am:pw").decode()},
            ReceiverAuth(basic_user="am", basic_password="pw"),
            202,
        ),
        (
            {"Authorization": "Basic " + base64.b64encode(b"am:no").decode()},
            ReceiverAuth(basic_user="am", basic_password="pw"),
            401,
        ),
        ({}, ReceiverAuth(insecure=True), 202),
    ],
)
def test_auth(outbox: Outbox, headers: dict[str, str], auth: ReceiverAuth, status: int) -> None:
    app = create_receiver_app(outbox, auth, RULES)
    resp = TestClient(app).post("/alerts/alertmanager", json=am_body(am_alert()), headers=headers)
    assert resp.status_code == status


def test_refuses_to_start_without_credentials(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        auth_from_settings(Settings(home=tmp_path))
    assert (
        exc.value.message
        == "the receiver has no credentials configured and will not accept unauthenticated alerts"
    )
    assert auth_from_settings(Settings(home=tmp_path), insecure=True).insecure
    token = ensure_token_file(tmp_path / "receiver.token")
    assert oct(token.stat().st_mode & 0o777) == "0o600"
    auth = auth_from_settings(Settings(home=tmp_path, receiver_token_file=token))
    assert auth.bearer == token.read_text().strip() and len(auth.bearer) >= 40


@pytest.mark.parametrize(
    ("kwargs", "status", "error", "message"),
    [
        (
            {"content": b"{}", "headers": {"Content-Type": "text/plain"}},
            415,
            "content_type",
            "content type must be application/json, not 'text/plain'",
        ),
        (
            {"content": b"{nope", "headers": {"Content-Type": "application/json"}},
            400,
            "json",
            "body is not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        ),
        (
            {"json": [am_alert()]},
            400,
            "schema",
            "alertmanager payload: 1 problem\n  alertmanager payload: (top level): Input should be a valid "
            "dictionary or instance of AlertmanagerGroup",
        ),
        (
            {"json": {**am_body(am_alert()), "version": "3"}},
            400,
            "schema",
            "alertmanager payload version '3' is not supported",
        ),
        (
            {"json": am_body()},
            400,
            "schema",
            "alertmanager payload: 1 problem\n  alertmanager payload: alerts: List should have at least 1 "
            "item after validation, not 0",
        ),
    ],
    ids=["text-plain", "not-json", "a-list", "version-3", "no-alerts"],
)
def test_bad_input_is_4xx_naming_the_problem(
    outbox: Outbox, kwargs: dict[str, Any], status: int, error: str, message: str
) -> None:
    resp = client(outbox).post("/alerts/alertmanager", **kwargs)
    assert resp.status_code == status
    assert (resp.json()["error"], resp.json()["message"]) == (error, message)
    assert outbox.rows() == []


def test_body_limit(outbox: Outbox) -> None:
    resp = client(outbox, max_body=200).post(
        "/alerts/alertmanager", json=am_body(am_alert(), am_alert(instance="b:2"))
    )
    assert resp.status_code == 413 and resp.json()["message"].endswith("exceeds the 200-byte limit")


def sign(secret: str, body: bytes, ts: str = "") -> str:
    return hmac.new(secret.encode(), (ts.encode() + b":" + body) if ts else body, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(("good", "with_ts"), [(True, False), (True, True), (False, False)])
def test_grafana_hmac(outbox: Outbox, good: bool, with_ts: bool) -> None:
    auth = ReceiverAuth(bearer=TOKEN, grafana_hmac_secret="hk")
    body = json.dumps({"version": "1", "status": "firing", "alerts": [am_alert(anomaly="latency")]}).encode()
    ts = "1732442400" if with_ts else ""
    headers = {
        "Content-Type": "application/json",
        "X-Grafana-Alerting-Signature": sign("hk" if good else "xx", body, ts),
    }
    if with_ts:
        headers["X-Grafana-Alerting-Signature-Timestamp"] = ts
    resp = client(outbox, auth).post("/alerts/grafana", content=body, headers=headers)
    assert resp.status_code == (202 if good else 401)


def test_generic_endpoint_and_metrics(outbox: Outbox) -> None:
    c = client(outbox)
    assert c.post("/alerts", json={"anomaly": "latency", "target": "sandbox-0"}).status_code == 202
    assert c.post("/alerts", json={"target": "x", "anomoly": "latency"}).status_code == 400
    text = c.get("/metrics").text
    for line in (
        'llmedic_receiver_received_total{endpoint="generic"} 1.0',
        'llmedic_receiver_accepted_total{endpoint="generic"} 1.0',
        'llmedic_receiver_rejected_total{reason="schema"} 1.0',
        "llmedic_receiver_outbox_depth 1.0",
    ):
        assert line in text, line
    assert c.get("/healthz").json()["outbox_depth"] == 1


def test_openapi_describes_every_endpoint() -> None:
    spec = openapi()
    assert set(spec["paths"]) == {
        "/alerts/alertmanager",
        "/alerts/grafana",
        "/alerts",
        "/healthz",
        "/metrics",
    }
    assert {"AlertmanagerPayload", "GrafanaPayload", "GenericAlert"} <= set(spec["components"]["schemas"])


# ------------------------------------------------------------------ dispatcher decisions


class FakePrefect:
    """Stands in for run_deployment (the real one runs in tests/test_receiver_e2e.py)."""

    def __init__(self) -> None:
        self.runs: dict[str, str] = {}
        self.down = False

    def __call__(self, alerts: list[Alert]) -> list[Dispatched]:
        if self.down:
            raise OrchestrationError("cannot reach the Prefect API")
        out = []
        for a in alerts:
            status = "duplicate" if a.idempotency_key in self.runs else "started"
            run = self.runs.setdefault(a.idempotency_key, f"run-{len(self.runs) + 1}")
            out.append(Dispatched(a, status, run, "llmedic-latency/default"))
        return out


def dispatcher(outbox: Outbox, tmp_path: Path, fake: FakePrefect, budget: int = 6) -> Dispatcher:
    env = EnvironmentFile(receiver=ReceiverConfig(max_runs_per_target_per_hour=budget))
    return Dispatcher(outbox, IncidentStore(tmp_path), env, dispatch=fake)


def test_dispatch_dedup_resolve_and_backoff(outbox: Outbox, tmp_path: Path) -> None:
    fake = FakePrefect()
    d = dispatcher(outbox, tmp_path, fake)
    d.liveness = lambda run_id: "live"  # type: ignore[method-assign] # its run is still going
    c = client(outbox)
    c.post("/alerts/alertmanager", json=am_body(am_alert()))
    assert d.drain_once() == 1 and fake.runs and outbox.rows()[0].state == "started"
    # a new firing of the same alert while its incident is open: duplicate, no new run
    c.post("/alerts/alertmanager", json=am_body(am_alert(starts="2026-11-24T11:00:00Z")))
    d.drain_once()
    assert outbox.rows()[0].state == "duplicate" and len(fake.runs) == 1
    # resolved: attached to the open incident's run
    c.post("/alerts/alertmanager", json=am_body(am_alert(status="resolved")))
    d.drain_once()
    assert outbox.rows()[0].state == "attached"
    assert len(IncidentStore(tmp_path).resolved_notices("run-1")) == 1
    # Prefect down: the row stays pending and backs off; nothing is lost
    fake.down = True
    c.post("/alerts/alertmanager", json=am_body(am_alert(instance="127.0.0.1:8109")))
    d.drain_once()
    row = outbox.rows()[0]
    assert (row.state, row.attempts, row.error) == ("pending", 1, "cannot reach the Prefect API")
    assert outbox.due() == []  # not due again before its backoff
    fake.down = False
    with outbox._conn() as db:  # the backoff has elapsed
        outbox._exec(db, "UPDATE outbox SET next_attempt = 0")
    d.drain_once()
    assert outbox.rows()[0].state == "started" and len(fake.runs) == 2


def test_budget_throttles_and_escalates(outbox: Outbox, tmp_path: Path) -> None:
    fake = FakePrefect()
    d = dispatcher(outbox, tmp_path, fake, budget=2)
    d.liveness = lambda run_id: "ended"  # type: ignore[method-assign] # every run ended quickly
    c = client(outbox)
    for hour in range(10, 14):
        c.post("/alerts/alertmanager", json=am_body(am_alert(starts=f"2026-11-24T{hour}:00:00Z")))
        d.drain_once()
    assert [r.state for r in reversed(outbox.rows())] == ["started", "started", "throttled", "throttled"]
    assert len(fake.runs) == 2


# ------------------------------------------------------------------ fuzz: never a 5xx

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
labels = st.dictionaries(
    st.sampled_from(["alertname", "instance", "anomaly", "severity", "target", "job", "x"]),
    st.text(max_size=30)
    | st.sampled_from(
        ["latency", "$(reboot)", "../../etc/passwd", "a;b|c", "\u202e\u0000é", "VLLMHighP99Latency"]
    ),
    max_size=5,
)
alert_like = st.fixed_dictionaries(
    {"status": st.sampled_from(["firing", "resolved", "bogus"]), "labels": labels},
    optional={
        "startsAt": st.sampled_from(["2026-11-24T10:00:00Z", "yesterday", ""]),
        "annotations": st.dictionaries(st.text(max_size=5), st.text(max_size=5)),
    },
)
payloads = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {
            "version": st.sampled_from(["4", "1", "3"]),
            "status": st.sampled_from(["firing", "resolved"]),
            "alerts": st.lists(alert_like, max_size=3),
        }
    ),
    st.fixed_dictionaries(
        {
            "target": st.text(max_size=40),
            "anomaly": st.text(max_size=15) | st.sampled_from(["latency", "gpu_fault"]),
        }
    ),
)


# `make soak` raises these (LLMEDIC_FUZZ_EXAMPLES=5000: 15,000 payloads in all).
FUZZ_EXAMPLES = int(os.environ.get("LLMEDIC_FUZZ_EXAMPLES", "700"))


@pytest.mark.fault(
    tried="Hypothesis-generated Alertmanager, Grafana and generic bodies (odd labels, shell metacharacters, traversal, control characters)",
    survives="never a 5xx; accepted bodies stored verbatim",
)
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(endpoint=st.sampled_from(["/alerts/alertmanager", "/alerts/grafana", "/alerts"]), body=payloads)
def test_fuzz_never_5xx(tmp_path_factory: pytest.TempPathFactory, endpoint: str, body: Any) -> None:
    global _FUZZ
    if _FUZZ is None:
        ob = Outbox(tmp_path_factory.mktemp("fuzz") / "o.sqlite3")
        _FUZZ = client(ob)
    resp = _FUZZ.post(
        endpoint, content=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    assert resp.status_code in (202, 400), (resp.status_code, resp.text)


_FUZZ: TestClient | None = None


@pytest.mark.fault(
    tried="raw random bytes as the alert body",
    survives="never a 5xx",
)
@settings(max_examples=2 * FUZZ_EXAMPLES, deadline=None)
@given(raw=st.binary(max_size=200))
def test_fuzz_raw_bytes_never_5xx(raw: bytes) -> None:
    global _FUZZ_RAW
    if _FUZZ_RAW is None:
        import tempfile

        _FUZZ_RAW = client(Outbox(Path(tempfile.mkdtemp()) / "o.sqlite3"))
    resp = _FUZZ_RAW.post("/alerts/alertmanager", content=raw, headers={"Content-Type": "application/json"})
    assert resp.status_code in (202, 400)


_FUZZ_RAW: TestClient | None = None


@pytest.mark.parametrize(
    "value",
    [
        "$(reboot)",
        "`id`",
        "a; rm -rf /",
        "../../etc/passwd",
        "\u202egnp.exe",
        "null\u0000byte",
        "日本語",
        "' OR 1=1 --",
    ],
)
def test_odd_label_values_stay_inert_data(outbox: Outbox, value: str) -> None:
    resp = client(outbox).post("/alerts/alertmanager", json=am_body(am_alert(note=value)))
    assert resp.status_code == 202
    (row,) = outbox.rows()
    assert row.alert.labels["note"] == value  # stored verbatim, used nowhere as code


def test_unreachable_postgres_outbox_is_a_clear_error_without_the_password() -> None:
    with pytest.raises(OutboxError) as exc:
        Outbox(url="postgresql://nobody:secret@127.0.0.1:1/none")
    assert exc.value.message.startswith("outbox postgresql://127.0.0.1:1/none: OperationalError")
    assert "secret" not in str(exc.value)


def test_a_failing_outbox_answers_503_so_the_sender_retries(outbox: Outbox) -> None:
    c = client(outbox)
    with outbox._conn() as db:
        outbox._exec(db, "DROP TABLE outbox")
    resp = c.post("/alerts/alertmanager", json=am_body(am_alert()))
    assert resp.status_code == 503 and resp.headers["Retry-After"] == "5"
    assert resp.json()["error"] == "outbox"


def test_two_dispatchers_on_one_postgres_outbox_never_take_the_same_row(postgres_url: str) -> None:
    first, second = Outbox(url=postgres_url), Outbox(url=postgres_url)
    c = client(first)
    for i in range(10):
        c.post("/alerts/alertmanager", json=am_body(am_alert(instance=f"127.0.0.1:{8200 + i}")))
    a = first.due(limit=6)
    b = second.due(limit=6)
    assert len(a) == 6 and len(b) == 4
    assert not {r.id for r in a} & {r.id for r in b}
    assert first.due() == [] and second.due() == []  # all leased


def test_the_latest_run_of_a_target_is_the_latest_dispatched_not_the_newest_row(outbox: Outbox) -> None:
    # After an outage rows are dispatched in retry order: here row 2 first, then row 1. The open
    # incident of the target is row 1's run, the last one started, not row 2's (found by the soak
    # test: a second run started while the first was open).
    c = client(outbox)
    for start in ("2026-11-24T10:00:00Z", "2026-11-24T10:05:00Z"):
        assert c.post("/alerts/alertmanager", json=am_body(am_alert(starts=start))).status_code == 202
    first, second = sorted(outbox.rows(), key=lambda r: r.id)
    outbox.mark(second.id, "started", flow_run_id="run-of-row-2")
    time.sleep(0.01)
    outbox.mark(first.id, "started", flow_run_id="run-of-row-1")
    assert outbox.last_run_for_target(first.anomaly or "", first.target) == "run-of-row-1"


# ------------------------------------------------------------------ every alert judged alone (issue 14)

ENV = EnvironmentFile.model_validate(
    {
        "services": [
            {
                "name": "chat",
                "instances": [
                    {"name": "sandbox-0", "url": "http://127.0.0.1:8101"},
                    {"name": "gpu-1", "url": "http://gpu-节点-1:8000"},
                ],
            }
        ],
        "alert_rules": [{"match": {"alertname": "VLLMHighP99Latency"}, "anomaly": "latency"}],
        "receiver": {"max_dispatch_attempts": 3, "group_window_seconds": 0},
    }
)
UNKNOWN = "target {!r} is not an instance, service, dataset or network link of llmedic.yaml"


def settings_for(outbox: Outbox, home: Path) -> Settings:
    """Settings whose outbox is the fixture's (SQLite under ``home``, or its PostgreSQL database)."""
    if outbox.url is not None:
        return Settings(home=home, outbox_url=outbox.url)
    assert outbox.path == home / "llmedic.db"
    return Settings(home=home)


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """The app on a real HTTP server on 127.0.0.1 (uvicorn in a thread)."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the receiver did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def labels_of(row: Any) -> dict[str, str]:
    return dict(json.loads(row.raw)["labels"])


@pytest.mark.fault(
    tried="one Alertmanager group: a good alert beside one whose instance label holds shell "
    "metacharacters, hostnames in a non-Latin script (configured and not), an alert without startsAt",
    survives="202; the good and the configured non-Latin alert dispatched; the others stored as sent "
    "(unknown-target / invalid with the reason), listed and counted; none refused for a neighbour",
)
def test_one_bad_label_never_costs_its_neighbours_over_http(
    outbox: Outbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = Receiver(settings_for(outbox, tmp_path), ENV, ReceiverAuth(bearer=TOKEN))
    _, d, _, app = receiver.build()
    fake = FakePrefect()
    d.dispatch = fake
    no_start = {k: v for k, v in am_alert(instance="127.0.0.1:8101").items() if k != "startsAt"}
    sent = [
        am_alert(instance="127.0.0.1:8101"),
        am_alert(instance="x; rm -rf /"),
        am_alert(instance="gpu-节点-1:8000"),
        am_alert(instance="gpu-节点-2:8000"),
        no_start,
    ]
    with serving(app) as url:
        resp = httpx.post(
            f"{url}/alerts/alertmanager",
            json=am_body(*sent),
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert {k: body[k] for k in ("accepted", "new", "repeats", "unrouted", "invalid", "unknown_target")} == {
        "accepted": 5,
        "new": 5,
        "repeats": 0,
        "unrouted": 0,
        "invalid": 1,
        "unknown_target": 2,
    }
    assert [(a["state"], a["reason"]) for a in body["alerts"]] == [
        ("pending", None),
        ("unknown-target", UNKNOWN.format("x; rm -rf /")),
        ("pending", None),
        ("unknown-target", UNKNOWN.format("gpu-节点-2:8000")),
        ("invalid", "startsAt: Field required"),
    ]
    for line in (
        'llmedic_receiver_rejected_total{reason="invalid_alert"} 1.0',
        'llmedic_receiver_rejected_total{reason="unknown_target"} 2.0',
        'llmedic_receiver_received_total{endpoint="alertmanager"} 5.0',
    ):
        assert line in metrics, line
    rows = sorted(outbox.rows(), key=lambda r: r.id)
    assert [labels_of(r) for r in rows] == [a["labels"] for a in sent]  # stored as sent, every script
    assert [json.loads(r.raw or "") for r in rows] == sent
    assert [r.alert.labels if r.alert else None for r in rows] == [a["labels"] for a in sent[:4]] + [None]
    assert [r.target for r in rows] == [
        "127.0.0.1:8101",
        "x; rm -rf /",
        "gpu-节点-1:8000",
        "gpu-节点-2:8000",
        "127.0.0.1:8101",
    ]
    assert d.drain_once() == 2  # only the two pending rows are dispatched
    assert [r.state for r in sorted(outbox.rows(), key=lambda r: r.id)] == [
        "started",
        "unknown-target",
        "started",
        "unknown-target",
        "invalid",
    ]
    assert sorted(a.split(":")[1] for a in fake.runs) == ["127.0.0.1", "gpu-节点-1"]

    # `llmedic alerts list --state invalid|unknown-target` lists them, labels as sent
    monkeypatch.setenv("LLMEDIC_HOME", str(tmp_path))
    if outbox.url is not None:
        monkeypatch.setenv("LLMEDIC_OUTBOX_URL", outbox.url)
    else:
        monkeypatch.delenv("LLMEDIC_OUTBOX_URL", raising=False)
    for state, expected in (("invalid", [rows[4]]), ("unknown-target", [rows[3], rows[1]])):
        res = CliRunner().invoke(cli_app, ["alerts", "list", "--state", state, "--json"])
        assert res.exit_code == 0, res.output
        listed = json.loads(res.output)
        assert [(x["key"], x["state"], x["reason"], x["raw"]) for x in listed] == [
            (r.key, state, r.error, r.raw) for r in expected
        ]
    res = CliRunner().invoke(cli_app, ["alerts", "list", "--state", "bogus"])
    assert isinstance(res.exception, ConfigError) and res.exception.message == "unknown --state 'bogus'"


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"labels": {"alertname": "VLLMHighP99Latency"}}, "no target label"),
        (
            {"startsAt": "yesterday"},
            "startsAt: Input should be a valid datetime or date, input is too short (got 'yesterday')",
        ),
        (
            {"labels": {"instance": "a:1", "note": "n" * 4097}},
            "labels: label 'note' is longer than 4096 characters",
        ),
        (
            {"labels": {"instance": "a:1", "anomaly": "slowness"}},
            "labels.anomaly: unknown anomaly type 'slowness'",
        ),
        ({"status": "burning"}, "status: Input should be 'firing' or 'resolved' (got 'burning')"),
        (
            {"labels": {"instance": "a\u0000b"}},
            "target: target has a control or invisible character (got 'a\\x00b')",
        ),
    ],
    ids=["no-target", "bad-startsAt", "label-too-long", "unknown-anomaly", "bad-status", "nul-in-target"],
)
def test_an_invalid_alert_is_stored_with_its_reason_and_its_neighbours_accepted(
    outbox: Outbox, bad: dict[str, Any], reason: str
) -> None:
    invalid = {**am_alert(), **bad}
    c = client(outbox)
    body = am_body(am_alert(instance="127.0.0.1:8102"), invalid, am_alert(instance="127.0.0.1:8103"))
    for _ in range(2):  # Alertmanager's retry of the same notification only bumps `seen`
        resp = c.post("/alerts/alertmanager", json=body)
        assert resp.status_code == 202
        assert [a["state"] for a in resp.json()["alerts"]] == ["pending", "invalid", "pending"]
        assert resp.json()["alerts"][1]["reason"] == reason
    rows = sorted(outbox.rows(), key=lambda r: r.id)
    assert [(r.state, r.seen, r.error) for r in rows] == [
        ("pending", 2, None),
        ("invalid", 2, reason),
        ("pending", 2, None),
    ]
    assert json.loads(rows[1].raw or "") == invalid and rows[1].alert is None
    assert 'llmedic_receiver_rejected_total{reason="invalid_alert"} 1.0' in c.get("/metrics").text
    assert outbox.depth() == 2


@pytest.mark.parametrize(
    ("endpoint", "body", "states"),
    [
        (
            "/alerts/grafana",
            {
                "version": "1",
                "status": "firing",
                "alerts": [am_alert(anomaly="latency"), am_alert(instance="b:2", anomaly="nope")],
            },
            [("pending", None), ("invalid", "labels.anomaly: unknown anomaly type 'nope'")],
        ),
        (
            "/alerts",
            [{"anomaly": "latency", "target": "sandbox-0"}, {"target": "x", "anomoly": "latency"}, 7],
            [
                ("pending", None),
                ("invalid", "anomoly: Extra inputs are not permitted"),
                (
                    "invalid",
                    "(top level): Input should be a valid dictionary or instance of GenericAlert (got 7)",
                ),
            ],
        ),
    ],
    ids=["grafana", "generic-list"],
)
def test_grafana_groups_and_generic_lists_are_judged_per_alert(
    outbox: Outbox, endpoint: str, body: Any, states: list[tuple[str, str | None]]
) -> None:
    resp = client(outbox).post(endpoint, json=body)
    assert resp.status_code == 202
    assert [(a["state"], a["reason"]) for a in resp.json()["alerts"]] == states
    assert [(r.state, r.error) for r in sorted(outbox.rows(), key=lambda r: r.id)] == states


# ------------------------------------------------------------------ dead rows


@contextlib.contextmanager
def captured(name: str) -> Iterator[list[logging.LogRecord]]:
    """Records of one logger (the suite runs with -p no:logging, so no caplog)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


class Notified:
    """Captures what the dispatcher tells teams."""

    def __init__(self) -> None:
        self.sent: list[tuple[Team, str]] = []

    def __call__(self, env: EnvironmentFile, team: Team, text: str) -> str:
        self.sent.append((team, text))
        return f"{team.value} ← recorded"


@pytest.mark.fault(
    tried="a dispatch that fails on every attempt (a bug raising RuntimeError; Prefect refusing)",
    survives="the row goes dead after receiver.max_dispatch_attempts with its last error, ops is told, "
    "every failure is logged with the row, `llmedic alerts retry KEY` re-queues it",
)
@pytest.mark.parametrize(
    ("exc", "error", "traceback"),
    [
        (RuntimeError("boom"), "RuntimeError: boom", True),
        (OrchestrationError("Prefect refused the run"), "Prefect refused the run", False),
    ],
    ids=["bug", "refused"],
)
def test_a_row_that_always_fails_goes_dead_and_can_be_retried(
    outbox: Outbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    exc: Exception,
    error: str,
    traceback: bool,
) -> None:
    def failing(alerts: list[Alert]) -> list[Dispatched]:
        raise exc

    notified = Notified()
    d = Dispatcher(outbox, IncidentStore(tmp_path), ENV, dispatch=failing, notify=notified)
    c = client(outbox)
    assert c.post("/alerts/alertmanager", json=am_body(am_alert())).status_code == 202
    (row,) = outbox.rows()
    states = []
    with captured("llmedic.receiver") as records:
        for _ in range(3):  # max_dispatch_attempts: 3
            with outbox._conn() as db:  # the backoff has elapsed
                outbox._exec(db, "UPDATE outbox SET next_attempt = 0")
            assert d.drain_once() == 1
            states.append((outbox.rows()[0].state, outbox.rows()[0].attempts))
        assert d.wait_for_notifications(10)
    assert states == [("pending", 1), ("pending", 2), ("dead", 3)]
    assert outbox.due() == [] and outbox.rows()[0].error == error
    assert notified.sent == [
        (
            Team.OPS,
            f"[llmedic] [dead alert] latency on 127.0.0.1:8101: no run could be started after 3 attempts "
            f"(last error: {error}); the alert is kept — `llmedic alerts retry {row.key}` re-queues it",
        )
    ]
    mine = records
    assert all(f"outbox row {row.id} ({row.key})" in r.getMessage() for r in mine)
    assert [r.exc_info is not None for r in mine if "dispatch raised" in r.getMessage()] == [traceback] * (
        3 if traceback else 0
    )
    assert [
        r.getMessage().split(": ", 1)[1] for r in mine if r.levelno == logging.ERROR and r.exc_info is None
    ] == [f"dead after 3 attempts: {error}"]

    monkeypatch.setenv("LLMEDIC_HOME", str(tmp_path))
    if outbox.url is not None:
        monkeypatch.setenv("LLMEDIC_OUTBOX_URL", outbox.url)
    res = CliRunner().invoke(cli_app, ["alerts", "retry", row.key])
    assert (res.exit_code, res.output) == (0, f"pending  {row.key}\n")
    again = outbox.rows()[0]
    assert (again.state, again.attempts, again.error) == ("pending", 0, None)
    assert [r.id for r in outbox.due()] == [row.id]


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ("started", "alert {key!r} is started; only dead, throttled, unknown-target alerts can be retried"),
        ("invalid", "alert {key!r} is invalid; only dead, throttled, unknown-target alerts can be retried"),
        (None, "no alert with key {key!r} in the outbox {where}"),
    ],
)
def test_retry_refuses_what_it_cannot_requeue(outbox: Outbox, state: str | None, message: str) -> None:
    client(outbox).post("/alerts/alertmanager", json=am_body(am_alert()))
    (row,) = outbox.rows()
    key = row.key if state else "nope"
    if state:
        outbox.mark(row.id, state)
    with pytest.raises(ConfigError) as exc:
        outbox.requeue(key)
    assert exc.value.message == message.format(key=key, where=outbox.where)
    assert outbox.rows()[0].state == (state or "pending")


def test_an_outbox_from_before_the_raw_column_keeps_working(outbox: Outbox) -> None:
    # The schema as it was (a PostgreSQL outbox from before the state store): no `raw` column, no
    # migrations recorded. Opening it adopts the table and adds the column; old rows read as raw=None.
    alert = Alert(source="alertmanager", anomaly=AnomalyType.LATENCY, target="a:1", starts_at=None)
    with outbox._conn() as db:
        outbox._exec(db, "DROP TABLE outbox")
        outbox._exec(db, "DROP TABLE alembic_version")
        outbox._exec(
            db,
            OLD_SCHEMA.format(
                id_column="BIGSERIAL PRIMARY KEY" if outbox.postgres else "INTEGER PRIMARY KEY AUTOINCREMENT"
            ),
        )
        outbox._exec(
            db,
            "INSERT INTO outbox (key, dedup_key, target, anomaly, status, state, alert, received_at) "
            "VALUES ('k', 'd', 'a:1', 'latency', 'firing', 'pending', ?, 1)",
            (alert.model_dump_json(),),
        )
    reopened = Outbox(url=outbox.url) if outbox.url else Outbox(outbox.path)
    (old,) = reopened.rows()
    assert (old.key, old.state, old.alert, old.raw) == ("k", "pending", alert, None)
    assert client(reopened).post("/alerts/alertmanager", json=am_body(am_alert())).status_code == 202
    assert [r.raw is not None for r in reopened.rows()] == [True, False]
    Outbox(url=outbox.url) if outbox.url else Outbox(outbox.path)  # opening twice is harmless


OLD_SCHEMA = """
CREATE TABLE outbox (
    id {id_column}, key TEXT NOT NULL UNIQUE, dedup_key TEXT NOT NULL, target TEXT NOT NULL,
    anomaly TEXT, status TEXT NOT NULL, state TEXT NOT NULL, alert TEXT NOT NULL,
    received_at DOUBLE PRECISION NOT NULL, seen INTEGER NOT NULL DEFAULT 1,
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt DOUBLE PRECISION NOT NULL DEFAULT 0,
    flow_run_id TEXT, dispatched_at DOUBLE PRECISION, error TEXT
)"""


# ------------------------------------------------------------------ dedup bounded by liveness


def open_incident(store: IncidentStore, run_id: str, outcome: Outcome) -> None:
    info = anomaly_info(AnomalyType.LATENCY)
    now = utcnow()
    store.save(
        Incident(
            id=f"latency-{run_id}",
            anomaly=AnomalyType.LATENCY,
            category=info.category,
            team=info.team,
            title=info.title,
            target="sandbox-0",
            alert=Alert(source="manual", anomaly=AnomalyType.LATENCY, target="127.0.0.1:8101", starts_at=now),
            flow_run_id=run_id,
            opened_at=now,
            outcome=outcome,
        )
    )


GONE, DOWN = (
    FlowRunNotFound("no flow run run-1 on this Prefect server"),
    OrchestrationError("cannot reach the Prefect API (ConnectError)"),
)


@pytest.mark.fault(
    tried="an incident left OPEN by a run that failed, crashed, was cancelled or deleted; the Prefect "
    "API unreachable while deciding",
    survives="a stale incident never swallows a new alert (a new run starts); a live run (running, "
    "paused at a gate, scheduled) still does; an unreachable API starts nothing and retries later",
)
@pytest.mark.parametrize(
    ("incident", "run", "state", "runs"),
    [
        (Outcome.OPEN, Completed(), "started", 2),
        (Outcome.OPEN, Failed(), "started", 2),
        (Outcome.OPEN, Crashed(), "started", 2),
        (Outcome.OPEN, Cancelled(), "started", 2),
        (Outcome.OPEN, GONE, "started", 2),
        (None, GONE, "started", 2),
        (Outcome.OPEN, Running(), "duplicate", 1),
        (Outcome.OPEN, Paused(), "duplicate", 1),
        (None, Scheduled(), "duplicate", 1),
        (None, Pending(), "duplicate", 1),
        (None, None, "duplicate", 1),  # created, no state yet
        (Outcome.RESOLVED, Running(), "started", 2),  # closed: never suppresses
        (Outcome.OPEN, DOWN, "pending", 1),
        (None, DOWN, "pending", 1),
    ],
    ids=lambda v: (
        v.name if isinstance(v, Outcome | State) else type(v).__name__ if isinstance(v, Exception) else str(v)
    ),
)
def test_only_a_live_run_suppresses_a_new_alert(
    outbox: Outbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    incident: Outcome | None,
    run: State | Exception | None,
    state: str,
    runs: int,
) -> None:
    asked: list[str] = []

    def read_run(run_id: str) -> Any:
        asked.append(run_id)
        if isinstance(run, Exception):
            raise run
        return types.SimpleNamespace(id=run_id, state=run, created=utcnow())

    monkeypatch.setattr("llmedic.receiver.dispatcher.read_run", read_run)
    fake = FakePrefect()
    d = dispatcher(outbox, tmp_path, fake)
    c = client(outbox)
    c.post("/alerts/alertmanager", json=am_body(am_alert()))
    assert d.drain_once() == 1 and outbox.rows()[0].flow_run_id == "run-1"
    if incident is not None:
        open_incident(d.store, "run-1", incident)
    c.post(
        "/alerts/alertmanager",
        json=am_body(am_alert(starts="2026-11-24T11:00:00Z")),
    )
    d.drain_once()
    newest = outbox.rows()[0]
    assert (newest.state, len(fake.runs)) == (state, runs)
    assert asked == ([] if incident == Outcome.RESOLVED else ["run-1"])
    if state == "pending":
        assert (newest.attempts, newest.error) == (
            1,
            "cannot tell whether run run-1 of this target is live (API down, or never started)",
        )


@pytest.mark.fault(
    tried="a run that is never picked up (no runner or worker) while more alerts for its target arrive",
    survives="after 10 minutes Scheduled/Pending the later alerts are no longer swallowed as duplicates: "
    "they stay pending, retried, and end dead with a notice",
)
@pytest.mark.parametrize(
    ("run", "minutes", "state"),
    [
        (Scheduled(), 5, "duplicate"),
        (Scheduled(), 11, "pending"),
        (Pending(), 11, "pending"),
        (Running(), 60, "duplicate"),
    ],
)
def test_a_run_that_never_starts_stops_suppressing(
    outbox: Outbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run: State, minutes: int, state: str
) -> None:
    created = utcnow() - timedelta(minutes=minutes)
    monkeypatch.setattr(
        "llmedic.receiver.dispatcher.read_run",
        lambda run_id: types.SimpleNamespace(id=run_id, state=run, created=created),
    )
    d = dispatcher(outbox, tmp_path, FakePrefect())
    c = client(outbox)
    c.post("/alerts/alertmanager", json=am_body(am_alert()))
    d.drain_once()
    c.post("/alerts/alertmanager", json=am_body(am_alert(starts="2026-11-24T11:00:00Z")))
    d.drain_once()
    assert outbox.rows()[0].state == state


@pytest.mark.fault(
    tried="a team webhook that hangs while the dispatcher throttles a target",
    survives="the next alert's run starts at once; the notification is still delivered afterwards",
)
def test_a_hanging_notification_does_not_hold_back_dispatch(outbox: Outbox, tmp_path: Path) -> None:
    fake = FakePrefect()
    release = threading.Event()
    sent: list[str] = []

    def hanging(env: EnvironmentFile, team: Team, text: str) -> str:
        release.wait(30)
        sent.append(text)
        return "delivered"

    d = Dispatcher(
        outbox,
        IncidentStore(tmp_path),
        dispatcher(outbox, tmp_path, fake, budget=1).env,
        dispatch=fake,
        notify=hanging,
    )
    d.liveness = lambda run_id: "ended"  # type: ignore[method-assign]
    c = client(outbox)
    c.post("/alerts/alertmanager", json=am_body(am_alert(starts="2026-11-24T10:00:00Z")))
    c.post("/alerts/alertmanager", json=am_body(am_alert(starts="2026-11-24T11:00:00Z")))
    c.post("/alerts/alertmanager", json=am_body(am_alert(instance="127.0.0.1:8109")))
    assert d.drain_once() == 3  # had it waited for the webhook, `sent` would not be empty below
    assert [r.state for r in reversed(outbox.rows())] == ["started", "throttled", "started"]
    assert sent == [] and not d.wait_for_notifications(0.05)
    release.set()
    assert d.wait_for_notifications(10)
    assert len(sent) == 1 and sent[0].startswith("[llmedic] [throttled] latency on 127.0.0.1:8101")
