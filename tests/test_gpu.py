"""GPU health: the NVML reader over the scenario-driven fake (the same code that runs on a GPU
machine), no driver answered as evidence, the XID table and kernel-log parser, and the judgement of
each scenario into a diagnosis and an action."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml

from llmedic.adapters.gpu import NvmlReader, decode_throttle, host_snapshot, load_nvml
from llmedic.alerts import Alert
from llmedic.anomalies.gpu.diagnosis import GpuAction, diagnose_gpu, parse_kernel_log
from llmedic.catalog import AnomalyType
from llmedic.config import NvmlBackend, load_environment
from llmedic.errors import ConfigError
from llmedic.incident import IncidentRequest, utcnow
from llmedic_sandbox.fake_nvml import FakeNvml
from llmedic_sandbox.fleet import FAKE_NVML_BACKEND
from llmedic_sandbox.instance import FaultKind
from tests.conftest import Fleet

HEALTHY: dict[str, Any] = {
    "name": "NVIDIA H100 80GB HBM3",
    "util": 55,
    "memory_used": 60 << 30,
    "temperature": 61,
}


def snapshot(tmp_path: Path, scenario: dict[str, Any]) -> Any:
    path = tmp_path / "gpu.json"
    path.write_text(json.dumps(scenario))
    return NvmlReader(FakeNvml(path)).snapshot()


def test_a_healthy_gpu_reads_every_field(tmp_path: Path) -> None:
    snap = snapshot(
        tmp_path,
        {"driver": "550.54.15", "cuda": 12040, "devices": [{**HEALTHY, "processes": [[4242, 58 << 30]]}]},
    )
    assert (snap.available, snap.driver, snap.cuda_driver) == (True, "550.54.15", "12.4")
    (d,) = snap.devices
    assert (
        d.name,
        d.utilisation_pct,
        d.temperature_c,
        d.slowdown_temperature_c,
        d.power_w,
        d.power_limit_w,
    ) == (
        "NVIDIA H100 80GB HBM3",
        55,
        61,
        87,
        150.0,
        700.0,
    )
    assert d.processes == [{"pid": 4242, "used_bytes": 58 << 30}]
    assert d.remapped_rows == {"correctable": 0, "uncorrectable": 0, "pending": 0, "failure": 0}
    assert (d.recovery_action, d.throttle_source) == ("NONE", "nvmlDeviceGetCurrentClocksEventReasons")
    assert diagnose_gpu(d.as_dict(), []).healthy


def test_no_driver_is_evidence_not_a_crash(tmp_path: Path) -> None:
    snap = snapshot(tmp_path, {"no_driver": True})
    assert not snap.available and snap.reason.startswith("no NVIDIA driver on this host")


def test_the_real_nvml_on_this_machine_says_what_it_finds() -> None:
    snap = NvmlReader().snapshot()  # no GPU here: a clear answer; on a GPU machine: the devices
    assert snap.available == bool(snap.devices) and (snap.available or snap.reason)


def test_old_drivers_fall_back_to_the_deprecated_throttle_call(tmp_path: Path) -> None:
    snap = snapshot(tmp_path, {"old_driver": True, "devices": [{**HEALTHY, "throttle": 0x40 | 0x1}]})
    (d,) = snap.devices
    assert d.throttle_source == "nvmlDeviceGetCurrentClocksThrottleReasons (deprecated)"
    assert d.throttle_reasons == ["GpuIdle", "HwThermalSlowdown"]


def test_kernel_log_xids() -> None:
    log = (
        "[  12.3] usb 1-1: new device\n"
        "[ 101.9] NVRM: Xid (PCI:0000:10:1c): 63, pid=1896, Row Remapper: New row marked for remapping\n"
        "[ 202.0] NVRM: Xid (PCI:0000:3b:00): 79, pid='<unknown>', GPU has fallen off the bus.\n"
    )
    events = parse_kernel_log(log)
    assert [(e.pci, e.xid, e.line) for e in events] == [("PCI:0000:10:1c", 63, 2), ("PCI:0000:3b:00", 79, 3)]
    assert events[1].detail == "pid='<unknown>', GPU has fallen off the bus."


@pytest.mark.parametrize(
    ("device", "xids", "action", "diagnosis"),
    [
        ({}, [13], GpuAction.RESTART_APP, "app_error"),
        ({}, [94], GpuAction.RESTART_APP, "app_error"),
        ({}, [63], GpuAction.NONE, "healthy"),  # recorded remap, nothing pending
        ({"remapped": [0, 1, 1, 0]}, [63], GpuAction.RESET_GPU, "gpu_reset_needed"),
        ({"remapped": [0, 1, 0, 1]}, [64], GpuAction.DRAIN_NODE, "node_failure"),
        ({}, [48], GpuAction.RESET_GPU, "gpu_reset_needed"),
        ({}, [79], GpuAction.DRAIN_NODE, "node_failure"),
        ({"ecc_uncorrected": 3}, [], GpuAction.RESET_GPU, "gpu_reset_needed"),
        ({"recovery_action": 2}, [], GpuAction.DRAIN_NODE, "node_failure"),
        ({"temperature": 90, "throttle": 0x40}, [], GpuAction.REDUCE_LOAD, "thermal_throttle"),
        ({"throttle": 0x4}, [], GpuAction.REDUCE_LOAD, "power_throttle"),
        ({"throttle": 0x1}, [], GpuAction.NONE, "healthy"),  # idle clocks are not a fault
        ({"lost": True}, [], GpuAction.DRAIN_NODE, "gpu_lost"),
        ({"temperature": 90, "throttle": 0x40}, [13], GpuAction.REDUCE_LOAD, "thermal_throttle"),
    ],
)
def test_diagnosis_per_scenario(
    tmp_path: Path, device: dict[str, Any], xids: list[int], action: GpuAction, diagnosis: str
) -> None:
    snap = snapshot(tmp_path, {"devices": [{**HEALTHY, **device}]})
    (d,) = snap.devices
    log = "".join(f"NVRM: Xid (PCI:0000:10:1c): {x}, pid=1, detail\n" for x in xids)
    got = diagnose_gpu(d.as_dict(), parse_kernel_log(log))
    assert (got.action, got.diagnosis) == (action, diagnosis), got.reasons


def test_throttle_bits() -> None:
    assert decode_throttle(0x4 | 0x8 | 0x80) == ["SwPowerCap", "HwSlowdown", "HwPowerBrakeSlowdown"]


# --- the production adapters know nothing of the sandbox -------------------------------------------

ROOT = Path(__file__).resolve().parents[1]

# No exceptions: the sandbox's commands (demo, gameday, sandbox, data inject …) reach the `llmedic`
# command through the `llmedic.commands` entry points, never through an import.


def _sandbox_imports(path: Path) -> list[tuple[int, str, bool]]:
    """(line, module, at module level) of every import of llmedic_sandbox in ``path``, wherever it is
    (module level or inside a function)."""
    tree = ast.parse(path.read_text("utf-8"))
    top = {id(n) for n in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        out += [(node.lineno, n, id(node) in top) for n in names if n.split(".")[0] == "llmedic_sandbox"]
    return out


def test_no_production_module_imports_the_sandbox() -> None:
    found = {
        str(p.relative_to(ROOT)): _sandbox_imports(p)
        for pkg in ("llmedic", "tasks", "flows")
        for p in sorted((ROOT / pkg).rglob("*.py"))
    }
    assert {f: imps for f, imps in found.items() if imps} == {}


def test_reading_gpus_imports_no_sandbox_module() -> None:
    code = (
        "import sys, llmedic.adapters.gpu, llmedic.adapters.control, llmedic.anomalies.gpu.home, flows.gpu_fault; "
        "print(sorted(m for m in sys.modules if m.startswith('llmedic_sandbox')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("host", "hint"),
    [
        pytest.param(
            {"name": "h", "gpu": "fake", "gpu_scenario": "/tmp/gpu.json"},
            "gpu: fake and gpu_scenario were removed",
            id="removed-fake",
        ),
        pytest.param(
            {"name": "h", "kind": "ssh", "address": "10.0.0.2", "nvml": {"backend": "m:f"}},
            None,
            id="nvml-on-ssh-host",
        ),
        pytest.param({"name": "h", "nvml": {"backend": "not a path"}}, None, id="bad-backend"),
    ],
)
def test_host_nvml_configuration_is_checked(tmp_path: Path, host: dict[str, Any], hint: str | None) -> None:
    cfg = tmp_path / "llmedic.yaml"
    cfg.write_text(yaml.safe_dump({"hosts": [host]}))
    with pytest.raises(ConfigError) as exc:
        load_environment(cfg)
    if hint:
        assert exc.value.hint is not None and exc.value.hint.startswith(hint)


def test_a_backend_is_loaded_by_name_and_read_like_nvml(tmp_path: Path) -> None:
    scenario = tmp_path / "gpu.json"
    scenario.write_text(json.dumps({"devices": [HEALTHY]}))
    cfg = tmp_path / "llmedic.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {"hosts": [{"name": "local", "nvml": {"backend": FAKE_NVML_BACKEND, "scenario": str(scenario)}}]}
        )
    )
    snap = host_snapshot(load_environment(cfg), "local")
    assert [(d.name, d.utilisation_pct) for d in snap.devices] == [("NVIDIA H100 80GB HBM3", 55)]
    with pytest.raises(ConfigError) as exc:
        load_nvml(NvmlBackend(backend="llmedic.no_such_module:Nvml"))
    assert exc.value.message.startswith("nvml backend 'llmedic.no_such_module:Nvml' cannot be loaded")


def test_the_sandbox_reset_command_resets_a_fake_gpu(tmp_path: Path) -> None:
    scenario = tmp_path / "gpu.json"
    scenario.write_text(json.dumps({"devices": [{**HEALTHY, "ecc_uncorrected": 3}, {"lost": True}]}))
    cmd = [sys.executable, "-m", "llmedic_sandbox.fake_nvml", "reset", "--scenario", str(scenario), "--gpu"]
    ok = subprocess.run([*cmd, "0"], capture_output=True, text=True, check=False)
    lost = subprocess.run([*cmd, "1"], capture_output=True, text=True, check=False)
    assert (ok.returncode, ok.stdout) == (0, "GPU 0 reset\n")
    assert json.loads(scenario.read_text())["devices"][0]["ecc_uncorrected"] == 0
    assert (lost.returncode, lost.stderr) == (
        1,
        "error: GPU 1 is lost (fallen off the bus): a reset cannot reach it\n",
    )


# --- the record holds only what llmedic observed --------------------------------------------------


def _leaks(value: Any, kinds: set[str], path: str = "") -> Iterator[str]:
    """Where a JSON document holds a fault record (a ``faults`` key) or a value that is exactly a
    fault kind (what the adapter's old ``faults`` list held)."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "faults":
                yield f"{path}.{k}"
            yield from _leaks(v, kinds, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaks(v, kinds, f"{path}[{i}]")
    elif value in kinds:
        yield f"{path} = {value!r}"


@pytest.mark.fault(
    tried="a flow run against a sandbox instance with an injected fault (cuda_error)",
    survives="no injected-fault name or record in the archived incident JSON or its report",
)
@pytest.mark.usefixtures("prefect_harness")
def test_no_injected_fault_reaches_the_archive(sandbox: Fleet) -> None:
    from flows.gpu_fault import gpu_fault
    from tests.flowrun import approve, run_flow

    sandbox.admin("sandbox-1", "faults", {"kind": "cuda_error"})
    injected: Any = sandbox.state("sandbox-1")["faults"]
    assert [f["kind"] for f in injected] == ["cuda_error"]
    alert = Alert(
        source="manual",
        anomaly=AnomalyType.GPU_FAULT,
        alertname="GpuXidError",
        target="sandbox-1",
        starts_at=utcnow(),
    )
    state, inc = run_flow(gpu_fault, IncidentRequest(alert=alert), approve(), timeout=180)
    assert state.is_completed() and inc.report_path is not None, inc.escalation_reason
    assert inc.diagnosis.startswith("app_error")
    report = Path(inc.report_path)
    archived = json.loads(report.with_suffix(".json").read_text("utf-8"))
    # A GPU run: none of these names is also a GPU diagnosis (``slow_decode`` is a latency one).
    kinds = set(get_args(FaultKind))
    assert list(_leaks(archived, kinds)) == []
    # In the prose of the report only the kinds no English sentence uses are looked for ("slow",
    # "errors" and "down" describe what llmedic measured).
    text = report.read_text("utf-8")
    distinctive = sorted(k for k in kinds if "_" in k or k in ("jailbreak", "garbage"))
    assert distinctive == [
        "cuda_error",
        "garbage",
        "jailbreak",
        "kv_pressure",
        "slow_decode",
        "wrong_answers",
    ]
    assert [k for k in distinctive if re.search(rf"(?<![\w-]){k}(?![\w-])", text)] == []
