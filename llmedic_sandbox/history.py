"""Synthetic metrics history for the sandbox fleet, backfilled into a real Prometheus.

A month of what the fleet and its GPUs would have exported — vLLM request counters, end-to-end
latency histograms and KV-cache gauges per instance, DCGM utilisation and framebuffer gauges per GPU
— with a daily cycle (busy afternoons), quieter weekends, a steady growth of traffic and noise. It is
written as OpenMetrics text with timestamps and turned into TSDB blocks with ``promtool tsdb
create-blocks-from openmetrics``, so a Prometheus started on that directory answers range queries
over the whole month exactly as a production one would. The capacity review runs against it in the
demo and the tests.
"""

from __future__ import annotations

import math
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from llmedic.errors import RemoteCommandError

__all__ = ["HistorySpec", "backfill", "write_openmetrics"]

BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
SIGMA = 0.45  # spread of the lognormal latency (p99 ≈ 2.85 × median)


@dataclass(frozen=True)
class HistorySpec:
    """Shape of the synthetic month."""

    instances: tuple[str, ...]
    """``host:port`` of each instance (the ``instance`` label Prometheus would give it)."""
    end: float
    """Unix time of the last sample."""
    days: int = 30
    step_seconds: int = 900
    gpus: int = 4
    model: str = "pharma-qa-1.0"
    peak_qps: float = 12.0
    """Fleet requests per second at the busiest hour on the first day."""
    growth_per_day: float = 0.015
    """Traffic grows by this share of the first day's per day."""
    gpu_util_at_peak: float = 0.6
    """GPU utilisation at the first day's busiest hour (grows with traffic)."""
    gpu_memory_share: float = 0.7
    """Framebuffer in use (weights + KV cache pool), nearly flat."""
    imbalance: float = 1.0
    """Load of the first instance relative to each other one (1: balanced)."""
    seed: int = 7


def _load(spec: HistorySpec, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Fleet load relative to the first day's peak: daily cycle × weekday × growth × noise."""
    hours = (t % 86_400) / 3600
    day = (t - t[0]) / 86_400
    daily = 0.35 + 0.65 * np.exp(-(((hours - 14) / 4.0) ** 2))
    weekday = np.where(((t // 86_400 + 4) % 7) >= 5, 0.7, 1.0)  # 1970-01-01 was a Thursday
    growth = 1 + spec.growth_per_day * day
    noise = rng.normal(1.0, 0.04, t.size).clip(0.8, 1.2)
    return np.asarray(daily * weekday * growth * noise)


def write_openmetrics(spec: HistorySpec, out: Path) -> int:
    """Write the month as OpenMetrics text; returns the number of samples."""
    rng = np.random.default_rng(spec.seed)
    t = np.arange(spec.end - spec.days * 86_400, spec.end + 1, spec.step_seconds, dtype=float)
    load = _load(spec, t, rng)
    n_inst = len(spec.instances)
    weights = np.array([spec.imbalance] + [1.0] * (n_inst - 1))
    weights = weights / weights.sum()
    lines: list[str] = []
    samples = 0

    def stamp(i: int) -> str:
        return f"{t[i]:.0f}"

    # Requests: a counter per instance.
    lines.append("# TYPE vllm:request_success counter")
    for k, inst in enumerate(spec.instances):
        qps = spec.peak_qps * load * weights[k]
        total = np.cumsum(qps * spec.step_seconds)
        lab = f'instance="{inst}",model_name="{spec.model}",finished_reason="stop"'
        for i in range(t.size):
            lines.append(f"vllm:request_success_total{{{lab}}} {total[i]:.1f} {stamp(i)}")
        samples += t.size
    # End-to-end latency: lognormal whose median rises with the instance's load.
    lines.append("# TYPE vllm:e2e_request_latency_seconds histogram")
    for k, inst in enumerate(spec.instances):
        qps = spec.peak_qps * load * weights[k]
        per_inst_load = load * weights[k] * n_inst
        median = 0.2 * (1 + 0.8 * per_inst_load**2)
        n = qps * spec.step_seconds
        cum_n = np.cumsum(n)
        cum_b = {b: np.cumsum(n * stats.lognorm.cdf(b, SIGMA, scale=median)) for b in BUCKETS}
        cum_sum = np.cumsum(n * median * math.exp(SIGMA**2 / 2))
        lab = f'instance="{inst}",model_name="{spec.model}"'
        for i in range(t.size):
            for b in BUCKETS:
                lines.append(
                    f'vllm:e2e_request_latency_seconds_bucket{{{lab},le="{b}"}} {cum_b[b][i]:.1f} {stamp(i)}'
                )
            lines.append(
                f'vllm:e2e_request_latency_seconds_bucket{{{lab},le="+Inf"}} {cum_n[i]:.1f} {stamp(i)}'
            )
            lines.append(f"vllm:e2e_request_latency_seconds_count{{{lab}}} {cum_n[i]:.1f} {stamp(i)}")
            lines.append(f"vllm:e2e_request_latency_seconds_sum{{{lab}}} {cum_sum[i]:.3f} {stamp(i)}")
        samples += t.size * (len(BUCKETS) + 3)
    lines.append("# TYPE vllm:kv_cache_usage_perc gauge")
    for k, inst in enumerate(spec.instances):
        kv = (0.15 + 0.55 * load * weights[k] * n_inst + rng.normal(0, 0.02, t.size)).clip(0, 1)
        lab = f'instance="{inst}",model_name="{spec.model}"'
        for i in range(t.size):
            lines.append(f"vllm:kv_cache_usage_perc{{{lab}}} {kv[i]:.4f} {stamp(i)}")
        samples += t.size
    # DCGM: utilisation (percent) and framebuffer (MiB) per GPU of an 80 GiB card.
    total_mib = 81_920
    util = {
        g: (100 * spec.gpu_util_at_peak * load + rng.normal(0, 2, t.size)).clip(0, 100)
        for g in range(spec.gpus)
    }
    used = {
        g: (total_mib * spec.gpu_memory_share + rng.normal(0, 200, t.size)).clip(0, total_mib)
        for g in range(spec.gpus)
    }
    for name, values in (("DCGM_FI_DEV_GPU_UTIL", util), ("DCGM_FI_DEV_FB_USED", used)):
        lines.append(f"# TYPE {name} gauge")
        for g in range(spec.gpus):
            lab = f'gpu="{g}",UUID="GPU-sandbox-{g}",Hostname="sandbox-gpu",modelName="NVIDIA H100 80GB HBM3"'
            for i in range(t.size):
                lines.append(f"{name}{{{lab}}} {values[g][i]:.1f} {stamp(i)}")
            samples += t.size
    lines.append("# TYPE DCGM_FI_DEV_FB_FREE gauge")
    for g in range(spec.gpus):
        lab = f'gpu="{g}",UUID="GPU-sandbox-{g}",Hostname="sandbox-gpu",modelName="NVIDIA H100 80GB HBM3"'
        for i in range(t.size):
            lines.append(f"DCGM_FI_DEV_FB_FREE{{{lab}}} {total_mib - used[g][i]:.1f} {stamp(i)}")
        samples += t.size
    lines.append("# EOF")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return samples


def backfill(openmetrics: Path, tsdb: Path, promtool: str = "promtool", timeout: float = 600) -> None:
    """Turn the OpenMetrics file into TSDB blocks under ``tsdb`` (a Prometheus data directory)."""
    tsdb.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run(
            [promtool, "tsdb", "create-blocks-from", "openmetrics", str(openmetrics), str(tsdb)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RemoteCommandError(f"promtool backfill failed to run: {exc}") from None
    if proc.returncode != 0:
        raise RemoteCommandError(f"promtool backfill exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
