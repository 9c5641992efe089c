import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llmedic.adapters.endpoint import Endpoint
from tests.conftest import Fleet

QUESTION = "What is the main risk of combining warfarin with aspirin?"


def chat(url: str, question: str = QUESTION) -> httpx.Response:
    body = {"model": "x", "messages": [{"role": "user", "content": question}], "max_tokens": 16}
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)


def test_openai_compatible_answers_from_the_knowledge_base(sandbox: Fleet) -> None:
    url = sandbox.urls["sandbox-0"]
    resp = chat(url)
    assert resp.status_code == 200
    body = resp.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "increased bleeding risk"}
    assert (
        chat(url, "Who won the 1998 world cup?").json()["choices"][0]["message"]["content"] == "I don't know."
    )
    assert [m["id"] for m in httpx.get(f"{url}/v1/models").json()["data"]] == ["pharma-qa-1.0"]


def test_metrics_use_vllm_names(sandbox: Fleet) -> None:
    url = sandbox.urls["sandbox-0"]
    chat(url)
    text = httpx.get(f"{url}/metrics").text
    for name in (
        "vllm:e2e_request_latency_seconds_bucket",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        'vllm:request_success_total{engine="0",finished_reason="stop"',
        "process_resident_memory_bytes",
    ):
        assert name in text, name


def test_slow_fault_is_cleared_by_restart_unless_it_survives(sandbox: Fleet) -> None:
    url = sandbox.urls["sandbox-0"]
    with Endpoint(url) as ep:
        sandbox.admin("sandbox-0", "faults", {"kind": "slow", "delay_seconds": 0.6})
        assert ep.probe(QUESTION).seconds >= 0.6
        sandbox.admin("sandbox-0", "restart")
        time.sleep(0.6)
        assert ep.health() and ep.probe(QUESTION).seconds < 0.6
        sandbox.admin("sandbox-0", "faults", {"kind": "slow", "delay_seconds": 0.6, "survives_restart": True})
        sandbox.admin("sandbox-0", "restart")
        time.sleep(0.6)
        assert ep.probe(QUESTION).seconds >= 0.6
    assert sandbox.state("sandbox-0")["restarts"] == 2


@pytest.mark.parametrize(
    ("fault", "status"),
    [({"kind": "down"}, 503), ({"kind": "errors", "rate": 1.0}, 500)],
)
def test_failure_faults(sandbox: Fleet, fault: dict[str, object], status: int) -> None:
    sandbox.admin("sandbox-1", "faults", fault)
    assert chat(sandbox.urls["sandbox-1"]).status_code == status


def test_drain_concurrency_and_reset(sandbox: Fleet) -> None:
    sandbox.admin("sandbox-2", "drain")
    sandbox.admin("sandbox-2", "concurrency", {"limit": 3})
    state = sandbox.state("sandbox-2")
    assert (state["drained"], state["concurrency_limit"]) == (True, 3)
    sandbox.admin("sandbox-2", "reset")
    state = sandbox.state("sandbox-2")
    assert (state["drained"], state["concurrency_limit"], state["actions"]) == (False, 16, [])
    assert sandbox.state("sandbox-3")["standby"] is True


@pytest.mark.parametrize(
    ("action", "body", "detail"),
    [
        ("faults", {"kind": "meteor"}, "kind"),
        ("concurrency", {"limit": 0}, "limit"),
        ("concurrency", {"limt": 4}, "limt"),
    ],
)
def test_admin_rejects_bad_input_with_the_field(
    sandbox: Fleet, action: str, body: dict[str, object], detail: str
) -> None:
    resp = httpx.post(f"{sandbox.urls['sandbox-0']}/admin/{action}", json=body)
    assert resp.status_code == 400
    assert detail in [d["loc"] for d in resp.json()["error"]["detail"]]


def test_bad_chat_body(sandbox: Fleet) -> None:
    resp = httpx.post(f"{sandbox.urls['sandbox-0']}/v1/chat/completions", content=b"{not json")
    assert resp.status_code == 400 and resp.json()["error"]["detail"][0]["loc"] == "body"


def test_the_knowledge_base_is_a_declared_dataset_and_data_faults_reach_the_service(
    sandbox: Fleet, clean_environ: Path
) -> None:
    from llmedic.adapters.datastore import DataStore
    from llmedic.auditing import audit_version
    from llmedic.catalog import AnomalyType
    from llmedic.config import load_environment
    from llmedic_sandbox.data_faults import inject

    cfg = load_environment(sandbox.config).dataset("drug-interactions")
    assert cfg.publish_to == sandbox.knowledge and cfg.consumers == ["pharma-qa"]
    store = DataStore(clean_environ / "datasets")
    url = sandbox.urls["sandbox-0"]

    def answer() -> str:
        return str(chat(url).json()["choices"][0]["message"]["content"])

    assert answer() == "increased bleeding risk"
    good = store.ensure_seeded("drug-interactions", cfg)
    bad = inject(store, "drug-interactions", cfg, "blank", column="answers", share=1.0)
    assert bad.producer.step == "upstream-etl" and bad.parent == good.id  # type: ignore[union-attr]
    deadline = time.monotonic() + 5
    while answer() != "I don't know." and time.monotonic() < deadline:
        time.sleep(0.1)
    assert answer() == "I don't know."  # the service now serves the corrupted version
    (finding,) = audit_version(store, "drug-interactions", cfg).breaches(AnomalyType.DATA_MISSING)
    assert (finding.column, finding.count) == ("answers", 100)
    store.set_current("drug-interactions", good.id, cfg, by="test", why="rollback")  # type: ignore[union-attr]
    deadline = time.monotonic() + 5
    while answer() != "increased bleeding risk" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert answer() == "increased bleeding risk"


@pytest.fixture
def tracing() -> Iterator[None]:
    """tracemalloc on for one test (what `llmedic sandbox --trace-memory` does for the process)."""
    tracemalloc.start()
    yield
    tracemalloc.stop()


def _ask(fleet: Fleet, name: str, n: int) -> None:
    ep = Endpoint(fleet.urls[name], timeout=10)
    ep.burst(n, prompt="What is the main risk of combining warfarin with aspirin?", concurrency=4)


def test_heap_profile_points_at_the_leaking_line(sandbox: Fleet, tracing: None) -> None:
    from llmedic.adapters.control import SandboxControl
    from llmedic.config import InstanceConfig

    sandbox.admin("sandbox-3", "faults", {"kind": "leak", "bytes_per_request": 4_000_000})
    _ask(sandbox, "sandbox-3", 40)
    heap = SandboxControl().heap_profile(InstanceConfig(name="sandbox-3", url=sandbox.urls["sandbox-3"]))  # type: ignore[arg-type]
    top = heap["top"][0]
    assert heap["kind"] == "tracemalloc" and top["site"].endswith(
        "llmedic_sandbox/instance.py:" + str(_leak_line())
    )
    assert top["bytes"] >= 40 * 62_500 and top["count"] >= 40


def _leak_line() -> int:
    src = (Path(__file__).resolve().parents[1] / "llmedic_sandbox" / "instance.py").read_text().splitlines()
    return next(n for n, line in enumerate(src, 1) if "self._retained.append(" in line)


def test_time_based_leak_grows_without_traffic(sandbox: Fleet) -> None:
    sandbox.admin(
        "sandbox-3", "faults", {"kind": "leak", "bytes_per_request": 0, "bytes_per_second": 100_000_000}
    )
    first = int(sandbox.state("sandbox-3")["rss_bytes"])  # type: ignore[call-overload]
    time.sleep(0.5)
    grown = int(sandbox.state("sandbox-3")["rss_bytes"]) - first  # type: ignore[call-overload]
    assert 40_000_000 <= grown <= 150_000_000
    sandbox.admin("sandbox-3", "restart")
    assert int(sandbox.state("sandbox-3")["rss_bytes"]) < first + 20_000_000  # type: ignore[call-overload]


def test_model_bound_fault_follows_the_version(sandbox: Fleet) -> None:
    q = "What is the main risk of combining warfarin with aspirin?"
    ep = Endpoint(sandbox.urls["sandbox-3"], timeout=10)
    sandbox.admin("sandbox-3", "faults", {"kind": "wrong_answers", "rate": 1.0, "model_version": "m-bad"})
    assert ep.probe(q).answer == "increased bleeding risk"
    sandbox.admin("sandbox-3", "model", {"version": "m-bad"})
    assert ep.probe(q).answer != "increased bleeding risk"
    sandbox.admin("sandbox-3", "model", {"version": "pharma-qa-1.0"})
    assert ep.probe(q).answer == "increased bleeding risk"


def test_the_sandbox_commands_reach_llmedic_as_a_plugin() -> None:
    """demo, gameday, sandbox, sandbox-history and data inject come from the `llmedic.commands`
    entry points (production modules never import the sandbox)."""
    from typer.testing import CliRunner

    from llmedic.cli import app

    top = CliRunner().invoke(app, ["--help"], terminal_width=200)
    assert top.exit_code == 0
    for name in ("demo", "gameday", "sandbox", "sandbox-history"):
        assert f" {name} " in top.output, name
    data = CliRunner().invoke(app, ["data", "--help"], terminal_width=200)
    assert " inject " in data.output
