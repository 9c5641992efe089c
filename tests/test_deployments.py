"""The shipped monitoring configuration is valid for the real tools and routes to real anomaly types."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from llmedic.catalog import AnomalyType
from llmedic.monitoring import fast_rules

DEPLOY = Path(__file__).resolve().parents[1] / "deployments"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} missing in CI (make tools installs it)")
        pytest.skip(f"{name} is not installed (run `make tools` as root)")
    return path


@pytest.mark.parametrize("rules", ["shipped", "fast"])
def test_promtool_accepts_the_rules(tmp_path: Path, rules: str) -> None:
    path = DEPLOY / "prometheus" / "llmedic-rules.yml"
    if rules == "fast":
        path = tmp_path / "fast.yml"
        path.write_text(fast_rules((DEPLOY / "prometheus" / "llmedic-rules.yml").read_text()))
    result = subprocess.run(
        [tool("promtool"), "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 10 rules found" in result.stdout


def test_promtool_accepts_the_example_config() -> None:
    result = subprocess.run(
        [tool("promtool"), "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_amtool_accepts_the_alertmanager_config() -> None:
    result = subprocess.run(
        [tool("amtool"), "check-config", str(DEPLOY / "alertmanager" / "alertmanager.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rule_routes_to_a_real_anomaly_type_or_is_deliberately_unrouted() -> None:
    groups = yaml.safe_load((DEPLOY / "prometheus" / "llmedic-rules.yml").read_text())["groups"]
    labels = {r["alert"]: r["labels"].get("anomaly") for g in groups for r in g["rules"]}
    assert {a for a in labels.values() if a} <= {t.value for t in AnomalyType}
    assert [name for name, a in labels.items() if a is None] == ["VLLMHighErrorRatio"]
    assert labels["VLLMHighP99Latency"] == "latency" and labels["GPUXidError"] == "gpu_fault"


def test_alertmanager_sends_resolved_with_bearer_auth() -> None:
    cfg = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    hook = next(r for r in cfg["receivers"] if r["name"] == "llmedic")["webhook_configs"][0]
    assert hook["send_resolved"] is True
    assert hook["http_config"]["authorization"]["type"] == "Bearer"
    assert hook["url"].endswith("/alerts/alertmanager")


def test_prefect_yaml_matches_the_served_deployments() -> None:
    """deployments/prefect.yaml (scale-out on a process work pool) deploys exactly what `llmedic up`
    serves: every flow, with the same tags, concurrency limits and default schedules."""
    import importlib

    from flows.registry import ANOMALY_FLOWS, MANUAL_FLOWS, SCHEDULED_FLOWS
    from llmedic.config import ScheduleConfig

    doc = yaml.safe_load((DEPLOY / "prefect.yaml").read_text())
    got = {}
    for d in doc["deployments"]:
        path, _, fn = d["entrypoint"].partition(":")
        flow = getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), fn)
        assert d["work_pool"]["name"] == "llmedic" and d["name"] == "default"
        got[flow.name] = (
            tuple(d["tags"]),
            d["concurrency_limit"]["limit"],
            tuple(s["cron"] for s in d.get("schedules", [])),
        )
    sc = ScheduleConfig()
    want = {fl.name: (("llmedic",), 4, ()) for fl in ANOMALY_FLOWS}
    want |= {fl.name: (("llmedic", "manual"), 1, ()) for fl in MANUAL_FLOWS}
    want |= {
        fl.name: (("llmedic", "scheduled"), 1, (getattr(sc, key),)) for key, fl in SCHEDULED_FLOWS.items()
    }
    assert got == want
