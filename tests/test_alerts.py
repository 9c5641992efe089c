import json
from datetime import UTC, datetime
from typing import Any

import pytest

from llmedic.alerts import (
    Alert,
    labels_fingerprint,
    parse_alertmanager,
    parse_generic,
    parse_grafana,
    read_alertmanager,
    read_generic,
    target_matcher,
)
from llmedic.catalog import AnomalyType
from llmedic.config import AlertRule, EnvironmentFile
from llmedic.errors import AlertPayloadError

LABELS = {"alertname": "VLLMHighP99Latency", "instance": "10.0.0.5:8000", "severity": "critical"}
AM_BODY: dict[str, Any] = {
    "version": "4",
    "groupKey": '{}/{severity="critical"}:{alertname="VLLMHighP99Latency"}',
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "llmedic",
    "groupLabels": {"alertname": "VLLMHighP99Latency"},
    "commonLabels": {"severity": "critical"},
    "commonAnnotations": {},
    "externalURL": "http://am:9093",
    "notification_reason": "first notification",  # v0.32+
    "routeLabels": {"team": "ml"},  # v0.34+
    "alerts": [
        {
            "status": "firing",
            "labels": LABELS,
            "annotations": {"summary": "p99 above 2s"},
            "startsAt": "2026-11-24T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prom:9090/graph",
            "fingerprint": "a1b2c3d4e5f60718",
        },
        {
            "status": "resolved",
            "labels": {**LABELS, "instance": "10.0.0.6:8000"},
            "annotations": {},
            "startsAt": "2026-11-24T09:00:00Z",
            "endsAt": "2026-11-24T09:30:00Z",
            "fingerprint": "",
        },
    ],
}
RULES = [AlertRule(match={"alertname": "VLLMHighP99Latency"}, anomaly=AnomalyType.LATENCY)]
ENV = EnvironmentFile.model_validate(
    {
        "services": [
            {
                "name": "chat",
                "instances": [
                    {"name": "sandbox-0", "url": "http://127.0.0.1:8100"},
                    {"name": "gpu-1", "url": "http://gpu-节点-1:8000"},
                ],
            }
        ],
        "datasets": {"kb": {"path": "/tmp/kb.csv", "consumers": ["chat"]}},
        "network": {"links": {"upstream": {"url": "http://10.0.0.9:9000"}}},
    }
)


def test_alertmanager_group_becomes_one_alert_per_entry() -> None:
    first, second = parse_alertmanager(AM_BODY, RULES)
    assert first.model_dump() == {
        "source": "alertmanager",
        "status": "firing",
        "anomaly": AnomalyType.LATENCY,
        "alertname": "VLLMHighP99Latency",
        "target": "10.0.0.5:8000",
        "severity": "critical",
        "labels": LABELS,
        "annotations": {"summary": "p99 above 2s"},
        "starts_at": datetime(2026, 11, 24, 10, tzinfo=UTC),
        "ends_at": None,  # Alertmanager's zero time means "still firing"
        "fingerprint": "a1b2c3d4e5f60718",
        "group_key": '{}/{severity="critical"}:{alertname="VLLMHighP99Latency"}',
        "generator_url": "http://prom:9090/graph",
    }
    assert (second.status, second.target, second.ends_at) == (
        "resolved",
        "10.0.0.6:8000",
        datetime(2026, 11, 24, 9, 30, tzinfo=UTC),
    )
    assert second.fingerprint == labels_fingerprint({**LABELS, "instance": "10.0.0.6:8000"})


def test_anomaly_label_wins_over_rules_and_unrouted_is_kept() -> None:
    body = {**AM_BODY, "alerts": [{**AM_BODY["alerts"][0], "labels": {**LABELS, "anomaly": "gpu-fault"}}]}
    assert parse_alertmanager(body, RULES)[0].anomaly == AnomalyType.GPU_FAULT
    assert parse_alertmanager(AM_BODY, [])[0].anomaly is None


def test_fingerprint_is_prometheus_fnv1a() -> None:
    assert labels_fingerprint({}) == "cbf29ce484222325"  # FNV-1a 64 offset basis: empty label set
    assert labels_fingerprint({"a": "1", "b": "2"}) == labels_fingerprint({"b": "2", "a": "1"})
    assert labels_fingerprint({"a": "1"}) != labels_fingerprint({"a": "2"})


def test_dedup_and_idempotency_keys() -> None:
    alert = parse_alertmanager(AM_BODY, RULES)[0]
    assert alert.dedup_key == "latency:10.0.0.5:8000:a1b2c3d4e5f60718"
    assert alert.idempotency_key == "latency:10.0.0.5:8000:a1b2c3d4e5f60718:2026-11-24T10:00:00+00:00"


def _am(**alert: Any) -> dict[str, Any]:
    return {**AM_BODY, "alerts": [{**AM_BODY["alerts"][0], **alert}]}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(
            {**AM_BODY, "version": "3"}, "alertmanager payload version '3' is not supported", id="version"
        ),
        pytest.param(
            {**AM_BODY, "alerts": []},
            "alertmanager payload: 1 problem\n  alertmanager payload: alerts: List should have at least 1 item after validation, not 0",
            id="no-alerts",
        ),
        pytest.param(
            [AM_BODY],
            "alertmanager payload: 1 problem\n  alertmanager payload: (top level): Input should be a valid dictionary or instance of AlertmanagerGroup",
            id="a-list",
        ),
        pytest.param(
            {k: v for k, v in AM_BODY.items() if k != "alerts"},
            "alertmanager payload: 1 problem\n  alertmanager payload: alerts: Field required",
            id="no-alerts-list",
        ),
    ],
)
def test_a_body_that_is_not_a_v4_webhook_is_refused_whole(body: Any, message: str) -> None:
    with pytest.raises(AlertPayloadError) as exc:
        read_alertmanager(body, RULES)
    assert exc.value.message == message


@pytest.mark.parametrize(
    ("alert", "problem"),
    [
        pytest.param(
            {"status": "burning"},
            "status: Input should be 'firing' or 'resolved' (got 'burning')",
            id="status",
        ),
        pytest.param(
            {"labels": {"alertname": "X", "severity": "critical"}, "fingerprint": ""},
            "no target label",
            id="no-target",
        ),
        pytest.param(
            {"labels": {**LABELS, "anomaly": "slowness"}},
            "labels.anomaly: unknown anomaly type 'slowness'",
            id="anomaly",
        ),
        pytest.param(
            {"startsAt": "yesterday"},
            "startsAt: Input should be a valid datetime or date, input is too short (got 'yesterday')",
            id="starts-at",
        ),
        pytest.param(
            {"labels": {**LABELS, "note": "x" * 4097}},
            "labels: label 'note' is longer than 4096 characters",
            id="label-too-long",
        ),
        pytest.param(
            {"labels": {**LABELS, "instance": "bidi\u202egnp.exe"}},
            "target: target has a control or invisible character (got 'bidi\\u202egnp.exe')",
            id="invisible-target",
        ),
        pytest.param(
            {"labels": {**LABELS, "instance": "h" * 257}},
            "target: String should have at most 256 characters (got 'hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh...)",
            id="target-too-long",
        ),
    ],
)
def test_each_alert_of_a_group_is_judged_alone(alert: dict[str, Any], problem: str) -> None:
    bad = {**AM_BODY["alerts"][0], **alert}
    body = {**AM_BODY, "alerts": [bad, AM_BODY["alerts"][0]]}
    first, second = read_alertmanager(body, RULES)
    assert (first.alert, first.problem, first.where) == (None, problem, "alerts[0]")
    assert json.loads(first.raw) == bad  # kept as received
    assert second.problem is None and second.alert == parse_alertmanager(AM_BODY, RULES)[0]
    with pytest.raises(AlertPayloadError) as exc:  # `llmedic alert send` acts on a body as a whole
        parse_alertmanager(body, RULES)
    assert exc.value.message == f"alerts[0]: {problem}"


@pytest.mark.parametrize(
    "target",
    ["x; rm -rf /", "$(reboot)", "gpu-节点-1:8000", "サーバー", "' OR 1=1 --", "../../etc/passwd"],
)
def test_a_target_in_any_script_or_with_metacharacters_is_data(target: str) -> None:
    body = {**AM_BODY, "alerts": [{**AM_BODY["alerts"][0], "labels": {**LABELS, "instance": target}}]}
    (got,) = read_alertmanager(body, RULES)
    assert got.alert is not None and got.alert.target == target
    assert got.alert.labels["instance"] == target and json.loads(got.raw)["labels"]["instance"] == target
    assert target in got.raw  # stored as sent, not \u-escaped


@pytest.mark.parametrize(
    ("env", "target", "known"),
    [
        (ENV, "sandbox-0", True),  # instance name
        (ENV, "127.0.0.1:8100", True),  # host:port
        (ENV, "http://127.0.0.1:8100", True),  # URL
        (ENV, "gpu-节点-1:8000", True),  # an internationalised host as written ...
        (ENV, "xn--gpu--1-6f8nh25i:8000", True),  # ... and as the URL stores it
        (ENV, "chat", True),  # service
        (ENV, "kb", True),  # dataset
        (ENV, "upstream", True),  # network link
        (ENV, "127.0.0.1:8100; rm -rf /", False),
        (ENV, "sandbox", False),
        (ENV, "gpu-节点-2:8000", False),
        (EnvironmentFile(), "sandbox-0", False),
    ],
)
def test_targets_match_names_of_the_environment_file_exactly(
    env: EnvironmentFile, target: str, known: bool
) -> None:
    assert target_matcher(env)(target) is known


def test_grafana_body() -> None:
    body = {
        "version": "1",
        "status": "firing",
        "orgId": 1,
        "state": "alerting",
        "title": "[FIRING:1] latency",
        "message": "...",
        "groupKey": "g",
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "LLMLatency",
                    "anomaly": "latency",
                    "instance": "a:1",
                    "__grafana_x": "y",
                },
                "annotations": {"summary": "slow"},
                "startsAt": "2026-11-24T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "values": {"A": 2.7},
                "dashboardURL": "http://grafana/d/1",
                "ruleUID": "abc",
            }
        ],
    }
    (alert,) = parse_grafana(body)
    assert (alert.source, alert.anomaly, alert.target, alert.summary) == (
        "grafana",
        AnomalyType.LATENCY,
        "a:1",
        "slow",
    )


@pytest.mark.parametrize(
    ("body", "count", "anomalies"),
    [
        ({"anomaly": "latency", "target": "sandbox-0"}, 1, [AnomalyType.LATENCY]),
        (
            [{"anomaly": "latency", "target": "a"}, {"target": "b", "alertname": "VLLMHighP99Latency"}],
            2,
            [AnomalyType.LATENCY] * 2,
        ),
    ],
)
def test_generic_form(body: Any, count: int, anomalies: list[AnomalyType]) -> None:
    alerts = parse_generic(body, RULES)
    assert len(alerts) == count and [a.anomaly for a in alerts] == anomalies
    assert all(isinstance(a, Alert) and a.source == "generic" for a in alerts)


def test_generic_rejects_unknown_fields() -> None:
    with pytest.raises(AlertPayloadError) as exc:
        parse_generic({"target": "a", "anomoly": "latency"})
    assert "anomoly: Extra inputs are not permitted" in exc.value.message


@pytest.mark.parametrize(
    ("body", "problems"),
    [
        (
            [{"anomaly": "latency", "target": "a"}, {"target": "b", "anomoly": "x"}],
            [None, "anomoly: Extra inputs are not permitted"],
        ),
        (
            [{"anomaly": "latency", "target": "a"}, "just text"],
            [
                None,
                "(top level): Input should be a valid dictionary or instance of GenericAlert (got 'just text')",
            ],
        ),
        ([{"anomaly": "nope", "target": "a"}], ["anomaly: unknown anomaly type 'nope'"]),
    ],
)
def test_generic_list_items_are_judged_alone(body: list[Any], problems: list[str | None]) -> None:
    assert [r.problem for r in read_generic(body, RULES)] == problems


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "a generic alert body must be an alert object or a non-empty list of them, not []"),
        ("x", "a generic alert body must be an alert object or a non-empty list of them, not 'x'"),
        ({"anomaly": "latency"}, "alert: target: Field required"),
    ],
)
def test_a_generic_body_that_is_no_alert_is_refused_whole(body: Any, message: str) -> None:
    with pytest.raises(AlertPayloadError) as exc:
        read_generic(body, RULES)
    assert exc.value.message == message
