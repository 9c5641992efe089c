"""Receiver benchmarks (printed as a table with each figure beside its target; never a test).

1. throughput: accepted Alertmanager notifications per second, durable (SQLite WAL, synchronous=FULL),
   over real HTTP, load from ``wrk`` (Debian package) when installed.
2. latency: alert POST → flow run created → flow run *running* with the real Prefect server and
   runner: 10 alerts with the runner idle, then a burst of 100 for the receiver's dispatch latency;
   says what dominates.
3. storm: 5,000 notifications for 500 distinct alerts (duplicates, retries, resolves, shuffled) →
   exactly 500 runs, nothing lost.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llmedic.orchestration import PrefectServer, prefect_env, stop_process, stop_runner  # noqa: E402
from llmedic.receiver.outbox import Outbox  # noqa: E402
from llmedic_sandbox.fleet import FleetSpec, free_port, run_fleet  # noqa: E402

TOKEN = "bench-token"


def body(target: str, start: str, status: str = "firing") -> dict[str, Any]:
    return {
        "version": "4",
        "status": status,
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": "VLLMHighP99Latency", "anomaly": "latency", "target": target},
                "startsAt": start,
                "endsAt": "2026-11-24T11:00:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
            }
        ],
    }


def start_receiver(home: Path, env: dict[str, str], dispatch: bool) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    args = [sys.executable, "-m", "llmedic", "receiver", "--port", str(port)] + (
        [] if dispatch else ["--no-dispatch"]
    )
    log = open(home / f"receiver-{port}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code in (200, 503):
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("receiver did not start")


async def post_all(url: str, bodies: list[dict[str, Any]], concurrency: int = 32) -> list[int]:
    sem = asyncio.Semaphore(concurrency)
    codes: list[int] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        limits=limits, timeout=30, headers={"Authorization": f"Bearer {TOKEN}"}
    ) as client:

        async def one(b: dict[str, Any]) -> None:
            async with sem:
                resp = await client.post(
                    f"{url}/alerts/alertmanager",
                    content=json.dumps(b),
                    headers={"Content-Type": "application/json"},
                )
                codes.append(resp.status_code)

        await asyncio.gather(*(one(b) for b in bodies))
    return codes


def config(path: Path, fleet_urls: list[str], names: list[str]) -> None:
    instances = [{"name": n, "url": fleet_urls[i % len(fleet_urls)]} for i, n in enumerate(names)]
    path.write_text(
        yaml.safe_dump(
            {
                "services": [{"name": "bench", "instances": instances}],
                "metrics": {"kind": "scrape"},
                "receiver": {"max_runs_per_target_per_hour": 100},
            }
        )
    )


def bench_throughput(tmp: Path, base_env: dict[str, str]) -> dict[str, float]:
    """wrk (Debian package) as the load generator when installed: a Python client on the same two
    cores would measure itself. Falls back to an httpx client and says so."""
    home = tmp / "throughput"
    home.mkdir()
    env = {**base_env, "LLMEDIC_HOME": str(home)}
    proc, url = start_receiver(home, env, dispatch=False)
    try:
        asyncio.run(post_all(url, [body(f"warm-{i}", "2026-11-24T10:00:00Z") for i in range(200)]))
        if shutil.which("wrk"):
            out = subprocess.run(
                ["wrk", "-t1", "-c32", "-d10s", "-s", str(ROOT / "bench" / "alert.lua"), url],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            ).stdout
            rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))  # type: ignore[union-attr]
            errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
            assert errors is None, out
            client = "wrk -t1 -c32"
        else:
            n = 3000
            start = time.perf_counter()
            codes = asyncio.run(post_all(url, [body(f"t-{i}", "2026-11-24T10:00:00Z") for i in range(n)]))
            rps = n / (time.perf_counter() - start)
            assert codes.count(202) == n
            client = "httpx (install wrk for a fair figure)"
    finally:
        stop_process(proc)
    rows = Outbox(home / "llmedic.db").rows(limit=1_000_000)
    assert sum(r.seen for r in rows) >= 200
    return {"per_second": rps, "client": client, "rows": len(rows)}  # type: ignore[dict-item]


def bench_latency_and_storm(tmp: Path, base_env: dict[str, str]) -> tuple[dict[str, float], dict[str, float]]:
    fleet_cfg = tmp / "fleet.yaml"
    stop = threading.Event()
    threading.Thread(
        target=run_fleet, args=(FleetSpec(instances=3, standby=0, port=0), fleet_cfg, stop), daemon=True
    ).start()
    while not fleet_cfg.exists():
        time.sleep(0.05)
    urls = [i["url"] for i in yaml.safe_load(fleet_cfg.read_text())["services"][0]["instances"]]
    home = tmp / "latency"
    home.mkdir()
    server = PrefectServer(home, port=free_port())
    server.start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        names = [f"lat-{i}" for i in range(100)] + [f"storm-{i}" for i in range(500)]
        cfg = tmp / "llmedic.yaml"
        config(cfg, urls, names)
        env = {
            **base_env,
            **prefect_env(home, server.api_url, poll_seconds=1),
            "LLMEDIC_CONFIG": str(cfg),
            "LLMEDIC_HOME": str(home),
            "LLMEDIC_RUN_LIMIT": "10",
        }
        log = open(home / "runner.log", "wb")  # noqa: SIM115
        runner = subprocess.Popen(
            [sys.executable, "-m", "flows"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        procs.append(runner)
        api = server.api_url
        while True:
            try:
                if any(
                    d["name"] == "default"
                    for d in httpx.post(f"{api}/deployments/filter", json={}, timeout=5).json()
                ):
                    break
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.5)
        receiver, url = start_receiver(home, env, dispatch=True)
        procs.append(receiver)
        # --- latency, runner idle: 10 alerts, 8 s apart (each flow finishes before the next)
        sent: dict[str, float] = {}
        with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as client:
            for i in range(10):
                sent[f"lat-{i}"] = time.time()
                client.post(f"{url}/alerts/alertmanager", json=body(f"lat-{i}", "2026-11-24T10:00:00Z"))
                time.sleep(8)
        created, running = _runs_since(api, sent, want_running=True)
        stop_runner(runner)  # from here on runs are only counted, not executed
        # --- dispatch latency under a burst: 100 alerts at 20/s
        burst: dict[str, float] = {}
        with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as client:
            for i in range(10, 110):
                burst[f"lat-{i}"] = time.time()
                client.post(f"{url}/alerts/alertmanager", json=body(f"lat-{i}", "2026-11-24T10:00:00Z"))
                time.sleep(0.05)
        burst_created, _ = _runs_since(api, burst, want_running=False)
        # --- storm: 500 alerts × 10 notifications (repeats, retries, resolves, re-fires), shuffled
        notes: list[dict[str, Any]] = []
        for i in range(500):
            t = f"storm-{i}"
            notes += [body(t, "2026-11-24T10:00:00Z")] * 6
            notes += [body(t, "2026-11-24T10:00:00Z", "resolved")] * 2
            notes += [body(t, "2026-11-24T10:05:00Z")] * 2  # fires again while its incident is open
        random.Random(1).shuffle(notes)
        before = len(httpx.post(f"{api}/flow_runs/filter", json={"limit": 200}, timeout=10).json())
        start = time.perf_counter()
        codes = asyncio.run(post_all(url, notes))
        accept_s = time.perf_counter() - start
        outbox = Outbox(home / "llmedic.db")
        while outbox.depth():
            time.sleep(0.5)
        drain_s = time.perf_counter() - start
        runs_after = _all_runs(api)
        storm_runs = sum(
            1 for r in runs_after if r["parameters"]["request"]["alert"]["target"].startswith("storm-")
        )
        rows = [r for r in outbox.rows(limit=100_000) if r.target.startswith("storm-")]
        seen = sum(r.seen for r in rows)
        lost = len(notes) - seen
        storm = {
            "notifications": len(notes),
            "accepted": codes.count(202),
            "runs": storm_runs,
            "lost": lost,
            "accept_s": accept_s,
            "drain_s": drain_s,
            "before": before,
        }
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                stop_process(p)
        server.stop()
        stop.set()
    q = statistics.quantiles
    lat = {
        "idle_created_p50": statistics.median(created),
        "idle_running_p50": statistics.median(running),
        "idle_running_max": max(running),
        "burst_created_p50": statistics.median(burst_created),
        "burst_created_p99": q(burst_created, n=100)[98],
        "n_idle": len(running),
        "n_burst": len(burst_created),
    }
    return lat, storm


def _all_runs(api: str) -> list[dict[str, Any]]:
    """Every run the receiver started (the scheduled flows' coming runs are left out)."""
    runs: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = httpx.post(f"{api}/flow_runs/filter", json={"limit": 200, "offset": offset}, timeout=30).json()
        offset += len(page)
        runs += [r for r in page if "scheduled" not in r.get("tags", [])]
        if len(page) < 200:
            return runs


def _runs_since(api: str, sent: dict[str, float], *, want_running: bool) -> tuple[list[float], list[float]]:
    deadline = time.time() + 300
    while True:
        runs = _all_runs(api)
        mine = [r for r in runs if r["parameters"]["request"]["alert"]["target"] in sent]
        if len(mine) >= len(sent) and (not want_running or all(r.get("start_time") for r in mine)):
            break
        if time.time() > deadline:
            raise RuntimeError(f"only {len(mine)} of {len(sent)} runs")
        time.sleep(1)
    created = [_ts(r["created"]) - sent[r["parameters"]["request"]["alert"]["target"]] for r in mine]
    running = [
        _ts(r["start_time"]) - sent[r["parameters"]["request"]["alert"]["target"]]
        for r in mine
        if r.get("start_time")
    ]
    return created, running


def _ts(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def main() -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("LLMEDIC_", "PREFECT_"))}
    base.update({"LLMEDIC_RECEIVER_TOKEN": TOKEN})
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        thr = bench_throughput(tmp, base)
        lat, storm = bench_latency_and_storm(tmp, base)
    rows = [
        (
            f"accepted notifications/s (durable; {thr['client']})",
            f"{thr['per_second']:.0f}",
            "≥ 1000",
            f"{thr['per_second'] / 1000:.2f}×",
        ),
        (
            f"alert → run created, runner idle, p50 (n={lat['n_idle']})",
            f"{lat['idle_created_p50']:.2f} s",
            "—",
            "",
        ),
        (
            f"alert → flow running, runner idle, p50 (n={lat['n_idle']})",
            f"{lat['idle_running_p50']:.2f} s",
            "≤ 3 s (p99)",
            f"{3 / lat['idle_running_p50']:.2f}×",
        ),
        (
            f"alert → flow running, runner idle, max (n={lat['n_idle']})",
            f"{lat['idle_running_max']:.2f} s",
            "≤ 3 s",
            f"{3 / lat['idle_running_max']:.2f}×",
        ),
        (
            f"alert → run created, burst of {lat['n_burst']} at 20/s, p50",
            f"{lat['burst_created_p50']:.2f} s",
            "—",
            "",
        ),
        (
            f"alert → run created, burst of {lat['n_burst']} at 20/s, p99",
            f"{lat['burst_created_p99']:.2f} s",
            "—",
            "",
        ),
        ("storm: notifications accepted (202)", f"{storm['accepted']}/{storm['notifications']}", "all", ""),
        (
            "storm: runs started for 500 distinct alerts",
            f"{storm['runs']}",
            "500",
            f"{storm['runs'] / 500:.2f}×",
        ),
        ("storm: notifications lost", f"{storm['lost']}", "0", ""),
        ("storm: accept time / drain time", f"{storm['accept_s']:.1f} s / {storm['drain_s']:.1f} s", "—", ""),
    ]
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    w = max(len(r[0]) for r in rows)
    print(f"{'benchmark':<{w}}  {'measured':>16}  {'target':>8}  ratio")
    for name, value, target, ratio in rows:
        print(f"{name:<{w}}  {value:>16}  {target:>8}  {ratio}")
    print(
        "\nalert → running is dominated by Prefect's runner: it polls for scheduled runs every "
        "PREFECT_RUNNER_POLL_FREQUENCY (1 s here) and starts every run in a new Python process that "
        "imports Prefect and llmedic (seconds of CPU on this machine). Receipt → run created is the "
        "receiver's own part. A burst of 100 flows cannot all run at once on 2 cores; their runs are "
        "created at once and queue in Prefect."
    )


if __name__ == "__main__":
    main()
