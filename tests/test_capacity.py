"""Capacity maths on constructed series with known answers: percentiles, headroom, the growth trend
and the dates the reserve and the capacity are reached; recommendations with their numbers."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from llmedic.reviews.capacity.analysis import recommend, review_series

DAY = 86_400
START = datetime(2026, 10, 1, tzinfo=UTC).timestamp()


def days(n: int, per_day: int = 24) -> np.ndarray:
    return START + np.arange(n * per_day) * (DAY / per_day)


def flat(value: float, n: int = 30) -> tuple[np.ndarray, np.ndarray]:
    t = days(n)
    return t, np.full(t.size, value)


def ramp(first: float, per_day: float, n: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Constant within each day, rising by ``per_day`` from one day to the next."""
    t = days(n)
    return t, first + per_day * np.floor((t - START) / DAY)


def day(n: float) -> str:
    return datetime.fromtimestamp(START + n * DAY, UTC).date().isoformat()


@pytest.mark.parametrize(
    ("series", "capacity", "reserve", "p99", "headroom", "below", "reserve_date", "exhaustion_date"),
    [
        # 50 % flat: 50 % headroom, no trend, nothing runs out.
        (flat(0.5), 1.0, 0.25, 0.5, 0.5, False, None, None),
        # 0.40 → 0.69 over 30 days (+0.01/day): the 0.75 reserve line is crossed on day 35, the
        # capacity on day 60 — both counted from the first day.
        (ramp(0.40, 0.01), 1.0, 0.25, 0.69, 0.31, False, day(35), day(60)),
        # Already above the reserve line: the reserve date is today (the last day of data).
        (ramp(0.60, 0.01), 1.0, 0.25, 0.89, 0.11, True, day(29), day(40)),
        # QPS against 20 req/s: 4 → 13.6 at 0.33/day; reserve line 15 req/s on day 33.3, 20 on 48.5.
        (ramp(4.0, 0.33), 20.0, 0.25, 13.57, 0.3215, False, day(33.3), day(48.5)),
    ],
)
def test_review_series(
    series: tuple[np.ndarray, np.ndarray],
    capacity: float,
    reserve: float,
    p99: float,
    headroom: float,
    below: bool,
    reserve_date: str | None,
    exhaustion_date: str | None,
) -> None:
    t, y = series
    r = review_series("x", "share", t, y, capacity=capacity, reserve=reserve).as_dict()
    assert (r["p99"], r["headroom"], r["below_target"]) == (
        pytest.approx(p99, abs=0.01),
        pytest.approx(headroom, abs=0.01),
        below,
    )
    assert (r["reserve_date"], r["exhaustion_date"]) == (reserve_date, exhaustion_date)


def test_noise_is_not_a_trend() -> None:
    t = days(30)
    y = 0.5 + np.random.default_rng(1).normal(0, 0.05, t.size)
    r = review_series("gpu", "share", t, y, capacity=1.0, reserve=0.25)
    assert r.note == "no significant growth" and r.reserve_date is None


def test_too_few_days_and_no_data_say_so() -> None:
    t, y = flat(0.5, n=3)
    assert (
        review_series("x", "share", t, y, capacity=1, reserve=0.25).note
        == "only 3 day(s) of data: no trend (needs 7)"
    )
    empty = review_series("x", "share", np.array([]), np.array([]), capacity=1, reserve=0.25)
    assert (empty.samples, empty.note, empty.below_target) == (0, "no data", False)


@pytest.mark.parametrize(("capacity", "reserve"), [(0.0, 0.25), (1.0, 1.0), (1.0, -0.1)])
def test_bad_capacity_or_reserve_is_refused(capacity: float, reserve: float) -> None:
    t, y = flat(0.5)
    with pytest.raises(ValueError):
        review_series("x", "share", t, y, capacity=capacity, reserve=reserve)


def test_recommendations_carry_their_numbers() -> None:
    now = datetime.fromtimestamp(START + 29 * DAY, UTC)
    reviews = {
        # p99 0.90 on 4 GPUs, reserve 25 %: ceil(4 × 0.9 / 0.75) = 5 → add 1.
        "gpu_utilisation": review_series("gpu_utilisation", "share", *flat(0.90), capacity=1, reserve=0.25),
        "gpu_memory": review_series("gpu_memory", "share", *flat(0.95), capacity=1, reserve=0.25),
        # 18 of 20 req/s on 3 replicas: ceil(3 × 0.9 / 0.75) = 4 → add 1.
        "qps": review_series("qps", "req/s", *flat(18.0), capacity=20, reserve=0.25),
        # KV cache at 0.95: limits to 0.75 / 0.95 = 79 % of today's.
        "kv_cache": review_series("kv_cache", "share", *flat(0.95), capacity=1, reserve=0.25),
    }
    recs = recommend(reviews, gpus=4, replicas=3, per_instance_qps={"a": 9.0, "b": 4.5, "c": 4.5}, now=now)
    got = {r.action: r.numbers for r in recs}
    assert got["add_gpus"] == {"gpus": 4, "p99_utilisation": 0.9, "add": 1}
    assert got["scale_out"] == {"replicas": 3, "p99_utilisation": 0.9, "add": 1}
    assert got["rebalance_replicas"] == {"busiest": "a", "idlest": "b", "ratio": 2.0}
    assert got["tune_batch_limits"] == {"p99_kv_cache": 0.95, "scale_limits_by": 0.789}
    # GPU memory is short too, but compute is as well: quantising is not the answer then.
    assert "quantise" not in got


def test_memory_short_with_compute_to_spare_recommends_quantising() -> None:
    reviews = {
        "gpu_utilisation": review_series("gpu_utilisation", "share", *flat(0.4), capacity=1, reserve=0.25),
        "gpu_memory": review_series("gpu_memory", "share", *flat(0.92), capacity=1, reserve=0.25),
    }
    assert [r.action for r in recommend(reviews, gpus=2, replicas=2)] == ["quantise"]


def test_healthy_service_gets_no_recommendation() -> None:
    reviews = {
        k: review_series(k, "share", *flat(0.4), capacity=1, reserve=0.25)
        for k in ("gpu_utilisation", "kv_cache")
    }
    assert recommend(reviews, gpus=2, replicas=2, per_instance_qps={"a": 1.0, "b": 1.1}) == []
