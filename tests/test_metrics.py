import json
import math
import re

import httpx
import pytest

from llmedic.adapters.endpoint import Endpoint
from llmedic.adapters.metrics import PrometheusSource, ScrapeSource, parse_scrape
from llmedic.config import InstanceConfig
from llmedic.errors import MetricsSourceError
from tests.conftest import Fleet

PROMPT = "What is the main risk of combining warfarin with aspirin?"


def test_scrape_source_measures_an_injected_delay(sandbox: Fleet) -> None:
    inst = InstanceConfig(name="sandbox-0", url=sandbox.urls["sandbox-0"])  # type: ignore[arg-type]
    sandbox.admin("sandbox-0", "faults", {"kind": "slow", "delay_seconds": 0.9})
    src = ScrapeSource(min_window_seconds=0.5)
    with Endpoint(inst.base_url) as ep:
        figures, results = src.observe(
            [inst], engine="vllm", window_seconds=60, during=lambda: ep.burst(6, prompt=PROMPT, concurrency=6)
        )
    m = figures["sandbox-0"]
    assert results is not None and len(results) == 6
    assert m.source == "scrape" and re.fullmatch(
        r"\d+\.\ds between two scrapes, gauges sampled \d+×", m.window
    )
    assert m.requests is not None and m.requests >= 6
    # every request took ≥ 0.9 s, so p99 lies in the (0.8, 1.0] or (1.0, 1.5] bucket
    assert m.e2e_p99 is not None and 0.9 <= m.e2e_p99 <= 1.5
    assert m.finished.get("stop", 0) >= 6


def test_parse_scrape_rejects_garbage() -> None:
    with pytest.raises(MetricsSourceError):
        parse_scrape("this is not a metrics page")


def prometheus(answers: dict[str, object]) -> tuple[PrometheusSource, list[str]]:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        query = request.url.params["query"]
        seen.append(query)
        for key, value in answers.items():
            if key in query:
                return httpx.Response(
                    200, json={"status": "success", "data": {"resultType": "vector", "result": value}}
                )
        return httpx.Response(200, json={"status": "success", "data": {"resultType": "vector", "result": []}})

    return PrometheusSource("http://prom:9090", transport=httpx.MockTransport(handler)), seen


def test_prometheus_source_builds_promql_and_reads_vectors() -> None:
    src, seen = prometheus(
        {
            "histogram_quantile(0.99, sum by (le) (rate(vllm:e2e": [{"metric": {}, "value": [0, "2.75"]}],
            "vllm:num_requests_waiting": [{"metric": {}, "value": [0, "0.5"]}],
            "finished_reason": [
                {"metric": {"finished_reason": "stop"}, "value": [0, "90"]},
                {"metric": {"finished_reason": "error"}, "value": [0, "10"]},
            ],
        }
    )
    inst = InstanceConfig(name="a", url="http://10.0.0.5:8000")  # type: ignore[arg-type]
    figures, _ = src.observe([inst], engine="vllm", window_seconds=300)
    m = figures["a"]
    assert (m.e2e_p99, m.waiting, m.error_ratio, m.source) == (2.75, 0.5, 0.1, "prometheus")
    assert (
        'histogram_quantile(0.99, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket{instance="10.0.0.5:8000"}[300s])))'
        in seen
    )
    assert any("vllm:kv_cache_usage_perc" in q and "vllm:gpu_cache_usage_perc" in q for q in seen)


def test_prometheus_nan_is_no_value() -> None:
    src, _ = prometheus({"histogram_quantile": [{"metric": {}, "value": [0, "NaN"]}]})
    inst = InstanceConfig(name="a", url="http://10.0.0.5:8000")  # type: ignore[arg-type]
    m = src.observe([inst], engine="vllm", window_seconds=60)[0]["a"]
    assert m.e2e_p99 is None and not (isinstance(m.e2e_p99, float) and math.isnan(m.e2e_p99))


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (
            httpx.Response(503, text="overloaded"),
            "Prometheus http://prom:9090/api/v1/query: HTTP 503: overloaded",
        ),
        (
            httpx.Response(400, json={"status": "error", "errorType": "bad_data", "error": "parse error"}),
            "Prometheus rejected 'up': bad_data: parse error",
        ),
        (httpx.Response(200, text="<html>"), "Prometheus http://prom:9090/api/v1/query: answer is not JSON"),
    ],
)
def test_prometheus_errors(response: httpx.Response, message: str) -> None:
    src = PrometheusSource("http://prom:9090", transport=httpx.MockTransport(lambda r: response))
    with pytest.raises(MetricsSourceError) as exc:
        src.query("up")
    assert exc.value.message == message


def test_unreachable_metrics_source_is_a_clear_error() -> None:
    src = PrometheusSource("http://127.0.0.1:1", timeout=2)
    with pytest.raises(MetricsSourceError) as exc:
        src.query("up")
    assert exc.value.message.startswith("Prometheus http://127.0.0.1:1/api/v1/query: cannot connect")
    assert exc.value.hint == "check metrics.url in llmedic.yaml and that Prometheus is up"
    assert json.dumps(exc.value.message)  # serialisable for the incident record


def test_scrape_source_sees_load_inside_the_window(sandbox: Fleet) -> None:
    """Gauges are sampled during the burst: KV-cache saturation and queueing that exist only while
    the probes run are reported (the edge scrapes alone would see an idle instance)."""
    inst = InstanceConfig(name="sandbox-2", url=sandbox.urls["sandbox-2"])  # type: ignore[arg-type]
    sandbox.admin("sandbox-2", "faults", {"kind": "kv_pressure", "kv_slots": 1})
    sandbox.admin("sandbox-2", "concurrency", {"limit": 2})
    src = ScrapeSource(min_window_seconds=0.5, sample_seconds=0.05)
    with Endpoint(inst.base_url) as ep:
        figures, _ = src.observe(
            [inst],
            engine="vllm",
            window_seconds=60,
            during=lambda: ep.burst(12, prompt=PROMPT, concurrency=12),
        )
    m = figures["sandbox-2"]
    assert m.kv_cache_usage == 1.0  # two running requests in a one-request KV cache
    assert m.waiting is not None and m.waiting > 1  # ten requests queued behind the limit of two
    assert "gauges sampled" in m.window


def test_prometheus_range_query() -> None:
    seen: dict[str, str] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.update(dict(request.url.params), path=request.url.path)
        result = [{"metric": {"instance": "a:1"}, "values": [[100, "1.5e9"], [160, "1.6e9"]]}]
        return httpx.Response(
            200, json={"status": "success", "data": {"resultType": "matrix", "result": result}}
        )

    src = PrometheusSource("http://prom:9090", transport=httpx.MockTransport(handler))
    rows = src.query_range("process_resident_memory_bytes", start=100, end=160, step=60)
    assert rows == [({"instance": "a:1"}, [(100.0, 1.5e9), (160.0, 1.6e9)])]
    assert seen == {
        "path": "/api/v1/query_range",
        "query": "process_resident_memory_bytes",
        "start": "100.000",
        "end": "160.000",
        "step": "60",
    }


def test_prometheus_memory_series_is_a_range_query_per_instance() -> None:
    from llmedic.config import InstanceConfig

    seen: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(dict(request.url.params))
        result = [{"metric": {}, "values": [[100, "1.5e9"], [115, "1.6e9"]]}]
        return httpx.Response(
            200, json={"status": "success", "data": {"resultType": "matrix", "result": result}}
        )

    src = PrometheusSource("http://prom:9090", transport=httpx.MockTransport(handler))
    inst = InstanceConfig(name="a", url="http://10.0.0.5:8000")  # type: ignore[arg-type]
    out = src.memory_series([inst], engine="vllm", seconds=3600, interval=15)
    assert (out["a"].t, out["a"].y, out["a"].source) == ([100.0, 115.0], [1.5e9, 1.6e9], "prometheus")
    (params,) = seen
    assert params["query"] == 'max(process_resident_memory_bytes{instance="10.0.0.5:8000"})'
    assert float(params["end"]) - float(params["start"]) == pytest.approx(3600) and params["step"] == "15"


def test_scrape_memory_series_samples_every_instance(sandbox: Fleet) -> None:
    from llmedic.config import load_environment

    svc = load_environment(sandbox.config).services[0]
    out = ScrapeSource().memory_series(svc.instances, engine="vllm", seconds=0.6, interval=0.2)
    assert set(out) == {i.name for i in svc.instances}
    for series in out.values():
        assert len(series.t) >= 3 and series.y[0] == 1_500_000_000 and series.source == "scrape"
