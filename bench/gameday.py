"""Time to recover per game-day scenario, through the whole stack.

Runs the shipped game-day scenarios (``llmedic gameday``) and prints, for each incident it resolved,
the seconds from the fault's injection to the incident's close — alert delay, confirmation, evidence,
reproduction, the (automatic) approval, the fix and its verification included — beside the
scenario's own time budget (``timeout_seconds``), as a ratio. Not a test; ``make bench`` runs it.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llmedic.config import Settings
from llmedic_sandbox.gameday import GameDay, load_scenarios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", help="scenario names (default: all shipped)")
    args = parser.parse_args()
    chosen = load_scenarios(names=args.scenarios or None)
    budget = {s.name: s.timeout_seconds for s in chosen}
    home = Path(tempfile.mkdtemp(prefix="llmedic-bench-gameday-"))
    rows = GameDay(Settings(home=home), chosen, log=lambda _m: None).run()
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    w = max(len(f"{r.scenario} ({r.anomaly})") for r in rows)
    print(f"{'time to recover':<{w}}  {'measured':>10}  {'budget':>8}  ratio  result")
    for r in rows:
        name = f"{r.scenario} ({r.anomaly})"
        if r.seconds_to_recover is None:
            print(f"{name:<{w}}  {r.outcome:>10}  {'':>8}         {'pass' if r.passed else 'FAIL'}")
            continue
        b = budget[r.scenario]
        print(
            f"{name:<{w}}  {r.seconds_to_recover:>8.1f} s  {b:>6.0f} s  {r.seconds_to_recover / b:.2f}×  "
            f"{'pass' if r.passed else 'FAIL'}"
        )
    print(f"{sum(r.passed for r in rows)}/{len(rows)} expectations met")


if __name__ == "__main__":
    main()
