"""GPU health: the NVML reader over the scenario-driven fake (the same code that runs on a GPU
machine), no driver answered as evidence, the XID table and kernel-log parser, and the judgement of
each scenario into a diagnosis and an action."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmedic.adapters.gpu import NvmlReader
from llmedic.analysis.gpu_health import GpuAction, decode_throttle, diagnose_gpu, parse_kernel_log
from llmedic.sandbox.fake_nvml import FakeNvml

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
