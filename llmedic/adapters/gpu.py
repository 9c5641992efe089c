"""GPU health through NVML (nvidia-ml-py, ``import pynvml``).

:class:`NvmlReader` reads everything the gpu_fault playbook needs from an object with pynvml's
interface — the real module, or the backend a host names in ``llmedic.yaml`` (``nvml: {backend:
module:factory, scenario: PATH}``; the sandbox's scenario-driven fake is
``llmedic_sandbox.fake_nvml:FakeNvml``) — so the code that runs on a GPU machine is the code the
tests run. This module never imports the sandbox: a backend is imported by name when a host asks
for it. Where there is no driver or no GPU it returns a snapshot that says so; NVML errors are
translated here and nowhere else.
"""

from __future__ import annotations

import contextlib
import importlib
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import pynvml

from llmedic.adapters.http import translate_http_errors
from llmedic.adapters.shell import make_shell, run_template
from llmedic.config import EnvironmentFile, NvmlBackend
from llmedic.errors import ConfigError, MetricsSourceError, RemoteCommandError

__all__ = [
    "RECOVERY_ACTIONS",
    "THROTTLE_BITS",
    "DeviceHealth",
    "GpuSnapshot",
    "NvmlReader",
    "decode_throttle",
    "load_nvml",
]

# NVML's clock-event (throttle) reason bits (nvml.h, nvmlClocksEventReason*)
THROTTLE_BITS: dict[int, str] = {
    0x1: "GpuIdle",
    0x2: "ApplicationsClocksSetting",
    0x4: "SwPowerCap",
    0x8: "HwSlowdown",
    0x10: "SyncBoost",
    0x20: "SwThermalSlowdown",
    0x40: "HwThermalSlowdown",
    0x80: "HwPowerBrakeSlowdown",
    0x100: "DisplayClockSetting",
}


def decode_throttle(mask: int) -> list[str]:
    """Names of the clock-event reasons set in ``mask``."""
    return [name for bit, name in THROTTLE_BITS.items() if mask & bit]


RECOVERY_ACTIONS = {0: "NONE", 1: "GPU_RESET", 2: "NODE_REBOOT", 3: "DRAIN_P2P", 4: "DRAIN_AND_RESET"}


@dataclass
class DeviceHealth:
    """One GPU as NVML reports it (None where the device does not support a reading)."""

    index: int
    name: str = ""
    uuid: str = ""
    pci_bus_id: str = ""
    lost: bool = False
    error: str = ""
    utilisation_pct: int | None = None
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None
    processes: list[dict[str, int]] = field(default_factory=list)
    temperature_c: int | None = None
    slowdown_temperature_c: int | None = None
    shutdown_temperature_c: int | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    sm_clock_mhz: int | None = None
    mem_clock_mhz: int | None = None
    throttle_reasons: list[str] = field(default_factory=list)
    throttle_source: str = ""
    """Which call answered: the current ``ClocksEventReasons`` or the deprecated ``ThrottleReasons``."""
    ecc_corrected_volatile: int | None = None
    ecc_uncorrected_volatile: int | None = None
    remapped_rows: dict[str, int] | None = None
    retired_pages_pending: bool | None = None
    recovery_action: str | None = None
    unsupported: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return dict(self.__dict__)


@dataclass
class GpuSnapshot:
    """Every GPU of one host, or why there is none."""

    available: bool
    reason: str = ""
    driver: str | None = None
    cuda_driver: str | None = None
    """``major.minor`` from ``nvmlSystemGetCudaDriverVersion`` (12080 → 12.8)."""
    devices: list[DeviceHealth] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {**self.__dict__, "devices": [d.as_dict() for d in self.devices]}


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class _Reader:
    """Reads one NVML figure of a device: a lost GPU marks the device lost, an unsupported call is
    listed, and either way the figure is ``None`` (never an exception)."""

    def __init__(self, d: DeviceHealth) -> None:
        self.d = d

    def __call__(self, what: str, call: Any) -> Any:
        try:
            return call()
        except pynvml.NVMLError_GpuIsLost as exc:
            self.d.lost, self.d.error = True, f"{what}: {exc}"
        except pynvml.NVMLError as exc:
            self.d.unsupported.append(f"{what} ({exc})")
        return None


class NvmlReader:
    """Reads GPU health through ``nvml`` (default: the real pynvml module)."""

    def __init__(self, nvml: Any = pynvml) -> None:
        self.nvml = nvml

    def snapshot(self) -> GpuSnapshot:
        """Read every device; never raises for a missing driver or GPU (it says so instead)."""
        n = self.nvml
        try:
            n.nvmlInit()
        except pynvml.NVMLError as exc:
            return GpuSnapshot(False, _why_unavailable(exc))
        try:
            snap = GpuSnapshot(True)
            snap.driver = _text(n.nvmlSystemGetDriverVersion())
            try:
                cuda = int(n.nvmlSystemGetCudaDriverVersion())
                snap.cuda_driver = f"{cuda // 1000}.{cuda % 1000 // 10}"
            except pynvml.NVMLError:
                snap.cuda_driver = None
            count = int(n.nvmlDeviceGetCount())
            if count == 0:
                return GpuSnapshot(
                    False, "the NVIDIA driver is loaded but reports no GPU", snap.driver, snap.cuda_driver
                )
            snap.devices = [self._device(i) for i in range(count)]
            return snap
        finally:
            with contextlib.suppress(pynvml.NVMLError):
                n.nvmlShutdown()

    def _device(self, i: int) -> DeviceHealth:
        n = self.nvml
        d = DeviceHealth(index=i)
        try:
            h = n.nvmlDeviceGetHandleByIndex(i)
            d.name = _text(n.nvmlDeviceGetName(h))
            d.uuid = _text(n.nvmlDeviceGetUUID(h))
            d.pci_bus_id = _text(n.nvmlDeviceGetPciInfo(h).busId)
        except pynvml.NVMLError as exc:
            d.lost, d.error = True, f"{type(exc).__name__}: {exc}"
            return d

        read = _Reader(d)
        self._performance(h, d, read)
        self._errors(h, d, read)
        return d

    def _performance(self, h: Any, d: DeviceHealth, read: _Reader) -> None:
        """Utilisation, memory, processes, temperatures, power, clocks and throttling."""
        n = self.nvml
        util = read("utilisation", lambda: n.nvmlDeviceGetUtilizationRates(h))
        d.utilisation_pct = int(util.gpu) if util is not None else None
        mem = read("memory", lambda: n.nvmlDeviceGetMemoryInfo(h))
        if mem is not None:
            d.memory_used_bytes, d.memory_total_bytes = int(mem.used), int(mem.total)
        procs = read("processes", lambda: n.nvmlDeviceGetComputeRunningProcesses(h)) or []
        d.processes = [{"pid": int(p.pid), "used_bytes": int(p.usedGpuMemory or 0)} for p in procs]
        d.temperature_c = read(
            "temperature", lambda: n.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU)
        )
        d.slowdown_temperature_c = read(
            "slowdown threshold",
            lambda: n.nvmlDeviceGetTemperatureThreshold(h, pynvml.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN),
        )
        d.shutdown_temperature_c = read(
            "shutdown threshold",
            lambda: n.nvmlDeviceGetTemperatureThreshold(h, pynvml.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN),
        )
        power = read("power", lambda: n.nvmlDeviceGetPowerUsage(h))
        limit = read("power limit", lambda: n.nvmlDeviceGetEnforcedPowerLimit(h))
        d.power_w = power / 1000 if power is not None else None  # NVML reports milliwatts
        d.power_limit_w = limit / 1000 if limit is not None else None
        d.sm_clock_mhz = read("SM clock", lambda: n.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM))
        d.mem_clock_mhz = read("memory clock", lambda: n.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_MEM))
        # The clock-event call replaced the throttle-reasons one, which NVIDIA deprecated (to be
        # removed in CUDA 14); older drivers only have the old one.
        try:
            mask = n.nvmlDeviceGetCurrentClocksEventReasons(h)
            d.throttle_source = "nvmlDeviceGetCurrentClocksEventReasons"
        except (pynvml.NVMLError, AttributeError):
            mask = read("throttle reasons", lambda: n.nvmlDeviceGetCurrentClocksThrottleReasons(h))
            d.throttle_source = (
                "nvmlDeviceGetCurrentClocksThrottleReasons (deprecated)" if mask is not None else ""
            )
        d.throttle_reasons = decode_throttle(int(mask)) if mask is not None else []

    def _errors(self, h: Any, d: DeviceHealth, read: _Reader) -> None:
        """ECC counters, remapped rows, retired pages and the driver's recovery action."""
        n = self.nvml
        d.ecc_corrected_volatile = read(
            "ECC corrected",
            lambda: n.nvmlDeviceGetTotalEccErrors(
                h, pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED, pynvml.NVML_VOLATILE_ECC
            ),
        )
        d.ecc_uncorrected_volatile = read(
            "ECC uncorrected",
            lambda: n.nvmlDeviceGetTotalEccErrors(
                h, pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, pynvml.NVML_VOLATILE_ECC
            ),
        )
        rows = read("remapped rows", lambda: n.nvmlDeviceGetRemappedRows(h))
        if rows is not None:
            corr, unc, pending, failure = (int(x) for x in rows)
            d.remapped_rows = {
                "correctable": corr,
                "uncorrectable": unc,
                "pending": pending,
                "failure": failure,
            }
        pending_pages = read("retired pages", lambda: n.nvmlDeviceGetRetiredPagesPendingStatus(h))
        d.retired_pages_pending = bool(pending_pages) if pending_pages is not None else None
        fields = read(
            "recovery action",
            lambda: n.nvmlDeviceGetFieldValues(h, [pynvml.NVML_FI_DEV_GET_GPU_RECOVERY_ACTION]),
        )
        if fields:
            f = fields[0]
            if int(getattr(f, "nvmlReturn", 0)) == 0:
                d.recovery_action = RECOVERY_ACTIONS.get(int(f.value.uiVal), str(int(f.value.uiVal)))


def _why_unavailable(exc: Exception) -> str:
    if isinstance(exc, pynvml.NVMLError_LibraryNotFound):
        return "no NVIDIA driver on this host (the NVML library is not installed): no GPU to read"
    if isinstance(exc, pynvml.NVMLError_DriverNotLoaded):
        return "the NVIDIA driver is installed but not loaded"
    if isinstance(exc, pynvml.NVMLError_NoPermission):
        return "no permission to read NVML (run llmedic with access to /dev/nvidia*)"
    return f"NVML could not start: {type(exc).__name__}: {exc}"


def load_nvml(backend: NvmlBackend) -> Any:
    """The object a host's ``nvml.backend`` (``module.path:factory``) makes, given its scenario."""
    module_name, _, attr = backend.backend.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"nvml backend {backend.backend!r} cannot be loaded ({type(exc).__name__}: {exc})",
            hint="name an importable module:callable, e.g. llmedic_sandbox.fake_nvml:FakeNvml",
        ) from None
    return factory(backend.scenario)


def _snapshot_from(data: dict[str, Any]) -> GpuSnapshot:
    devices = [DeviceHealth(**d) for d in data.get("devices", [])]
    return GpuSnapshot(
        bool(data.get("available")),
        str(data.get("reason", "")),
        data.get("driver"),
        data.get("cuda_driver"),
        devices,
    )


def host_snapshot(env: EnvironmentFile, host: str) -> GpuSnapshot:
    """The GPUs of ``host``: NVML here (or the host's declared NVML backend), or ``llmedic gpu
    snapshot --json`` run on an SSH host through its ``gpu_snapshot`` command."""
    cfg = env.host(host)
    if cfg.gpu == "none":
        return GpuSnapshot(False, f"host {host!r} is declared without GPUs (gpu: none)")
    if cfg.nvml is not None:
        return NvmlReader(load_nvml(cfg.nvml)).snapshot()
    if cfg.kind == "local":
        return NvmlReader().snapshot()
    if cfg.gpu_snapshot is None:
        return GpuSnapshot(
            False,
            f"host {host!r} is remote and names no gpu_snapshot command (`llmedic gpu snapshot --json`)",
        )
    res = run_template(make_shell(cfg), env.commands, cfg.gpu_snapshot, {})
    try:
        return _snapshot_from(json.loads(res.stdout))
    except (ValueError, TypeError) as exc:
        raise RemoteCommandError(
            f"{host}: gpu_snapshot printed something that is not a snapshot ({exc})"
        ) from None


def kernel_log(env: EnvironmentFile, host: str) -> str | None:
    """The recent kernel log of ``host`` through its ``kernel_log`` command (None: none declared)."""
    cfg = env.host(host)
    if cfg.kernel_log is None:
        return None
    return run_template(make_shell(cfg), env.commands, cfg.kernel_log, {}).stdout


def dcgm_gpus(url: str, timeout: float = 5.0) -> dict[str, dict[str, float]]:
    """A DCGM exporter's gauges per GPU: PCI bus id → {metric: value} (``DCGM_FI_DEV_*``)."""
    from prometheus_client.parser import text_string_to_metric_families

    with translate_http_errors(MetricsSourceError, url):
        resp = httpx.get(url, timeout=timeout)
        resp.raise_for_status()
    out: dict[str, dict[str, float]] = {}
    try:
        for fam in text_string_to_metric_families(resp.text):
            if not fam.name.startswith("DCGM_"):
                continue
            for sample in fam.samples:
                key = sample.labels.get("pci_bus_id") or sample.labels.get("gpu", "?")
                out.setdefault(key, {"gpu": float(sample.labels.get("gpu", -1))})[sample.name] = float(
                    sample.value
                )
    except ValueError as exc:
        raise MetricsSourceError(f"{url}: not a Prometheus exposition ({exc})") from None
    return out
