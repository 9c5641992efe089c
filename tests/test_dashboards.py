"""The shipped Grafana dashboards are structurally valid and every metric they query is one the
sandbox (vLLM names), the DCGM exporter or the llmedic receiver actually exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from llmedic.receiver.app import ReceiverMetrics
from llmedic.receiver.outbox import Outbox
from llmedic.store.incidents import IncidentStore
from llmedic_sandbox.instance import SandboxInstance, dcgm_exposition
from llmedic_sandbox.knowledge import load_knowledge

GRAFANA = Path(__file__).resolve().parents[1] / "deployments" / "grafana"
NAME = re.compile(
    r"\b(vllm:[a-z0-9_]+|DCGM_FI_[A-Z0-9_]+|llmedic_[a-z0-9_]+|process_resident_memory_bytes)\b"
)
SUFFIXES = {
    "counter": ("",),  # the TYPE line already names the _total sample
    "histogram": ("_bucket", "_sum", "_count"),
    "gauge": ("",),
    "summary": ("_sum", "_count"),
}


def exported(tmp_path: Path) -> set[str]:
    inst = SandboxInstance(name="s", knowledge=load_knowledge())
    inst.refresh_gauges()
    receiver = ReceiverMetrics(Outbox(tmp_path / "llmedic.db"), IncidentStore(tmp_path))
    text = generate_latest(inst.metrics.registry).decode() + generate_latest(receiver.registry).decode()
    scenario = tmp_path / "gpu.json"
    scenario.write_text(json.dumps({"devices": [{}]}))
    text += dcgm_exposition(scenario)
    # From the TYPE lines: a labelled family with no sample yet still declares its name.
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            names |= {name + suffix for suffix in SUFFIXES.get(kind, ("",))}
    return names


@pytest.mark.parametrize("file", sorted(p.name for p in GRAFANA.glob("*.json")))
def test_dashboard_is_valid_and_queries_exported_metrics(file: str, tmp_path: Path) -> None:
    d = json.loads((GRAFANA / file).read_text())
    assert d["uid"] and d["title"] and d["schemaVersion"] >= 36
    assert any(v["name"] == "datasource" and v["type"] == "datasource" for v in d["templating"]["list"])
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)) and ids
    known = exported(tmp_path)
    for p in d["panels"]:
        assert p["datasource"]["uid"] == "${datasource}" and p["targets"], p["title"]
        assert {"x", "y", "w", "h"} <= set(p["gridPos"])
        for t in p["targets"]:
            names = set(NAME.findall(t["expr"]))
            assert names, t["expr"]
            assert names <= known, f"{p['title']}: {sorted(names - known)} not exported"
