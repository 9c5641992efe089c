"""One incident per cause (issue 16, requirement 3): alerts over real HTTP into the receiver, the
dispatcher grouping them per (anomaly type, service), joining a service's open incident, and a
grouped run that turns out instance-level releasing the others."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmedic.alerts import Alert
from llmedic.catalog import AnomalyType, anomaly_info
from llmedic.config import EnvironmentFile, Settings
from llmedic.incident import Incident, utcnow
from llmedic.receiver.app import ReceiverAuth, create_receiver_app
from llmedic.receiver.dispatcher import Dispatcher
from llmedic.receiver.grouping import GROUPED_LABEL, STAND_IN_LABEL, after_assess
from llmedic.receiver.outbox import Outbox
from llmedic.store.incidents import IncidentStore
from tests.test_receiver import TOKEN, FakePrefect, serving

WINDOW = 2.0  # wide enough for three HTTP posts on a loaded machine


def env(window: float = WINDOW) -> EnvironmentFile:
    return EnvironmentFile.model_validate(
        {
            "services": [
                {
                    "name": "chat",
                    "instances": [
                        {"name": f"chat-{i}", "url": f"http://127.0.0.1:81{i:02d}"} for i in range(3)
                    ],
                },
                {"name": "other", "instances": [{"name": "other-0", "url": "http://127.0.0.1:8200"}]},
            ],
            "receiver": {"group_window_seconds": window},
        }
    )


@pytest.fixture(params=["sqlite", "postgres"])
def outbox(request: pytest.FixtureRequest, tmp_path: Path) -> Outbox:
    if request.param == "postgres":
        return Outbox(url=request.getfixturevalue("postgres_url"))
    return Outbox(tmp_path / "llmedic.db")


def alert(target: str, anomaly: str = "latency", alertname: str = "VLLMHighP99Latency") -> dict[str, Any]:
    return {
        "status": "firing",
        "labels": {"alertname": alertname, "anomaly": anomaly, "target": target},
        "annotations": {"summary": "slow"},
        "startsAt": "2026-11-24T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
    }


def post(url: str, *alerts: dict[str, Any]) -> None:
    for a in alerts:  # one body per alert, as Alertmanager sends per-instance groups
        resp = httpx.post(
            f"{url}/alerts/alertmanager",
            json={"version": "4", "status": "firing", "groupKey": "g", "alerts": [a]},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )
        assert resp.status_code == 202, resp.text


def incident_for(store: IncidentStore, run: str, dispatched: Alert, scope: str = "") -> Incident:
    """The incident the run opens (what tasks/detect.py records for the dispatched alert)."""
    info = anomaly_info(AnomalyType.LATENCY)
    inc = Incident(
        id=f"latency-{run}",
        anomaly=AnomalyType.LATENCY,
        category=info.category,
        team=info.team,
        title=info.title,
        target=dispatched.target,
        service="chat",
        alert=dispatched,
        flow_run_id=run,
        opened_at=utcnow(),
        scope=scope,
    )
    store.save(inc)
    return inc


class Recording(FakePrefect):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[Alert] = []

    def __call__(self, alerts: list[Alert]) -> list[Any]:
        self.sent.extend(alerts)
        return super().__call__(alerts)


def drain(d: Dispatcher, rounds: int = 1) -> None:
    for _ in range(rounds):
        d.drain_once()
        time.sleep(WINDOW + 0.1)
    d.drain_once()


@pytest.mark.fault(
    tried="one fleet-wide cause, Prometheus firing one alert per instance (three bodies within the "
    "grouping window), beside alerts of another type and of another service",
    survives="one service-scope run for the three (the others joined, listed on its incident with key "
    "and instance); the other anomaly type and the other service get runs of their own",
)
@pytest.mark.parametrize(
    ("alerts", "window", "runs", "targets", "joined"),
    [
        (["chat-0", "chat-1", "chat-2"], WINDOW, 1, ["chat"], ["chat-1", "chat-2"]),
        (["chat-0", "chat-1", "chat-2"], 0, 3, ["chat-0", "chat-1", "chat-2"], []),  # 0 disables
        (["chat-0"], WINDOW, 1, ["chat-0"], []),  # alone in its window: an instance run
        (["chat-0", "other-0"], WINDOW, 2, ["chat-0", "other-0"], []),  # another service
        (["chat-0", "leak:chat-1"], WINDOW, 2, ["chat-0", "chat-1"], []),  # another anomaly type
        (["chat-0", "chat-1", "leak:chat-2"], WINDOW, 2, ["chat", "chat-2"], ["chat-1"]),
    ],
    ids=["fleet", "window-0", "alone", "two-services", "two-types", "mixed"],
)
def test_alerts_about_one_service_start_one_run(
    outbox: Outbox,
    tmp_path: Path,
    alerts: list[str],
    window: float,
    runs: int,
    targets: list[str],
    joined: list[str],
) -> None:
    fake = Recording()
    store = IncidentStore(tmp_path)
    d = Dispatcher(outbox, store, env(window), dispatch=fake)
    d.liveness = lambda run_id: "live"  # type: ignore[method-assign, assignment]
    app = create_receiver_app(outbox, ReceiverAuth(bearer=TOKEN), [])
    with serving(app) as url:
        post(
            url,
            *(alert(t.split(":")[1], "memory_leak") if t.startswith("leak:") else alert(t) for t in alerts),
        )
    drain(d)
    assert len(fake.runs) == runs
    assert sorted(a.target for a in fake.sent) == sorted(targets)
    states = sorted(r.state for r in outbox.rows())
    assert states == sorted(["started"] * runs + ["joined"] * len(joined))
    grouped = [a for a in fake.sent if a.target == "chat"]
    if grouped:
        (svc,) = grouped
        assert svc.labels[GROUPED_LABEL] == ",".join(["chat-0", *joined])
        assert svc.labels[STAND_IN_LABEL] == "chat-0"
        run = fake.runs[svc.idempotency_key]
        incident_for(store, run, svc)
        assert [(j.target, j.alertname) for j in store.load(f"latency-{run}").joined_alerts] == [
            (t, "VLLMHighP99Latency") for t in joined
        ]
        assert all(r.flow_run_id == run for r in outbox.rows() if r.state == "joined")


@pytest.mark.fault(
    tried="alerts about other instances arriving while a fleet-wide incident of their service is open "
    "(and while an instance-level one is), an alert of another type among them",
    survives="the fleet-wide incident takes them in (joined, recorded, no run, no approval request); "
    "an instance-level incident never does, nor one of another anomaly type",
)
@pytest.mark.parametrize(
    ("scope", "anomaly", "state", "runs"),
    [
        ("fleet", "latency", "joined", 1),
        ("instance", "latency", "started", 2),
        ("fleet", "memory_leak", "started", 2),
    ],
)
def test_an_open_fleet_wide_incident_takes_in_its_services_alerts(
    outbox: Outbox, tmp_path: Path, scope: str, anomaly: str, state: str, runs: int
) -> None:
    fake = Recording()
    store = IncidentStore(tmp_path)
    d = Dispatcher(outbox, store, env(0), dispatch=fake)
    d.liveness = lambda run_id: "live"  # type: ignore[method-assign, assignment]
    app = create_receiver_app(outbox, ReceiverAuth(bearer=TOKEN), [])
    with serving(app) as url:
        post(url, alert("chat-0"))
        d.drain_once()
        (first,) = fake.sent
        inc = incident_for(store, "run-1", first, scope)
        after_assess(inc, store, Settings(home=tmp_path))  # what respond does right after assess
        post(url, alert("chat-2", anomaly))
        d.drain_once()
    newest = outbox.rows()[0]
    assert (newest.state, len(fake.runs)) == (state, runs)
    joined = store.load(inc.id).joined_alerts
    assert [j.target for j in joined] == (["chat-2"] if state == "joined" else [])
    keyed = [x.choice for x in store.load(inc.id).decisions if x.topic == "incident-key"]
    assert keyed == (["service"] if scope == "fleet" else [])


@pytest.mark.fault(
    tried="two instances of one service slow at once for two different instance-level reasons: their "
    "alerts grouped into one service run, whose assess finds the scope is one instance",
    survives="the other instance's alert is released from the group and gets its own run; the first "
    "incident records the release and no longer lists it as joined",
)
def test_a_grouped_run_with_an_instance_cause_releases_the_others(outbox: Outbox, tmp_path: Path) -> None:
    fake = Recording()
    store = IncidentStore(tmp_path)
    d = Dispatcher(outbox, store, env(), dispatch=fake)
    d.liveness = lambda run_id: "live"  # type: ignore[method-assign, assignment]
    app = create_receiver_app(outbox, ReceiverAuth(bearer=TOKEN), [])
    with serving(app) as url:
        post(url, alert("chat-0"), alert("chat-1"))
    drain(d)
    (svc,) = fake.sent
    inc = incident_for(store, "run-1", svc, scope="instance")
    settings = Settings(home=tmp_path, outbox_url=outbox.url) if outbox.url else Settings(home=tmp_path)
    after_assess(inc, store, settings)
    assert store.load(inc.id).joined_alerts == []
    assert [x.choice for x in store.load(inc.id).decisions if x.topic == "incident-key"] == ["instance"]
    drain(d)
    assert [a.target for a in fake.sent] == ["chat", "chat-1"]
    assert sorted(r.state for r in outbox.rows()) == ["started", "started"]
    after_assess(inc, store, settings)  # idempotent: a resumed run passes here again
    assert len(fake.sent) == 2
