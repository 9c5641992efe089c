"""Accuracy-check benchmark: time to score 500 golden items against the sandbox fleet (3 instances,
no background traffic), at several request concurrencies, beside the sequential loop as the anchor.

The sandbox answers each request after a simulated time to first token plus per-token decode time
(about 30–60 ms per answer), so the figures show how much of a golden-set check is waiting on the
service and how much request concurrency buys back. Printed, never asserted.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from llmedic.adapters.endpoint import Endpoint  # noqa: E402
from llmedic.golden import load_golden, score_items  # noqa: E402
from llmedic_sandbox.fleet import FleetSpec, run_fleet  # noqa: E402
from llmedic_sandbox.knowledge import golden_path  # noqa: E402

ITEMS = 500
CONCURRENCY = (1, 4, 8, 16, 32)


def main() -> None:
    base = load_golden(golden_path())
    items = [replace(i, id=f"{i.id}-{r}") for r in range(ITEMS // len(base) + 1) for i in base][:ITEMS]
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "llmedic.yaml"
        stop = threading.Event()
        spec = FleetSpec(instances=3, standby=0, port=0)
        thread = threading.Thread(target=run_fleet, args=(spec, config, stop), daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not config.exists():
            if time.monotonic() > deadline:
                raise SystemExit("sandbox fleet did not start")
            time.sleep(0.05)
        svc = yaml.safe_load(config.read_text())["services"][0]
        urls = {i["name"]: i["url"] for i in svc["instances"]}
        rows = []
        try:
            for c in CONCURRENCY:
                eps = {n: Endpoint(u, timeout=60) for n, u in urls.items()}
                card = score_items(items, eps, concurrency=c, max_tokens=64)
                for ep in eps.values():
                    ep.close()
                rows.append((c, card.seconds, len(items) / card.seconds, card.accuracy, card.errors))
        finally:
            stop.set()
            thread.join(10)
    anchor = rows[0][1]
    print(f"\n## Accuracy check: {ITEMS} golden items against the sandbox (3 instances)\n")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}\n")
    print("| concurrency | seconds | items/s | accuracy | failed | speed-up vs sequential |")
    print("|---|---|---|---|---|---|")
    for c, secs, rate, acc, errors in rows:
        print(f"| {c} | {secs:.2f} | {rate:.0f} | {acc:.3f} | {errors} | {anchor / secs:.1f}× |")
    best = min(rows, key=lambda r: r[1])
    print(
        f"\nbest: concurrency {best[0]} scores {ITEMS} items in {best[1]:.2f} s "
        f"({anchor / best[1]:.1f}× the sequential {anchor:.2f} s)"
    )


if __name__ == "__main__":
    main()
