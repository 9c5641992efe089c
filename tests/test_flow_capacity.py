"""The capacity review end to end against a real Prometheus: a synthetic month of the sandbox
fleet's metrics and DCGM GPU metrics backfilled with promtool, Prometheus started on it (and
scraping the live fleet), the review flow run twice — report, chart, table, recommendations, and
one review incident that the second run updates instead of duplicating."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from llmedic.monitoring import HistoryPrometheus
from llmedic.reviews.incidents import ReviewIncidents
from llmedic_sandbox.history import HistorySpec, backfill, write_openmetrics
from tests.conftest import Fleet

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def prometheus(sandbox: Fleet, tmp_path: Path) -> Iterator[HistoryPrometheus]:
    if shutil.which("prometheus") is None or shutil.which("promtool") is None:
        if os.environ.get("CI"):
            pytest.fail("prometheus/promtool missing in CI (make tools installs them)")
        pytest.skip("prometheus is not installed (run `make tools` as root)")
    netlocs = tuple(urlsplit(u).netloc for n, u in sorted(sandbox.urls.items()) if n != "sandbox-3")
    spec = HistorySpec(instances=netlocs, end=time.time() // 1800 * 1800, step_seconds=1800, imbalance=2.0)
    write_openmetrics(spec, tmp_path / "history.om")
    backfill(tmp_path / "history.om", tmp_path / "tsdb")
    prom = HistoryPrometheus(tmp_path, tmp_path / "tsdb", targets=list(netlocs))
    prom.start()
    yield prom
    prom.stop()


def test_capacity_review_against_real_prometheus(
    sandbox: Fleet, prometheus: HistoryPrometheus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.capacity_review import capacity_review

    env = yaml.safe_load(sandbox.config.read_text())
    env["metrics"] = {"kind": "prometheus", "url": prometheus.url, "timeout_seconds": 30}
    env["capacity"] = {"services": {"pharma-qa": {"max_qps_per_instance": 6, "latency_slo_seconds": 2.0}}}
    (tmp_path / "llmedic.yaml").write_text(yaml.safe_dump(env))
    monkeypatch.setenv("LLMEDIC_CONFIG", str(tmp_path / "llmedic.yaml"))

    state = capacity_review(return_state=True)
    data: dict[str, Any] = state.result(raise_on_failure=False)
    assert state.is_completed(), state.message
    assert data["below_target"] == ["pharma-qa"] and data["errors"] == []
    assert set(data["recommendations"]["pharma-qa"]) >= {
        "add_gpus",
        "rebalance_replicas",
        "tune_batch_limits",
    }
    out = Path(data["directory"])
    assert (out / "pharma-qa.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    assert "| GPU utilisation |" in report and "**below target**" in report
    assert "sandbox-0 carries 2.0× the load of sandbox-" in report
    review = yaml.safe_load((out / "review.json").read_text())
    gpu = next(r for r in review["resources"] if r["resource"] == "gpu_utilisation")
    assert gpu["samples"] >= 719 and gpu["reserve_date"] is not None and gpu["slope_per_day"] > 0
    (incident,) = data["incidents"].values()
    assert incident.startswith("opened capacity-pharma-qa-")

    again = capacity_review(return_state=True).result(raise_on_failure=False)
    assert again["incidents"]["pharma-qa"] == incident.replace("opened", "updated")
    assert len(ReviewIncidents(Path(os.environ["LLMEDIC_HOME"])).all()) == 1


def test_capacity_review_without_prometheus_says_what_it_needs(sandbox: Fleet) -> None:
    from flows.capacity_review import capacity_review

    state = capacity_review(return_state=True)
    assert state.is_failed() and state.message.startswith(
        "config-invalid: the capacity review reads 30 days of history and needs Prometheus"
    )
