"""The gpu_fault flow against the real sandbox fleet with fake GPUs behind the NVML interface and a
real kernel log read through the allowlisted command: an application XID restarts the worker, a GPU
that needs a reset is reset through the host's reset_gpu command, a GPU fallen off the bus drains
its node and marks it for replacement, throttling sheds load, and a healthy GPU is a false positive
that touches nothing. Approvals recorded."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmedic.alerts import Alert
from llmedic.catalog import AnomalyType
from llmedic.incident import IncidentRequest, Outcome, utcnow
from llmedic_sandbox.fleet import FAKE_NVML_BACKEND
from tests.conftest import Fleet
from tests.flowrun import approve, run_flow

pytestmark = pytest.mark.usefixtures("prefect_harness")

XID = "[ 4711.2] NVRM: Xid (PCI:0000:11:00): {xid}, pid=2345, {detail}\n"


def request(target: str = "sandbox-1") -> IncidentRequest:
    alert = Alert(
        source="manual",
        anomaly=AnomalyType.GPU_FAULT,
        alertname="GpuXidError",
        target=target,
        starts_at=utcnow(),
    )
    return IncidentRequest(alert=alert)


def flow() -> Any:
    from flows.gpu_fault import gpu_fault

    return gpu_fault


def break_gpu(fleet: Fleet, index: int, xid: int | None = None, **device: Any) -> None:
    data = json.loads(fleet.gpu_scenario.read_text())
    data["devices"][index].update(device)
    fleet.gpu_scenario.write_text(json.dumps(data))
    if xid is not None:
        with fleet.gpu_scenario.with_name("kern.log").open("a") as fh:
            fh.write(XID.format(xid=xid, detail="injected by the test"))


def actions(fleet: Fleet, name: str) -> list[str]:
    return [a["action"] for a in fleet.state(name)["actions"]]  # type: ignore[index]


def test_an_application_xid_restarts_the_worker(sandbox: Fleet) -> None:
    sandbox.admin("sandbox-1", "faults", {"kind": "cuda_error"})
    break_gpu(sandbox, 1, xid=13)
    state, inc = run_flow(flow(), request(), approve(), timeout=180)
    assert state.is_completed(), inc.escalation_reason
    assert inc.outcome == Outcome.RESOLVED and inc.diagnosis.startswith("app_error")
    assert (inc.approvals[0].action, inc.approvals[0].by) == ("restart_worker", "alice")
    assert actions(sandbox, "sandbox-1") == ["inject", "drain", "restart", "undrain"]
    xids = next(e for e in inc.evidence if e.name == "kernel_log_xids").data["xids"]
    assert [(x["xid"], x["pci"]) for x in xids] == [(13, "PCI:0000:11:00")]
    log = next(e for e in inc.evidence if e.name == "service_log").data
    assert log["keyword_counts"]["CUDA error"] >= 3 and log["templates"][0]["template"] == (
        "ERROR sandbox-<n>: request failed: RuntimeError: CUDA error: an illegal memory access was encountered"
    )
    host = next(e for e in inc.evidence if e.name == "host").data
    assert host["cpus"] and host["problems"] == []


def test_a_gpu_that_needs_a_reset_is_reset_through_the_host_command(sandbox: Fleet) -> None:
    # The kernel log shows nothing this time: the DCGM exporter's last-XID gauge does.
    break_gpu(sandbox, 1, ecc_uncorrected=2, remapped=[0, 1, 1, 0], last_xid=48)
    state, inc = run_flow(flow(), request(), approve(), timeout=180)
    assert state.is_completed(), inc.escalation_reason
    assert inc.outcome == Outcome.RESOLVED and inc.diagnosis.startswith("gpu_reset_needed")
    fix = next(a for a in inc.actions if a.name == "reset_gpu")
    assert fix.result.startswith("local: GPU 1: GPU 1 reset; sandbox-1 restarted and healthy")
    dev = json.loads(sandbox.gpu_scenario.read_text())["devices"][1]
    assert (dev["ecc_uncorrected"], dev["remapped"]) == (0, [0, 1, 0, 0])
    assert actions(sandbox, "sandbox-1") == ["drain", "restart", "undrain"]
    dcgm = next(e for e in inc.evidence if e.name == "dcgm")
    assert "GPU 1: 58 °C, util 40%, last XID 48" in dcgm.summary
    assert "XID 48 (ROBUST_CHANNEL_GPU_ECC_DBE)" in inc.diagnosis
    assert inc.verification is not None and [c.name for c in inc.verification.checks] == [
        "health",
        "canary_completions",
        "gpus_need_no_action",
        "no_new_xids",
    ]


def test_a_gpu_off_the_bus_drains_its_node(
    sandbox: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # sandbox-1 lives on its own node here, with its own fake GPU and kernel log.
    env = yaml.safe_load(sandbox.config.read_text())
    node_b = tmp_path / "node-b" / "gpu.json"
    node_b.parent.mkdir()
    node_b.write_text(json.dumps({"devices": [{"lost": True, "pci": "00000000:11:00.0"}]}))
    (node_b.with_name("kern.log")).write_text(XID.format(xid=79, detail="GPU has fallen off the bus."))
    env["hosts"].append(
        {
            "name": "node-b",
            "nvml": {"backend": FAKE_NVML_BACKEND, "scenario": str(node_b)},
            "kernel_log": "kernel_log_b",
        }
    )
    env["commands"]["kernel_log_b"] = {"template": f"cat {node_b.with_name('kern.log')}"}
    inst = next(i for i in env["services"][0]["instances"] if i["name"] == "sandbox-1")
    inst["host"], inst["gpus"] = "node-b", [0]
    (tmp_path / "llmedic.yaml").write_text(yaml.safe_dump(env))
    monkeypatch.setenv("LLMEDIC_CONFIG", str(tmp_path / "llmedic.yaml"))
    state, inc = run_flow(flow(), request(), approve(), timeout=180)
    assert state.is_completed(), inc.escalation_reason
    assert inc.outcome == Outcome.RESOLVED and inc.diagnosis.startswith("gpu_lost")
    assert inc.approvals[0].action == "drain_node"
    assert sandbox.state("sandbox-1")["drained"] is True
    assert all(sandbox.state(n)["drained"] is False for n in ("sandbox-0", "sandbox-2"))
    (mark,) = (Path(os.environ["LLMEDIC_HOME"]) / "nodes" / "replace.jsonl").read_text().splitlines()
    assert json.loads(mark)["host"] == "node-b" and json.loads(mark)["instances"] == ["sandbox-1"]


def test_thermal_throttling_sheds_load_without_a_gate(sandbox: Fleet) -> None:
    break_gpu(sandbox, 1, temperature=91, throttle=0x40 | 0x20)
    state, inc = run_flow(flow(), request(), timeout=180)
    assert state.is_completed(), inc.escalation_reason
    assert inc.outcome == Outcome.RESOLVED and inc.diagnosis.startswith("thermal_throttle")
    assert inc.approvals == [] and sandbox.state("sandbox-1")["concurrency_limit"] == 8


def test_a_healthy_gpu_is_a_false_positive_that_touches_nothing(sandbox: Fleet) -> None:
    state, inc = run_flow(flow(), request(), timeout=120)
    assert state.is_completed() and inc.outcome == Outcome.FALSE_POSITIVE
    assert inc.actions == [] and all(actions(sandbox, n) == [] for n in sandbox.urls)
