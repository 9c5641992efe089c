"""Leak detector benchmark: 1,000 synthetic memory series, half leaking, half not.

Leaking series grow at slopes drawn log-uniformly from 40 MiB/h (tiny: 1 GiB a day on a 16 GiB
limit) to 2 GiB/h (steep), under the same noise and GC saw-tooth as the stable ones. Stable series
are noise, a GC saw-tooth, or a one-off step (a cache filling up, then flat). Every series is 6 h at
one sample per 30 s after a 10-minute warm-up, from an 8 GiB baseline with a 16 GiB limit.

Judged every 30 minutes on the window so far, the detector (``llmedic.anomalies.memory_leak.detector``) is compared
with Prometheus-style ``predict_linear(rss[1h], H) > limit`` rules. Printed: TPR and FPR at the end
of the series, FPR at any of the checks, and the median delay from the start to the first detection.
Goal: TPR ≥ 0.95 at FPR ≤ 0.01, ahead of the rule. Not a test; ``make bench`` runs it.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llmedic.anomalies.memory_leak.detector import detect_leak, predict_linear_alert

GIB, MIB = 2**30, 2**20
STEP_S, HOURS, WARMUP_S = 30.0, 6.0, 600.0
LIMIT, BASE = 16 * GIB, 8 * GIB


def series(rng: np.random.Generator, kind: str, slope_per_h: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(0, WARMUP_S + HOURS * 3600, STEP_S)
    y = BASE + rng.normal(0, 40 * MIB, t.size)
    y[t < WARMUP_S] -= np.linspace(2 * GIB, 0, int((t < WARMUP_S).sum()))  # model load
    if kind in ("leak", "sawtooth"):
        period = rng.uniform(300, 1200)
        y += (t % period) / period * rng.uniform(100, 400) * MIB
    if kind == "step":
        at = rng.uniform(WARMUP_S + 1800, WARMUP_S + HOURS * 3600 / 2)
        y += np.where(t > at, rng.uniform(200, 800) * MIB, 0.0)
    if kind == "leak":
        y += np.clip(t - WARMUP_S, 0, None) / 3600 * slope_per_h
    return t, y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--series", type=int, default=1000)
    args = ap.parse_args()
    rng = np.random.default_rng(2026)
    half = args.series // 2
    cases = [("leak", float(np.exp(rng.uniform(np.log(40 * MIB), np.log(2 * GIB))))) for _ in range(half)]
    cases += [(("noise", "sawtooth", "step")[i % 3], 0.0) for i in range(args.series - half)]
    checks = np.arange(WARMUP_S + 3600, WARMUP_S + HOURS * 3600 + 1, 1800)
    rules = {
        "predict_linear(rss[1h], 4h) > limit": 4 * 3600,
        "predict_linear(rss[1h], 24h) > limit": 24 * 3600,
    }
    names = ["llmedic detector", *rules]
    final = {n: [0, 0] for n in names}  # leaks found, false alarms
    ever = dict.fromkeys(names, 0)
    delays: dict[str, list[float]] = {n: [] for n in names}
    started = time.perf_counter()
    judged = 0
    for kind, slope in cases:
        t, y = series(rng, kind, slope)
        first: dict[str, float] = {}
        last: dict[str, bool] = {}
        for end in checks:
            sel = t <= end
            v = detect_leak(t[sel], y[sel], limit=LIMIT, warmup_seconds=WARMUP_S).leaking
            judged += 1
            results = {"llmedic detector": v}
            window = sel & (t > end - 3600)
            for rule, horizon in rules.items():
                results[rule] = predict_linear_alert(t[window], y[window], LIMIT, horizon)
            for n, fired in results.items():
                last[n] = fired
                if fired and n not in first:
                    first[n] = (end - WARMUP_S) / 3600
        for n in names:
            if kind == "leak":
                final[n][0] += last[n]
                if n in first:
                    delays[n].append(first[n])
            else:
                final[n][1] += last[n]
                ever[n] += n in first
    took = time.perf_counter() - started
    neg = args.series - half
    print(
        f"Leak detection, {args.series} series ({half} leaking 40 MiB/h–2 GiB/h, {neg} stable: noise, GC saw-tooth, steps), "
        f"{HOURS:g} h at {STEP_S:g} s — {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print("| method | TPR (end) | FPR (end) | FPR (any check) | median hours to detect | goal |")
    print("|---|---|---|---|---|---|")
    for n in names:
        tpr, fpr, anyf = final[n][0] / half, final[n][1] / neg, ever[n] / neg
        delay = f"{statistics.median(delays[n]):.1f}" if delays[n] else "—"
        goal = ("met" if tpr >= 0.95 and fpr <= 0.01 else "NOT met") if n == "llmedic detector" else ""
        print(f"| {n} | {tpr:.3f} | {fpr:.3f} | {anyf:.3f} | {delay} | {goal} |")
    print(
        f"\n{judged:,} detector verdicts in {took:.1f}s ({1000 * took / judged:.2f} ms each, rules included)"
    )


if __name__ == "__main__":
    main()
