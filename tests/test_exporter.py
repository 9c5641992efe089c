"""The incident exporter on the receiver's /metrics: exact figures from a store of known incidents,
served through the real receiver app."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from llmedic.alerts import Alert
from llmedic.catalog import AnomalyType, anomaly_info
from llmedic.exporter import IncidentCollector
from llmedic.incident import Incident, Outcome, utcnow
from llmedic.receiver.app import ReceiverAuth, ReceiverMetrics, create_receiver_app
from llmedic.receiver.outbox import Outbox
from llmedic.store.incidents import IncidentStore


def incident(
    n: int,
    anomaly: AnomalyType,
    outcome: Outcome,
    *,
    minutes: float | None = None,
    waiting_since: datetime | None = None,
    escalated: bool = False,
    now: datetime | None = None,
) -> Incident:
    info = anomaly_info(anomaly)
    opened = (now or utcnow()) - timedelta(hours=2)
    return Incident(
        id=f"inc-{n}",
        anomaly=anomaly,
        category=info.category,
        team=info.team,
        title=info.title,
        target="sandbox-0",
        alert=Alert(source="manual", anomaly=anomaly, target="sandbox-0", starts_at=opened),
        opened_at=opened,
        closed_at=opened + timedelta(minutes=minutes) if minutes is not None else None,
        outcome=outcome,
        escalated=escalated,
        pending_approval=(
            {"action": "restart_instance", "requested_at": waiting_since.isoformat()}
            if waiting_since
            else None
        ),
    )


def store_of(now: datetime) -> list[Incident]:
    """Six incidents; the oldest approval has waited 30 minutes at ``now``."""
    return [
        incident(1, AnomalyType.LATENCY, Outcome.RESOLVED, minutes=4, now=now),
        incident(2, AnomalyType.LATENCY, Outcome.RESOLVED, minutes=6, now=now),
        incident(3, AnomalyType.LATENCY, Outcome.FALSE_POSITIVE, minutes=1, now=now),
        incident(4, AnomalyType.GPU_FAULT, Outcome.OPEN, waiting_since=now - timedelta(minutes=30), now=now),
        incident(5, AnomalyType.MEMORY_LEAK, Outcome.OPEN, waiting_since=now - timedelta(minutes=5), now=now),
        incident(6, AnomalyType.DATA_MISSING, Outcome.ESCALATED, minutes=2, escalated=True, now=now),
    ]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        if fam.name.startswith("llmedic_") and not fam.name.startswith("llmedic_receiver")
        for s in fam.samples
    }


def test_incident_figures_on_the_receiver_metrics(tmp_path: Path) -> None:
    store = IncidentStore(tmp_path)
    for inc in store_of(utcnow()):
        store.save(inc)
    outbox = Outbox(tmp_path / "llmedic.db")
    app = create_receiver_app(outbox, ReceiverAuth(bearer="t"), [], metrics=ReceiverMetrics(outbox, store))
    got = samples(TestClient(app).get("/metrics").text)
    oldest = got.pop(("llmedic_approval_oldest_wait_seconds", ()))
    assert 30 * 60 <= oldest < 30 * 60 + 60
    assert got == {
        ("llmedic_incidents", (("anomaly", "data_missing"), ("outcome", "escalated"))): 1,
        ("llmedic_incidents", (("anomaly", "gpu_fault"), ("outcome", "open"))): 1,
        ("llmedic_incidents", (("anomaly", "latency"), ("outcome", "false_positive"))): 1,
        ("llmedic_incidents", (("anomaly", "latency"), ("outcome", "resolved"))): 2,
        ("llmedic_incidents", (("anomaly", "memory_leak"), ("outcome", "open"))): 1,
        ("llmedic_approvals_pending", (("anomaly", "gpu_fault"),)): 1,
        ("llmedic_approvals_pending", (("anomaly", "memory_leak"),)): 1,
        ("llmedic_incidents_escalated", (("anomaly", "data_missing"),)): 1,
        ("llmedic_time_to_recover_seconds_count", (("anomaly", "latency"),)): 2,
        ("llmedic_time_to_recover_seconds_sum", (("anomaly", "latency"),)): 600,
    }


def test_an_empty_store_reports_no_wait_and_the_cache_holds(tmp_path: Path) -> None:
    store = IncidentStore(tmp_path)
    collector = IncidentCollector(store, cache_seconds=3600)
    first = {m.name: [s.value for s in m.samples] for m in collector.collect()}
    assert first["llmedic_approval_oldest_wait_seconds"] == [0.0]
    assert all(v == [] for k, v in first.items() if k != "llmedic_approval_oldest_wait_seconds")
    store.save(store_of(utcnow())[0])  # inside the cache window: not read again until it expires
    assert {m.name: len(m.samples) for m in collector.collect()}["llmedic_incidents"] == 0
    collector.cache_seconds = 0
    assert {m.name: len(m.samples) for m in collector.collect()}["llmedic_incidents"] == 1
