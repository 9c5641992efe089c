from datetime import UTC, datetime
from typing import Any

import pytest

from llmedic.alerts import Alert, labels_fingerprint, parse_alertmanager, parse_generic, parse_grafana
from llmedic.catalog import AnomalyType
from llmedic.config import AlertRule
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
            _am(status="burning"),
            "alertmanager payload: 1 problem\n  alertmanager payload: alerts[0].status: Input should be 'firing' or 'resolved' (got 'burning')",
            id="status",
        ),
        pytest.param(
            _am(labels={"alertname": "X", "severity": "critical"}, fingerprint=""),
            "alerts[0]: no target label",
            id="no-target",
        ),
        pytest.param(
            _am(labels={**LABELS, "anomaly": "slowness"}),
            "alerts[0].labels.anomaly: unknown anomaly type 'slowness'",
            id="anomaly",
        ),
        pytest.param(
            _am(labels={**LABELS, "instance": "host; rm -rf /"}),
            "alerts[0]: 1 problem\n  alerts[0]: target: String should match pattern",
            id="unsafe-target",
        ),
    ],
)
def test_bad_alertmanager_bodies(body: dict[str, Any], message: str) -> None:
    with pytest.raises(AlertPayloadError) as exc:
        parse_alertmanager(body, RULES)
    assert exc.value.message.startswith(message)


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
