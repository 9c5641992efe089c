"""The blast-radius limit (``llmedic/limits.py``): the share of a service's instances drained,
restarted or reset within the window, counted over every incident in the state store, and the
check-and-record that two racing flow runs cannot both pass (SQLite and PostgreSQL)."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from llmedic.config import InstanceConfig, LimitsConfig, ServiceConfig
from llmedic.errors import BlastRadiusExceeded
from llmedic.limits import BlastRadius
from llmedic.store import Store

T0 = datetime(2026, 11, 1, 10, tzinfo=UTC)


def service(n: int, name: str = "pharma-qa") -> ServiceConfig:
    return ServiceConfig(
        name=name,
        instances=[InstanceConfig(name=f"i{k}", url=f"http://127.0.0.1:{9000 + k}") for k in range(n)],
        standby=[InstanceConfig(name="spare", url="http://127.0.0.1:8999")],
    )


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "postgres":
        return Store.open(request.getfixturevalue("postgres_url"))
    return Store.open(str(tmp_path / "llmedic.db"))


# (instances in the service, limit, [(incident, instances, minutes after T0)], granted each)
CASES = [
    ("one of three", 3, 0.5, [("a", ["i0"], 0)], [True]),
    ("two of three is over half", 3, 0.5, [("a", ["i0"], 0), ("b", ["i1"], 1)], [True, False]),
    (
        "two of four is half, allowed",
        4,
        0.5,
        [("a", ["i0"], 0), ("b", ["i1"], 1), ("c", ["i2"], 2)],
        [True, True, False],
    ),
    (
        "the same instance again is free",
        3,
        0.5,
        [("a", ["i0"], 0), ("b", ["i0"], 1), ("a", ["i0"], 2)],
        [True, True, True],
    ),
    ("outside the window it no longer counts", 3, 0.5, [("a", ["i0"], 0), ("b", ["i1"], 6)], [True, True]),
    ("just inside the window it does", 3, 0.5, [("a", ["i0"], 0), ("b", ["i1"], 4.9)], [True, False]),
    ("a node drain of two at once", 3, 0.5, [("a", ["i0", "i1"], 0)], [False]),
    ("a limit of one allows everything", 3, 1.0, [("a", ["i0", "i1"], 0), ("b", ["i2"], 1)], [True, True]),
    ("a single-instance service: its one instance is all of it", 1, 0.5, [("a", ["i0"], 0)], [False]),
    (
        "a standby counts against the primaries",
        3,
        0.5,
        [("a", ["spare"], 0), ("b", ["i0"], 1)],
        [True, False],
    ),
    (
        "a refused claim records nothing",
        3,
        0.5,
        [("a", ["i0"], 0), ("b", ["i1"], 1), ("c", ["i0"], 2)],
        [True, False, True],
    ),
]


@pytest.mark.parametrize(("case", "n", "limit", "claims", "granted"), CASES, ids=[c[0] for c in CASES])
def test_the_share_acted_within_the_window(
    store: Store,
    case: str,
    n: int,
    limit: float,
    claims: list[tuple[str, list[str], float]],
    granted: list[bool],
) -> None:
    ledger = BlastRadius(store, LimitsConfig(max_share_acted=limit, window_minutes=5))
    svc = service(n)
    got: list[bool] = []
    for incident, names, minutes in claims:
        try:
            ledger.claim(
                svc, names, incident_id=incident, action="drain_instance", now=T0 + timedelta(minutes=minutes)
            )
            got.append(True)
        except BlastRadiusExceeded:
            got.append(False)
    assert got == granted


def test_the_refusal_names_the_limit_the_count_and_the_window(store: Store) -> None:
    ledger = BlastRadius(store, LimitsConfig())
    svc = service(3)
    first = ledger.claim(svc, ["i0"], incident_id="latency-1", action="drain_instance", now=T0)
    assert (first.acted, first.total, round(first.share, 3)) == (("i0",), 3, 0.333)
    with pytest.raises(BlastRadiusExceeded) as exc:
        ledger.claim(svc, ["i1"], incident_id="latency-2", action="restart_instance", now=T0)
    assert exc.value.code == "blast-radius-exceeded"
    assert exc.value.message == (
        "blast-radius limit: restart_instance on i1 would make 2 of 3 instances of service 'pharma-qa' "
        "acted on within 5 min (67%), above limits.max_share_acted 0.5; already acted on: "
        "i0 (drain_instance, incident latency-1)"
    )
    assert exc.value.hint is not None and exc.value.hint.startswith("a human decides")
    assert [(a.instance, a.incident_id) for a in ledger.acts("pharma-qa", since=T0 - timedelta(1))] == [
        ("i0", "latency-1")
    ]


def test_services_are_counted_apart(store: Store) -> None:
    ledger = BlastRadius(store, LimitsConfig())
    ledger.claim(service(3, "a"), ["i0"], incident_id="x", action="drain_instance", now=T0)
    ledger.claim(service(3, "b"), ["i1"], incident_id="y", action="drain_instance", now=T0)
    with pytest.raises(BlastRadiusExceeded):
        ledger.claim(service(3, "a"), ["i2"], incident_id="z", action="drain_instance", now=T0)


FLEET = [
    ("alone: every instance in turn", [], True),
    ("its own earlier acts do not count", [("self", "i0")], True),
    ("another incident acted: refused", [("other", "i2")], False),
]


@pytest.mark.parametrize(("case", "before", "granted"), FLEET, ids=[c[0] for c in FLEET])
def test_a_rolling_fix_counts_only_other_incidents(
    store: Store, case: str, before: list[tuple[str, str]], granted: bool
) -> None:
    ledger = BlastRadius(store, LimitsConfig())
    svc = service(3)
    for incident, name in before:
        ledger.claim(svc, [name], incident_id=incident, action="drain_instance", now=T0)
    try:
        ledger.claim(
            svc, ["i0", "i1", "i2"], incident_id="self", action="rolling_restart", fleet=True, now=T0
        )
        got = True
    except BlastRadiusExceeded as exc:
        assert "other incidents acted on 1 of its 3 instances" in exc.message
        got = False
    assert got is granted


def _race(url: str, instance: str, barrier: threading.Barrier, results: list[str]) -> None:
    ledger = BlastRadius(Store.open(url), LimitsConfig())
    barrier.wait()
    try:
        ledger.claim(service(3), [instance], incident_id=f"inc-{instance}", action="drain_instance", now=T0)
        results.append(f"{instance}: granted")
    except BlastRadiusExceeded:
        results.append(f"{instance}: refused")


@pytest.mark.fault(
    tried="two flow runs (threads) racing for the last slot of the blast-radius limit, 20 times",
    survives="exactly one gets it every time: the check and the record are one transaction",
)
def test_two_threads_racing_for_the_last_slot(store: Store) -> None:
    url = store.url
    for round_ in range(20):
        results: list[str] = []
        barrier = threading.Barrier(2)
        names = [f"a{round_}", f"b{round_}"]
        threads = [threading.Thread(target=_race, args=(url, n, barrier, results)) for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(r.split(": ")[1] for r in results) == ["granted", "refused"], results
        store.engine.dispose()
        with store.write() as conn:
            conn.exec_driver_sql("DELETE FROM blast_radius")


def _race_process(
    url: str, instance: str, barrier: threading.Barrier, out: multiprocessing.Queue[str]
) -> None:
    results: list[str] = []
    _race(url, instance, barrier, results)
    out.put(results[0])


@pytest.mark.fault(
    tried="two processes (two flow-run processes, each its own engine) racing for the last slot",
    survives="exactly one gets it; the other is refused citing the limit",
)
def test_two_processes_racing_for_the_last_slot(store: Store) -> None:
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(2)
    out: multiprocessing.Queue[str] = spawn.Queue()
    procs = [spawn.Process(target=_race_process, args=(store.url, n, barrier, out)) for n in ("i0", "i1")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    got = sorted(out.get(timeout=5).split(": ")[1] for _ in procs)
    assert got == ["granted", "refused"]
    assert len(BlastRadius(store, LimitsConfig()).acts("pharma-qa", since=T0 - timedelta(1))) == 1
