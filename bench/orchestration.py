"""Orchestration overhead: what running a playbook's steps as Prefect tasks costs per step.

A flow of N steps, each wrapped exactly as llmedic wraps a playbook step (``tasks.runtime.step_task``:
a cached, persisted Prefect task, called through ``run_step`` with the playbook's retries and
timeout), each doing ~2 ms of CPU work, against the same N functions called directly. The Prefect
API is a real local server (Prefect's test harness, SQLite); its start-up is not timed. Printed: the
per-step overhead beside the anchor from Prefect's own measurements on this kind of machine
(``shared/reference/prefect3.md`` §7: 10 runs × 200 tasks in 31 s, i.e. 15.5 ms a task).

Not a test; ``make bench`` runs it.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# Quiet: the table is the output (Prefect's own INFO lines, telemetry, and the test harness's
# shutdown noise are not).
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_LOGGING_SERVER_LEVEL", "CRITICAL")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from prefect import flow
from prefect.testing.utilities import prefect_test_harness

from llmedic.incident import Step
from llmedic.playbook import StepPolicy
from tasks.runtime import run_step, step_task

ANCHOR_MS = 31_000 / 2_000  # Prefect 3, 2 vCPU, SQLite: 10 runs × 200 tasks in 31 s
POLICY = StepPolicy(retries=1, retry_delay_seconds=0, timeout_seconds=60)


def work(i: int) -> int:
    """About 2 ms of CPU: what a cheap evidence step might cost."""
    end = time.perf_counter() + 0.002
    n = i
    while time.perf_counter() < end:
        n = (n * 31 + 7) % 1_000_003
    return n


step = step_task(Step.EVIDENCE, name="bench-step")(work)


@flow(name="bench-playbook", persist_result=True)
def playbook(n: int) -> float:
    """Run ``n`` steps; return the seconds they took inside the flow (run set-up excluded)."""
    start = time.perf_counter()
    for i in range(n):
        run_step(step, POLICY, i)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    plain = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        sum(work(i) for i in range(args.steps))
        plain.append(time.perf_counter() - t)
    inside, whole = [], []
    with prefect_test_harness(server_startup_timeout=120):
        playbook(3)  # warm-up: imports, first API round trips
        for _ in range(args.repeats):
            t = time.perf_counter()
            inside.append(playbook(args.steps))
            whole.append(time.perf_counter() - t)
    p, f, w = statistics.median(plain), statistics.median(inside), statistics.median(whole)
    per_step_ms = (f - p) / args.steps * 1000
    rows = [
        (f"{args.steps} steps as plain calls (median of {args.repeats})", f"{p:.3f} s", "", ""),
        (f"{args.steps} steps as llmedic step tasks, inside the flow", f"{f:.3f} s", "", ""),
        (
            "orchestration overhead per step",
            f"{per_step_ms:.1f} ms",
            f"{ANCHOR_MS:.1f} ms",
            f"{per_step_ms / ANCHOR_MS:.2f}×",
        ),
        ("fixed cost per flow run (create, start, final state)", f"{w - f:.2f} s", "", ""),
        ("a 13-step playbook's orchestration overhead", f"{13 * per_step_ms / 1000 + (w - f):.2f} s", "", ""),
    ]
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    w = max(len(r[0]) for r in rows)
    print(f"{'benchmark':<{w}}  {'measured':>10}  {'anchor':>8}  ratio")
    for name, value, anchor, ratio in rows:
        print(f"{name:<{w}}  {value:>10}  {anchor:>8}  {ratio}")


if __name__ == "__main__":
    main()
