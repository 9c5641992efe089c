"""Latency percentiles: histogram quantiles exactly as Prometheus computes them, and percentiles of
raw probe samples. Pure (the metrics and endpoint adapters use them)."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["Bucket", "bucket_delta", "histogram_quantile", "sample_quantile"]

Bucket = tuple[float, float]
"""(upper bound ``le``, cumulative count)."""


def bucket_delta(before: Sequence[Bucket], after: Sequence[Bucket]) -> list[Bucket]:
    """Per-bucket increase between two scrapes of the same cumulative histogram.

    A counter reset (the process restarted, so a count went down) makes the later scrape the delta,
    as Prometheus' ``rate()`` does.
    """
    old = dict(before)
    if any(count < old.get(le, 0.0) for le, count in after):
        return sorted(after)
    return sorted((le, count - old.get(le, 0.0)) for le, count in after)


def histogram_quantile(q: float, buckets: Sequence[Bucket]) -> float:
    """The ``q``-quantile of a cumulative histogram, with Prometheus' interpolation rules.

    Linear interpolation inside the bucket that holds the rank; the lowest bucket starts at 0 (when
    its bound is positive); a rank in the ``+Inf`` bucket returns the highest finite bound. No
    ``+Inf`` bucket or no observations gives NaN; q < 0 is -Inf and q > 1 is +Inf.
    """
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = sorted(buckets)
    if len(ordered) < 2 or not math.isinf(ordered[-1][0]):
        return math.nan
    # Force monotonic counts, as Prometheus does for scrapes that raced with observations.
    fixed: list[Bucket] = []
    running_max = 0.0
    for le, count in ordered:
        running_max = max(running_max, count)
        fixed.append((le, running_max))
    total = fixed[-1][1]
    if total == 0:
        return math.nan
    rank = q * total
    b = next(i for i, (_, count) in enumerate(fixed) if count >= rank)
    if b == len(fixed) - 1:
        return fixed[-2][0]
    if b == 0 and fixed[0][0] <= 0:
        return fixed[0][0]
    start, prev = (0.0, 0.0) if b == 0 else fixed[b - 1]
    end, count = fixed[b]
    in_bucket = count - prev
    if in_bucket == 0:
        return end
    return start + (end - start) * ((rank - prev) / in_bucket)


def sample_quantile(values: Sequence[float], q: float) -> float:
    """Quantile of raw samples (linear interpolation between closest ranks, numpy's default)."""
    if not values:
        return math.nan
    data = sorted(values)
    pos = (len(data) - 1) * q
    lo = math.floor(pos)
    hi = math.ceil(pos)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)
