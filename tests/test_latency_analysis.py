import math

import pytest

from llmedic.anomalies.latency.diagnosis import InstanceLatency, diagnose_latency
from llmedic.quantiles import bucket_delta, histogram_quantile, sample_quantile

INF = math.inf
# 10 observations: 2 ≤ 0.1 s, 5 in (0.1, 0.5], 2 in (0.5, 1], 1 above 1 s.
BUCKETS = [(0.1, 2.0), (0.5, 7.0), (1.0, 9.0), (INF, 10.0)]


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        pytest.param(0.5, BUCKETS, 0.1 + 0.4 * (3 / 5), id="median-interpolated"),
        pytest.param(0.1, BUCKETS, 0.05, id="first-bucket-starts-at-zero"),
        pytest.param(0.9, BUCKETS, 1.0, id="upper-edge"),
        pytest.param(0.99, BUCKETS, 1.0, id="rank-in-inf-bucket-returns-last-finite-bound"),
        pytest.param(0.0, BUCKETS, 0.0, id="q0"),
        pytest.param(-0.1, BUCKETS, -INF, id="q-below-0"),
        pytest.param(1.1, BUCKETS, INF, id="q-above-1"),
        pytest.param(0.5, [(0.1, 2.0), (0.5, 1.0), (INF, 4.0)], 0.1, id="non-monotonic-fixed"),
    ],
)
def test_histogram_quantile_matches_prometheus(
    q: float, buckets: list[tuple[float, float]], expected: float
) -> None:
    assert histogram_quantile(q, buckets) == pytest.approx(expected)


@pytest.mark.parametrize(
    "buckets",
    [
        pytest.param([(0.1, 2.0), (1.0, 3.0)], id="no-inf-bucket"),
        pytest.param([(0.1, 0.0), (INF, 0.0)], id="empty"),
    ],
)
def test_histogram_quantile_nan(buckets: list[tuple[float, float]]) -> None:
    assert math.isnan(histogram_quantile(0.5, buckets))


def test_bucket_delta_and_counter_reset() -> None:
    before = [(0.1, 2.0), (INF, 5.0)]
    assert bucket_delta(before, [(0.1, 3.0), (INF, 9.0)]) == [(0.1, 1.0), (INF, 4.0)]
    # a restart reset the counters: the later scrape is the delta
    assert bucket_delta(before, [(0.1, 1.0), (INF, 1.0)]) == [(0.1, 1.0), (INF, 1.0)]


def test_sample_quantile() -> None:
    assert sample_quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert sample_quantile([5.0], 0.99) == 5.0
    assert math.isnan(sample_quantile([], 0.5))


def fleet(**targets: InstanceLatency) -> dict[str, InstanceLatency]:
    return dict(targets)


OK = InstanceLatency("b", 0.4)
OK2 = InstanceLatency("c", 0.5)


@pytest.mark.parametrize(
    ("instances", "diagnosis", "scope"),
    [
        pytest.param(
            fleet(a=InstanceLatency("a", 3.0), b=OK, c=OK2), "instance_degraded", "instance", id="one-slow"
        ),
        pytest.param(
            fleet(a=InstanceLatency("a", 3.0, kv_cache_usage=0.97), b=OK, c=OK2),
            "kv_cache_pressure",
            "instance",
            id="kv",
        ),
        pytest.param(
            fleet(a=InstanceLatency("a", 3.0, waiting=6), b=OK, c=OK2), "queueing", "instance", id="queue"
        ),
        pytest.param(
            fleet(a=InstanceLatency("a", 3.0), b=InstanceLatency("b", 2.5), c=OK2),
            "fleet_overload",
            "fleet",
            id="fleet",
        ),
        pytest.param(
            fleet(
                a=InstanceLatency("a", 3.0),
                b=InstanceLatency("b", 2.5, drained=True),
                c=OK2,
                d=InstanceLatency("d", 0.3),
            ),
            "instance_degraded",
            "instance",
            id="drained-instances-do-not-count",
        ),
        pytest.param(fleet(a=InstanceLatency("a", 1.0), b=OK), "unknown", "instance", id="within-slo"),
        pytest.param(
            fleet(a=InstanceLatency("a", 3.0, itl_p99=0.2), b=InstanceLatency("b", 2.5, itl_p99=0.2), c=OK2),
            "slow_decode",
            "fleet",
            id="fleet-decodes-slowly",
        ),
        pytest.param(
            fleet(
                a=InstanceLatency("a", 3.0, itl_p99=0.2, waiting=5),
                b=InstanceLatency("b", 2.5, itl_p99=0.2),
                c=OK2,
            ),
            "fleet_overload",
            "fleet",
            id="slow-tokens-but-queueing-is-overload",
        ),
    ],
)
def test_diagnose_latency(instances: dict[str, InstanceLatency], diagnosis: str, scope: str) -> None:
    d = diagnose_latency(
        "a",
        instances,
        slo_p99_seconds=2.0,
        queue_threshold=2,
        kv_cache_threshold=0.9,
        fleet_share_threshold=0.5,
        itl_p99_threshold=0.05,
    )
    assert (d.diagnosis, d.scope) == (diagnosis, scope)


def test_diagnosis_reason_has_the_figures() -> None:
    d = diagnose_latency(
        "a",
        fleet(a=InstanceLatency("a", 3.0), b=OK, c=OK2),
        slo_p99_seconds=2.0,
        queue_threshold=2,
        kv_cache_threshold=0.9,
        fleet_share_threshold=0.5,
    )
    assert d.reason == (
        "p99 3.00s over the 2s SLO without queueing or KV-cache pressure, while 2 other instance(s) are within it: "
        "the instance itself is slow"
    )
    assert (d.over_slo, d.share_over_slo, d.healthy_others) == (["a"], 0.333, 2)
