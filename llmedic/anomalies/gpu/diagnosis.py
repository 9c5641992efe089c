"""GPU health: the XID → action table, the kernel-log XID parser, clock-event (throttle) reasons, the
judgement of a GPU snapshot into a diagnosis with the action it calls for, and the incident's
diagnosis from every GPU of the instance (``diagnose_instance``).

The XID actions are the "Immediate Action" bucket of NVIDIA's XID catalog as NVIDIA's NVSentinel
encodes it; NVIDIA's k8s-device-plugin treats 13, 31, 43, 45 and 68 as application errors ("the GPU
should still be healthy"). Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = [
    "XID_TABLE",
    "Diagnosis",
    "GpuAction",
    "GpuVerdict",
    "XidEvent",
    "XidInfo",
    "diagnose_gpu",
    "diagnose_instance",
    "parse_kernel_log",
    "same_pci",
    "worst_verdict",
]


class Diagnosis(StrEnum):
    """``diagnose_gpu`` per device, and ``diagnose_instance`` for the incident."""

    HEALTHY = "healthy"
    """Per device only: a healthy GPU never becomes an incident's diagnosis."""
    APP_ERROR = "app_error"
    THERMAL_THROTTLE = "thermal_throttle"
    POWER_THROTTLE = "power_throttle"
    THROTTLE = "throttle"
    """Load must be shed for a reason NVML does not name (an XID that calls for it)."""
    GPU_RESET_NEEDED = "gpu_reset_needed"
    NODE_FAILURE = "node_failure"
    GPU_LOST = "gpu_lost"
    UNKNOWN = "unknown"


class GpuAction(StrEnum):
    """What a GPU fault calls for, mildest first."""

    NONE = "none"
    RESTART_APP = "restart_app"
    REDUCE_LOAD = "reduce_load"
    RESET_GPU = "reset_gpu"
    DRAIN_NODE = "drain_node"
    """Drain the node and mark it for replacement (reboot / RMA)."""


_ORDER = list(GpuAction)


@dataclass(frozen=True)
class XidInfo:
    """One row of the XID table."""

    xid: int
    mnemonic: str
    meaning: str
    action: GpuAction
    fatal: bool


XID_TABLE: dict[int, XidInfo] = {
    i.xid: i
    for i in (
        XidInfo(
            13,
            "ROBUST_CHANNEL_GR_EXCEPTION",
            "graphics engine exception (usually the application)",
            GpuAction.RESTART_APP,
            False,
        ),
        XidInfo(
            31, "ROBUST_CHANNEL_FIFO_ERROR_MMU_ERR_FLT", "GPU memory page fault", GpuAction.RESTART_APP, False
        ),
        XidInfo(
            43,
            "ROBUST_CHANNEL_RESETCHANNEL_VERIF_ERROR",
            "GPU stopped processing (channel reset)",
            GpuAction.RESTART_APP,
            False,
        ),
        XidInfo(
            45,
            "ROBUST_CHANNEL_PREEMPTIVE_REMOVAL",
            "preemptive cleanup after the application stopped",
            GpuAction.RESTART_APP,
            False,
        ),
        XidInfo(
            48,
            "ROBUST_CHANNEL_GPU_ECC_DBE",
            "double-bit (uncorrectable) ECC error",
            GpuAction.RESET_GPU,
            True,
        ),
        XidInfo(
            63, "INFOROM_DRAM_RETIREMENT_EVENT", "page retirement / row remap recorded", GpuAction.NONE, False
        ),
        XidInfo(
            64,
            "INFOROM_DRAM_RETIREMENT_FAILURE",
            "page retirement / row remap failed",
            GpuAction.RESET_GPU,
            True,
        ),
        XidInfo(68, "NVDEC0_EXCEPTION", "video decoder exception", GpuAction.RESTART_APP, False),
        XidInfo(74, "NVLINK_ERROR", "NVLink error", GpuAction.RESET_GPU, True),
        XidInfo(
            79,
            "ROBUST_CHANNEL_GPU_HAS_FALLEN_OFF_THE_BUS",
            "GPU fell off the PCIe bus",
            GpuAction.DRAIN_NODE,
            True,
        ),
        XidInfo(
            94,
            "ROBUST_CHANNEL_CONTAINED_ERROR",
            "contained ECC error (only the affected application)",
            GpuAction.RESTART_APP,
            False,
        ),
        XidInfo(
            95,
            "ROBUST_CHANNEL_UNCONTAINED_ERROR",
            "uncontained ECC error (every process on the GPU)",
            GpuAction.RESET_GPU,
            True,
        ),
    )
}

_HARMFUL_THROTTLE = {
    "SwPowerCap",
    "HwSlowdown",
    "SwThermalSlowdown",
    "HwThermalSlowdown",
    "HwPowerBrakeSlowdown",
}

_XID = re.compile(r"NVRM: Xid \((PCI:[0-9a-fA-F:.]+)\): (\d+),\s*(.*)")


@dataclass(frozen=True)
class XidEvent:
    """One XID seen in the kernel log (or from NVML events)."""

    pci: str
    xid: int
    detail: str
    line: int | None = None

    @property
    def info(self) -> XidInfo | None:
        """The table row, if the XID is known."""
        return XID_TABLE.get(self.xid)


def parse_kernel_log(text: str) -> list[XidEvent]:
    """XIDs from ``dmesg`` / journal text: ``NVRM: Xid (PCI:0000:10:1c): 63, pid=1896, …``."""
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        m = _XID.search(line)
        if m:
            out.append(XidEvent(m.group(1), int(m.group(2)), m.group(3).strip(), n))
    return out


def same_pci(kernel: str, nvml: str) -> bool:
    """Does a kernel-log ``PCI:0000:10:1c`` name the device NVML calls ``00000000:10:1C.0``?"""

    def key(v: str) -> str:
        parts = v.lower().removeprefix("pci:").split(":")
        return ":".join(p.split(".")[0] for p in parts[-2:]) if len(parts) >= 2 else v.lower()

    return bool(kernel and nvml) and key(kernel) == key(nvml)


@dataclass(frozen=True)
class GpuVerdict:
    """What is wrong with a GPU and what it calls for."""

    index: int
    action: GpuAction
    diagnosis: Diagnosis
    reasons: tuple[str, ...]

    @property
    def healthy(self) -> bool:
        """Nothing calls for an action."""
        return self.action == GpuAction.NONE


def _worse(a: GpuAction, b: GpuAction) -> GpuAction:
    return a if _ORDER.index(a) >= _ORDER.index(b) else b


def diagnose_gpu(device: dict[str, Any], xids: list[XidEvent]) -> GpuVerdict:
    """Judge one device's snapshot (see ``llmedic.adapters.gpu.DeviceHealth.as_dict``) and the XIDs
    seen for it; the worst finding decides the action."""
    idx = int(device.get("index", 0))
    action, reasons, names = GpuAction.NONE, [], []
    if device.get("lost"):
        return GpuVerdict(
            idx, GpuAction.DRAIN_NODE, Diagnosis.GPU_LOST, (f"GPU {idx} is lost: {device.get('error')}",)
        )
    for ev in xids:
        info = ev.info
        act = info.action if info else GpuAction.RESET_GPU
        reasons.append(
            f"XID {ev.xid} ({info.mnemonic if info else 'unknown'}): {info.meaning if info else ev.detail}"
        )
        if act != GpuAction.NONE:
            names.append(f"xid_{ev.xid}")
        action = _worse(action, act)
    remap = device.get("remapped_rows") or {}
    if remap.get("failure"):
        action = _worse(action, GpuAction.DRAIN_NODE)
        reasons.append("row remapping failed: the GPU needs replacing (RMA)")
        names.append("remap_failure")
    elif remap.get("pending") or device.get("retired_pages_pending"):
        action = _worse(action, GpuAction.RESET_GPU)
        reasons.append("a row remap / page retirement is pending: a GPU reset applies it")
        names.append("remap_pending")
    recovery = device.get("recovery_action")
    if recovery in ("GPU_RESET", "DRAIN_AND_RESET"):
        action = _worse(action, GpuAction.RESET_GPU)
        reasons.append(f"NVML recovery action {recovery}")
    elif recovery == "NODE_REBOOT":
        action = _worse(action, GpuAction.DRAIN_NODE)
        reasons.append("NVML recovery action NODE_REBOOT")
    if int(device.get("ecc_uncorrected_volatile") or 0) > 0:
        action = _worse(action, GpuAction.RESET_GPU)
        reasons.append(
            f"{device['ecc_uncorrected_volatile']} uncorrectable ECC error(s) since the last reset"
        )
        names.append("ecc_uncorrectable")
    throttles = [t for t in device.get("throttle_reasons") or [] if t in _HARMFUL_THROTTLE]
    temp, slow = device.get("temperature_c"), device.get("slowdown_temperature_c")
    hot = temp is not None and slow is not None and temp >= slow
    if throttles or hot:
        action = _worse(action, GpuAction.REDUCE_LOAD)
        thermal = hot or any("Thermal" in t for t in throttles)
        reasons.append(
            f"clocks held back: {', '.join(throttles) or 'none reported'}"
            + (f"; {temp} °C at or above the {slow} °C slowdown threshold" if hot else "")
        )
        names.append(Diagnosis.THERMAL_THROTTLE if thermal else Diagnosis.POWER_THROTTLE)
    diagnosis = {
        GpuAction.NONE: Diagnosis.HEALTHY,
        GpuAction.RESTART_APP: Diagnosis.APP_ERROR,
        GpuAction.REDUCE_LOAD: next(
            (Diagnosis(n) for n in names if n.endswith("_throttle")), Diagnosis.THROTTLE
        ),
        GpuAction.RESET_GPU: Diagnosis.GPU_RESET_NEEDED,
        GpuAction.DRAIN_NODE: Diagnosis.NODE_FAILURE,
    }[action]
    return GpuVerdict(idx, action, diagnosis, tuple(reasons))


def worst_verdict(verdicts: list[GpuVerdict]) -> GpuVerdict | None:
    """The GPU whose finding calls for the strongest action (the first of equals)."""
    return max(verdicts, key=lambda v: _ORDER.index(v.action), default=None)


def diagnose_instance(verdicts: list[GpuVerdict], cuda_error: str | None) -> tuple[Diagnosis, str]:
    """The worst GPU finding decides; CUDA errors with healthy GPUs are the application's."""
    worst = worst_verdict([v for v in verdicts if not v.healthy])
    if worst is not None:
        return worst.diagnosis, f"GPU {worst.index}: " + "; ".join(worst.reasons)
    if cuda_error:
        return Diagnosis.APP_ERROR, f"the GPUs read healthy but the worker answers {cuda_error!r}: restart it"
    return Diagnosis.UNKNOWN, "nothing on the GPUs or in the service explains the alert"
