"""The memory-leak detector on series with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from llmedic.anomalies.memory_leak.detector import detect_leak, mann_kendall_hr, predict_linear_alert

MIB, GIB = 2**20, 2**30
T = np.arange(0, 4 * 3600, 30.0)  # 4 h at 30 s


def noisy(seed: int, slope_mib_h: float = 0.0, saw: bool = False, step_at: float | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = 8 * GIB + rng.normal(0, 40 * MIB, T.size) + T / 3600 * slope_mib_h * MIB
    if saw:
        y += (T % 600) / 600 * 300 * MIB
    if step_at is not None:
        y += np.where(step_at < T, 600 * MIB, 0.0)
    return y


@pytest.mark.parametrize(
    ("case", "series", "leaking"),
    [
        ("steep leak", noisy(1, 500), True),
        ("slow leak under a GC saw-tooth", noisy(2, 120, saw=True), True),
        ("noise", noisy(3), False),
        ("GC saw-tooth", noisy(4, saw=True), False),
        ("one-off step, then flat", noisy(5, step_at=3600), False),
        ("slow growth below the budget", noisy(6, 5), False),
    ],
)
def test_verdicts(case: str, series: np.ndarray, leaking: bool) -> None:
    v = detect_leak(T, series, limit=16 * GIB, warmup_seconds=0)
    assert (v.judged, v.leaking) == (True, leaking), f"{case}: {v.reason}"


def test_steep_leak_projects_the_time_to_the_limit() -> None:
    y = 8 * GIB + T / 3600 * GIB  # exactly 1 GiB/h, no noise: 4 h of it ends at 12 GiB
    v = detect_leak(T, y, limit=16 * GIB)
    assert v.leaking and v.slope_per_hour == pytest.approx(GIB, rel=1e-9)
    assert v.hours_to_limit == pytest.approx((16 * GIB - (8 * GIB + T[-1] / 3600 * GIB)) / GIB, rel=1e-6)


def test_warmup_is_cut_off_and_short_series_are_not_judged() -> None:
    y = np.concatenate([np.linspace(2 * GIB, 8 * GIB, 20), np.full(T.size - 20, 8 * GIB)])
    y = y + np.random.default_rng(0).normal(0, 10 * MIB, T.size)
    assert not detect_leak(T, y, limit=16 * GIB, warmup_seconds=600).leaking  # the load ramp is ignored
    short = detect_leak(T[:20], y[:20], warmup_seconds=0)
    assert (short.judged, short.leaking) == (False, False)
    assert short.reason == "20 samples after the 0s warm-up; at least 30 are needed to judge"


def test_nan_samples_are_dropped() -> None:
    y = noisy(7, 500)
    y[::5] = np.nan
    v = detect_leak(T, y, limit=16 * GIB)
    assert v.leaking and v.samples == T.size - len(range(0, T.size, 5))


def test_autocorrelation_inflates_the_variance() -> None:
    rng = np.random.default_rng(3)
    walk = np.cumsum(rng.normal(0, 1, 400))  # a random walk: strongly autocorrelated, no trend
    *_, factor = mann_kendall_hr(walk)
    assert factor > 3  # the naive test would be over-confident by this factor in variance
    independent = rng.normal(0, 1, 400)
    assert mann_kendall_hr(independent)[2] == pytest.approx(1.0, abs=0.5)


def test_predict_linear_rule_is_plain_extrapolation() -> None:
    t = np.arange(0, 3600, 60.0)
    y = 10 * GIB + t  # 1 byte/s
    assert predict_linear_alert(t, y, limit=10 * GIB + 3600 + 100, horizon_seconds=200)
    assert not predict_linear_alert(t, y, limit=10 * GIB + 3600 + 100, horizon_seconds=10)


def test_growth_after_a_level_shift_is_still_a_leak() -> None:
    y = noisy(8, step_at=1800) + np.clip(T - 1800, 0, None) / 3600 * 400 * MIB
    v = detect_leak(T, y, limit=16 * GIB)
    assert v.leaking  # the growth, not the step, decides


def test_verdicts_are_plain_json_types() -> None:
    import json

    v = detect_leak(T, noisy(9, 500), limit=16 * GIB)
    assert json.loads(json.dumps(v.as_dict()))["leaking"] is True
