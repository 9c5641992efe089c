"""The long fault suite (`make soak`; not in `make test`): the receiver under load while the Prefect
API is down for 60 s, and SIGKILLed in the middle of a storm. Each test prints what it tried and what
survived. (The short versions of these, and the other faults — Prometheus unreachable mid-flow, SSH
dropped mid-command, approval timeout, failed verification, the injection corpus, a seeded secret —
run in `make test`: see docs/faults.md.)"""

from __future__ import annotations

import itertools
import signal
import threading
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from llmedic.incident import Outcome
from llmedic.receiver.outbox import Outbox
from llmedic.store.incidents import IncidentStore
from tests.conftest import Fleet
from tests.test_receiver_e2e import TOKEN, Stack, stack  # noqa: F401 - the fixture

pytestmark = [pytest.mark.e2e, pytest.mark.soak]
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


def body(instance: str, shard: int, start: str) -> dict[str, Any]:
    labels = {
        "alertname": "VLLMHighP99Latency",
        "anomaly": "latency",
        "instance": instance,
        "shard": str(shard),
    }
    return {
        "version": "4",
        "status": "firing",
        "alerts": [
            {"status": "firing", "labels": labels, "startsAt": start, "endsAt": "0001-01-01T00:00:00Z"}
        ],
    }


def report(tried: str, survived: str) -> None:
    print(f"\n  tried:    {tried}\n  survived: {survived}")


def one_open_incident_at_a_time(s: Stack, timeout: float = 240) -> dict[str, int]:
    """Incidents per target, once all are closed; no two incidents of one target were ever open at
    the same time (a re-fire after a close may start a new one: that is a new firing)."""
    store = IncidentStore(s.home)
    deadline = time.monotonic() + timeout
    final = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
    while any(r["state_type"] not in final for r in s.flow_runs()) or any(
        i.outcome == Outcome.OPEN for i in store.all()
    ):
        assert time.monotonic() < deadline, "runs or incidents still open"
        time.sleep(1)
    by_target: dict[str, list[Any]] = {}
    for inc in store.all():
        by_target.setdefault(inc.target, []).append(inc)
    for target, incs in by_target.items():
        incs.sort(key=lambda i: i.opened_at)
        for a, b in itertools.pairwise(incs):
            assert a.closed_at is not None and a.closed_at <= b.opened_at, f"two open incidents on {target}"
    return {t: len(v) for t, v in sorted(by_target.items())}


def settle(outbox: Outbox, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while outbox.depth():
        assert time.monotonic() < deadline, Counter(r.state for r in outbox.rows(limit=100_000))
        time.sleep(0.5)


@pytest.mark.fault(
    tried="~1,200 notifications at 20/s with the Prefect API down for 60 s",
    survives="all accepted and counted; never two open incidents for one instance after recovery",
)
def test_soak_prefect_down_for_60_seconds_under_load(stack: Stack, sandbox: Fleet) -> None:  # noqa: F811
    stack.start_receiver()
    instances = [sandbox.urls[n].split("://", 1)[1] for n in ("sandbox-0", "sandbox-1", "sandbox-2")]
    codes: Counter[int] = Counter()
    sent = 0
    end = time.monotonic() + 60
    with httpx.Client(timeout=10) as client:
        while time.monotonic() < end:  # ~20 notifications a second, for 60 s, with nothing to dispatch to
            start = f"2026-11-24T10:{sent // 200 % 60:02d}:00Z"  # a new startsAt every 200: a re-fire
            resp = client.post(
                f"{stack.receiver_url}/alerts/alertmanager",
                json=body(instances[sent % 3], 0, start),
                headers=HEADERS,
            )
            codes[resp.status_code] += 1
            sent += 1
            time.sleep(0.05)
    outbox = Outbox(stack.home / "llmedic.db")
    deadline = time.monotonic() + 60
    while not all(r.attempts >= 1 for r in outbox.rows("pending", limit=100_000)):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    pending = outbox.rows("pending", limit=100_000)
    assert pending and all("cannot reach the Prefect API" in (r.error or "") for r in pending)
    stack.start_server()
    runner = stack.start_runner()
    stack.wait_deployment()
    settle(outbox)
    rows = outbox.rows(limit=100_000)
    states = Counter(r.state for r in rows)
    runs = stack.flow_runs()
    per_target = one_open_incident_at_a_time(stack)
    report(
        f"{sent} notifications over 60 s for 3 instances ({len(rows)} distinct firings) while the "
        "Prefect API was down",
        f"{codes[202]} accepted (202), {sent - codes[202]} refused; {sum(r.seen for r in rows)} counted in the "
        f"outbox; after recovery {len(runs)} runs, rows {dict(states)}; incidents per instance {per_target}, "
        "never two open at once",
    )
    assert codes == {202: sent}
    assert sum(r.seen for r in rows) == sent  # every accepted notification is accounted for
    started = [r.flow_run_id for r in rows if r.state == "started"]
    assert len(runs) == len(started) == len(set(started)) and 3 <= len(runs) <= len(rows)
    assert sum(per_target.values()) == len(runs)
    from llmedic.orchestration import stop_runner

    stop_runner(runner)


@pytest.mark.fault(
    tried="2,000 alerts from 4 senders, receiver SIGKILLed halfway, the rest retried",
    survives="every alert in the outbox exactly once and dispatched; no run started twice",
)
def test_soak_receiver_sigkilled_mid_storm(stack: Stack, sandbox: Fleet) -> None:  # noqa: F811
    stack.start_server()
    runner = stack.start_runner()
    stack.wait_deployment()
    receiver = stack.start_receiver()
    instances = [sandbox.urls[n].split("://", 1)[1] for n in ("sandbox-0", "sandbox-1", "sandbox-2")]
    storm = [body(instances[i % 3], i, "2026-11-24T10:00:00Z") for i in range(2000)]
    accepted: set[int] = set()

    def send(indices: list[int]) -> None:
        with httpx.Client(timeout=5) as client:
            for i in indices:
                try:
                    resp = client.post(
                        f"{stack.receiver_url}/alerts/alertmanager", json=storm[i], headers=HEADERS
                    )
                except httpx.HTTPError:
                    continue
                if resp.status_code == 202:
                    accepted.add(i)

    workers = [threading.Thread(target=send, args=(list(range(k, 2000, 4)),)) for k in range(4)]
    for w in workers:
        w.start()
    while len(accepted) < 1000:
        time.sleep(0.01)
    receiver.send_signal(signal.SIGKILL)  # mid-storm, between accepts and dispatches
    for w in workers:
        w.join(60)
    first = len(accepted)
    receiver.wait(10)
    stack.start_receiver()
    retry = [i for i in range(2000) if i not in accepted]  # Alertmanager retries what got no 2xx
    send(retry)
    outbox = Outbox(stack.home / "llmedic.db")
    settle(outbox)
    rows = outbox.rows(limit=100_000)
    states = Counter(r.state for r in rows)
    runs = stack.flow_runs()
    report(
        f"2,000 distinct alerts from 4 senders; receiver SIGKILLed after {first} were accepted; "
        f"{len(retry)} retried after the restart",
        f"{len(accepted)} accepted in all, {len(rows)} outbox rows, states {dict(states)}, {len(runs)} runs",
    )
    assert accepted == set(range(2000))
    assert len(rows) == 2000 and not outbox.depth()  # every accepted alert is in the outbox, dispatched
    # No double start across the kill: every run is one started row, and no row started two runs.
    # (More runs than instances is right: a false positive closes in seconds, and a later alert
    # about the same instance then starts a new incident.)
    started = [r.flow_run_id for r in rows if r.state == "started"]
    assert len(runs) == len(started) == len(set(started)) and set(started) == {r["id"] for r in runs}
    one_open_incident_at_a_time(stack)
    from llmedic.orchestration import stop_runner

    stop_runner(runner)
