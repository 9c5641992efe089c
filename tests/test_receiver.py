"""The receiver in-process: auth, validation, routing, outbox, dispatcher decisions, metrics, fuzz."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from llmedic.alerts import Alert
from llmedic.catalog import AnomalyType
from llmedic.config import AlertRule, EnvironmentFile, ReceiverConfig, Settings
from llmedic.errors import ConfigError, OrchestrationError, OutboxError
from llmedic.incident import IncidentStore
from llmedic.orchestration import Dispatched
from llmedic.receiver.app import ReceiverAuth, create_receiver_app, openapi
from llmedic.receiver.dispatcher import Dispatcher
from llmedic.receiver.outbox import Outbox
from llmedic.receiver.server import auth_from_settings, ensure_token_file

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
    return Outbox(tmp_path / "outbox.sqlite3")


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
    return Dispatcher(outbox, IncidentStore(tmp_path / "incidents"), env, dispatch=fake)


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
    assert len(IncidentStore(tmp_path / "incidents").resolved_notices("run-1")) == 1
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
