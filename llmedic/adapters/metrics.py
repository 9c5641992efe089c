"""Metrics sources: the Prometheus HTTP API, or a direct scrape of the targets' ``/metrics``.

Both answer the same question — :meth:`MetricsSource.observe`: the few quantities a playbook needs
per instance (latency percentiles from histograms, queue and KV-cache gauges, finish-reason counts,
memory) over a window — and say in :attr:`InstanceMetrics.source` / ``window`` how they got them.

* Prometheus: PromQL over ``[window]`` (``histogram_quantile`` over ``rate`` of buckets, etc.).
* Direct scrape (no Prometheus): two scrapes around the observed period; quantiles from the bucket
  deltas, with Prometheus' own interpolation (:func:`llmedic.quantiles.histogram_quantile`);
  gauges sampled through the period, so load that comes and goes inside it is seen.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families

from llmedic.adapters.http import translate_http_errors
from llmedic.config import InstanceConfig, MetricsConfig
from llmedic.errors import MetricsSourceError
from llmedic.quantiles import Bucket, bucket_delta, histogram_quantile

__all__ = [
    "ENGINE_METRICS",
    "InstanceMetrics",
    "MemorySeries",
    "MetricsSource",
    "PrometheusSource",
    "Scrape",
    "ScrapeSource",
    "make_source",
    "parse_scrape",
    "sample_memory",
]

T = TypeVar("T")

# Metric names per serving engine. vLLM renamed gpu_cache_usage_perc → kv_cache_usage_perc; both
# are accepted (the first present wins).
ENGINE_METRICS: dict[str, dict[str, tuple[str, ...]]] = {
    "vllm": {
        "e2e": ("vllm:e2e_request_latency_seconds",),
        "ttft": ("vllm:time_to_first_token_seconds",),
        "itl": ("vllm:inter_token_latency_seconds",),
        "waiting": ("vllm:num_requests_waiting",),
        "running": ("vllm:num_requests_running",),
        "kv_cache": ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
        "success": ("vllm:request_success",),
        "rss": ("process_resident_memory_bytes",),
    },
    "tgi": {
        "e2e": ("tgi_request_duration",),
        "ttft": (),
        "itl": ("tgi_request_mean_time_per_token_duration",),
        "waiting": ("tgi_queue_size",),
        "running": ("tgi_batch_current_size",),
        "kv_cache": (),
        "success": ("tgi_request_success",),
        "rss": ("process_resident_memory_bytes",),
    },
}
ENGINE_METRICS["openai"] = ENGINE_METRICS["vllm"]


@dataclass
class InstanceMetrics:
    """The few quantities a playbook reads for one instance, and where they came from."""

    instance: str
    source: str
    window: str
    requests: float | None = None
    e2e_p50: float | None = None
    e2e_p90: float | None = None
    e2e_p99: float | None = None
    ttft_p99: float | None = None
    itl_p99: float | None = None
    waiting: float | None = None
    running: float | None = None
    kv_cache_usage: float | None = None
    finished: dict[str, float] = field(default_factory=dict)
    rss_bytes: float | None = None

    @property
    def error_ratio(self) -> float | None:
        """Share of requests that finished with ``error``/``abort`` in the window."""
        total = sum(self.finished.values())
        if not total:
            return None
        return (self.finished.get("error", 0.0) + self.finished.get("abort", 0.0)) / total

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly figures (NaN becomes None)."""
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            if isinstance(value, float) and math.isnan(value):
                value = None
            out[key] = round(value, 4) if isinstance(value, float) else value
        out["error_ratio"] = None if self.error_ratio is None else round(self.error_ratio, 4)
        return out


class MetricsSource(Protocol):
    """Anything that can report :class:`InstanceMetrics`."""

    kind: str

    def observe(
        self,
        instances: Sequence[InstanceConfig],
        *,
        engine: str,
        window_seconds: float,
        during: Callable[[], T] | None = None,
    ) -> tuple[dict[str, InstanceMetrics], T | None]:
        """Run ``during`` (e.g. probes) and report each instance over the window that covers it."""
        ...

    def memory_series(
        self, instances: Sequence[InstanceConfig], *, engine: str, seconds: float, interval: float
    ) -> dict[str, MemorySeries]:
        """Resident memory of each instance over the last (Prometheus) or next (scrape) ``seconds``."""
        ...


@dataclass
class MemorySeries:
    """Resident memory samples of one instance: seconds (Unix time) and bytes."""

    t: list[float]
    y: list[float]
    source: str


def sample_memory(
    instances: Sequence[InstanceConfig],
    read: Callable[[InstanceConfig], tuple[float, float | None]],
    *,
    seconds: float,
    interval: float,
    source: str,
) -> dict[str, MemorySeries]:
    """Call ``read`` (→ Unix time, bytes or None) for every instance every ``interval`` seconds for
    ``seconds`` (all instances in the same tick, so their series line up)."""
    out = {i.name: MemorySeries([], [], source) for i in instances}
    deadline = time.monotonic() + seconds
    while True:
        tick = time.monotonic()
        for inst in instances:
            at, value = read(inst)
            if value is not None:
                out[inst.name].t.append(at)
                out[inst.name].y.append(value)
        if tick >= deadline:
            return out
        time.sleep(max(0.0, min(interval - (time.monotonic() - tick), deadline - time.monotonic())))


# ---------------------------------------------------------------- direct scrape


@dataclass
class Scrape:
    """One parsed ``/metrics`` page (only the families llmedic reads)."""

    at: float
    histograms: dict[str, list[Bucket]] = field(default_factory=dict)
    gauges: dict[str, float] = field(default_factory=dict)
    counters: dict[str, dict[str, float]] = field(default_factory=dict)
    """counter name → label value of its main label (e.g. finished_reason) → value."""


def parse_scrape(text: str, at: float | None = None) -> Scrape:
    """Parse Prometheus text exposition; histograms and counters are summed across label sets."""
    out = Scrape(at=time.time() if at is None else at)
    try:
        families = list(text_string_to_metric_families(text))
    except ValueError as exc:
        raise MetricsSourceError(f"unparseable /metrics page: {exc}") from exc
    for fam in families:
        if fam.type == "histogram":
            buckets: dict[float, float] = {}
            for s in fam.samples:
                if s.name.endswith("_bucket"):
                    le = float(s.labels["le"])
                    buckets[le] = buckets.get(le, 0.0) + s.value
            out.histograms[fam.name] = sorted(buckets.items())
        elif fam.type == "gauge":
            values = [s.value for s in fam.samples]
            if values:
                out.gauges[fam.name] = sum(values)
        elif fam.type == "counter":
            per: dict[str, float] = {}
            for s in fam.samples:
                if not s.name.endswith("_total"):
                    continue
                key = next(
                    iter(v for k, v in sorted(s.labels.items()) if k not in ("model_name", "engine")),
                    "",
                )
                per[key] = per.get(key, 0.0) + s.value
            out.counters[fam.name] = per
    return out


def _first(names: Sequence[str], table: dict[str, T]) -> T | None:
    for name in names:
        if name in table:
            return table[name]
    return None


class ScrapeSource:
    """Reads each instance's ``/metrics`` directly; for set-ups without Prometheus."""

    kind = "scrape"

    def __init__(
        self,
        *,
        timeout: float = 5.0,
        min_window_seconds: float = 3.0,
        sample_seconds: float = 0.25,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.min_window_seconds = min_window_seconds
        self.sample_seconds = sample_seconds
        self._client = httpx.Client(timeout=timeout, transport=transport)

    def scrape(self, instance: InstanceConfig) -> Scrape:
        """One scrape of one instance."""
        url = instance.metrics_endpoint
        with translate_http_errors(
            MetricsSourceError, f"scrape {url}", hint="check the instance's url / metrics_url"
        ):
            resp = self._client.get(url)
            resp.raise_for_status()
        return parse_scrape(resp.text)

    def observe(
        self,
        instances: Sequence[InstanceConfig],
        *,
        engine: str,
        window_seconds: float,
        during: Callable[[], T] | None = None,
    ) -> tuple[dict[str, InstanceMetrics], T | None]:
        """Scrape, run ``during`` (or wait ``min_window_seconds``) while sampling the gauges every
        ``sample_seconds``, scrape again; histograms and counters from the two edge scrapes' deltas,
        gauges over every sample (queue and running: mean; KV cache: max, like the PromQL)."""
        names = ENGINE_METRICS[engine]
        before = {i.name: self.scrape(i) for i in instances}
        samples: dict[str, list[Scrape]] = {name: [scrape] for name, scrape in before.items()}
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=1) as pool:
            future = pool.submit(during) if during is not None else None
            while True:
                finished = future is None or future.done()
                if finished and time.monotonic() - started >= self.min_window_seconds:
                    break
                if future is not None and not future.done():
                    wait([future], timeout=self.sample_seconds)
                else:
                    time.sleep(
                        min(
                            self.sample_seconds,
                            max(0.0, self.min_window_seconds - (time.monotonic() - started)),
                        )
                    )
                for inst in instances:
                    samples[inst.name].append(self.scrape(inst))
            result: T | None = future.result() if future is not None else None
        out: dict[str, InstanceMetrics] = {}
        for inst in instances:
            after = self.scrape(inst)
            samples[inst.name].append(after)
            first = before[inst.name]
            window = (
                f"{after.at - first.at:.1f}s between two scrapes, gauges sampled {len(samples[inst.name])}×"
            )
            m = InstanceMetrics(instance=inst.name, source="scrape", window=window)
            e2e_before = _first(names["e2e"], first.histograms) or []
            e2e_after = _first(names["e2e"], after.histograms)
            if e2e_after is not None:
                delta = bucket_delta(e2e_before, e2e_after)
                m.requests = delta[-1][1] if delta else 0.0
                m.e2e_p50, m.e2e_p90, m.e2e_p99 = (histogram_quantile(q, delta) for q in (0.5, 0.9, 0.99))
            for attr, key in (("ttft_p99", "ttft"), ("itl_p99", "itl")):
                h_after = _first(names[key], after.histograms)
                if h_after is not None:
                    h_before = _first(names[key], first.histograms) or []
                    setattr(m, attr, histogram_quantile(0.99, bucket_delta(h_before, h_after)))
            for attr, key, agg in (
                ("waiting", "waiting", statistics.fmean),
                ("running", "running", statistics.fmean),
                ("kv_cache_usage", "kv_cache", max),
            ):
                values = [v for sc in samples[inst.name] if (v := _first(names[key], sc.gauges)) is not None]
                if values:
                    setattr(m, attr, float(agg(values)))
            m.rss_bytes = _first(names["rss"], after.gauges)
            c1 = _first(names["success"], first.counters) or {}
            c2 = _first(names["success"], after.counters) or {}
            m.finished = {k: max(0.0, v - c1.get(k, 0.0)) for k, v in c2.items()}
            out[inst.name] = m
        return out, result

    def memory_series(
        self, instances: Sequence[InstanceConfig], *, engine: str, seconds: float, interval: float
    ) -> dict[str, MemorySeries]:
        """Sample every instance's resident memory every ``interval`` seconds for ``seconds``
        (all instances in the same tick, so their series line up)."""
        name = ENGINE_METRICS[engine]["rss"]

        def read(inst: InstanceConfig) -> tuple[float, float | None]:
            sc = self.scrape(inst)
            return sc.at, _first(name, sc.gauges)

        return sample_memory(instances, read, seconds=seconds, interval=interval, source="scrape")


# ---------------------------------------------------------------- Prometheus


class PrometheusSource:
    """Reads the Prometheus HTTP API (``/api/v1/query`` and ``/api/v1/query_range``)."""

    kind = "prometheus"

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        instance_label: str = "instance",
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.instance_label = instance_label
        self._client = httpx.Client(base_url=self.url, timeout=timeout, transport=transport)

    def _call(self, path: str, params: dict[str, str]) -> Any:
        hint = "check metrics.url in llmedic.yaml and that Prometheus is up"
        with translate_http_errors(MetricsSourceError, f"Prometheus {self.url}{path}", hint=hint):
            resp = self._client.get(path, params=params)
            if resp.status_code >= 500 or resp.status_code in (401, 403, 404):
                resp.raise_for_status()
        try:
            body = resp.json()
        except ValueError as exc:
            raise MetricsSourceError(f"Prometheus {self.url}{path}: answer is not JSON", hint=hint) from exc
        if body.get("status") != "success":
            raise MetricsSourceError(
                f"Prometheus rejected {params.get('query')!r}: {body.get('errorType')}: {body.get('error')}"
            )
        return body["data"]

    def query(self, promql: str) -> list[tuple[dict[str, str], float]]:
        """Instant query → (labels, value) per series."""
        data = self._call("/api/v1/query", {"query": promql})
        if data.get("resultType") == "scalar":
            return [({}, float(data["result"][1]))]
        return [(r["metric"], float(r["value"][1])) for r in data.get("result", [])]

    def query_range(
        self, promql: str, start: float, end: float, step: float
    ) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
        """Range query → (labels, [(t, value)]) per series."""
        params = {
            "query": promql,
            "start": f"{start:.3f}",
            "end": f"{end:.3f}",
            "step": f"{step:g}",
        }
        data = self._call("/api/v1/query_range", params)
        return [(r["metric"], [(float(t), float(v)) for t, v in r["values"]]) for r in data.get("result", [])]

    def _scalar(self, promql: str) -> float | None:
        rows = self.query(promql)
        if not rows:
            return None
        value = rows[0][1]
        return None if math.isnan(value) else value

    def selector(self, instance: InstanceConfig) -> str:
        """``{instance="host:port"}`` for an instance (from its metrics URL)."""
        netloc = urlsplit(instance.metrics_endpoint).netloc
        return f'{{{self.instance_label}="{netloc}"}}'

    def observe(
        self,
        instances: Sequence[InstanceConfig],
        *,
        engine: str,
        window_seconds: float,
        during: Callable[[], T] | None = None,
    ) -> tuple[dict[str, InstanceMetrics], T | None]:
        """Run ``during`` first, then query each instance over ``[window]``."""
        names = ENGINE_METRICS[engine]
        result = during() if during is not None else None
        w = f"{max(1, int(window_seconds))}s"
        out: dict[str, InstanceMetrics] = {}
        for inst in instances:
            sel = self.selector(inst)
            m = InstanceMetrics(instance=inst.name, source="prometheus", window=f"[{w}] ending now")

            def quant(q: float, metric: str, sel: str = sel) -> float | None:
                return self._scalar(f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket{sel}[{w}])))")

            if names["e2e"]:
                e2e = names["e2e"][0]
                m.e2e_p50, m.e2e_p90, m.e2e_p99 = (quant(q, e2e) for q in (0.5, 0.9, 0.99))
                m.requests = self._scalar(f"sum(increase({e2e}_count{sel}[{w}]))")
            if names["ttft"]:
                m.ttft_p99 = quant(0.99, names["ttft"][0])
            if names["itl"]:
                m.itl_p99 = quant(0.99, names["itl"][0])
            for attr, key in (("waiting", "waiting"), ("running", "running")):
                if names[key]:
                    setattr(m, attr, self._scalar(f"avg(avg_over_time({names[key][0]}{sel}[{w}]))"))
            if names["kv_cache"]:
                alts = " or ".join(f"max_over_time({n}{sel}[{w}])" for n in names["kv_cache"])
                m.kv_cache_usage = self._scalar(f"max({alts})")
            m.rss_bytes = self._scalar(f"max({names['rss'][0]}{sel})")
            if names["success"]:
                label = "finished_reason" if engine != "tgi" else "job"
                rows = self.query(f"sum by ({label}) (increase({names['success'][0]}_total{sel}[{w}]))")
                m.finished = {lbl.get(label, ""): v for lbl, v in rows if not math.isnan(v)}
            out[inst.name] = m
        return out, result

    def memory_series(
        self, instances: Sequence[InstanceConfig], *, engine: str, seconds: float, interval: float
    ) -> dict[str, MemorySeries]:
        """``process_resident_memory_bytes`` of each instance over the last ``seconds`` (a range
        query at ``interval`` resolution, at most 11,000 points as Prometheus allows)."""
        metric = ENGINE_METRICS[engine]["rss"][0]
        end = time.time()
        step = max(interval, seconds / 11_000)
        out: dict[str, MemorySeries] = {}
        for inst in instances:
            rows = self.query_range(f"max({metric}{self.selector(inst)})", end - seconds, end, step)
            points = rows[0][1] if rows else []
            out[inst.name] = MemorySeries([p[0] for p in points], [p[1] for p in points], "prometheus")
        return out


def make_source(config: MetricsConfig) -> MetricsSource:
    """The metrics source ``llmedic.yaml`` asks for."""
    if config.kind == "prometheus":
        assert config.url is not None  # guaranteed by MetricsConfig validation
        return PrometheusSource(
            str(config.url), timeout=config.timeout_seconds, instance_label=config.instance_label
        )
    return ScrapeSource(timeout=config.timeout_seconds)
