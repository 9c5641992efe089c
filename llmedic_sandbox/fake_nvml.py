"""The sandbox's NVML: pynvml's interface over a JSON scenario file, and what ``nvidia-smi -r`` does
to it.

Production code never imports this module. A host reads it only when ``llmedic.yaml`` names it as
its NVML backend (``nvml: {backend: llmedic_sandbox.fake_nvml:FakeNvml, scenario: PATH}``, which is
what the sandbox fleet writes); ``llmedic.adapters.gpu.NvmlReader`` then reads it exactly as it
reads the real library. ``python -m llmedic_sandbox.fake_nvml reset --scenario PATH --gpu N`` is
the sandbox's stand-in for ``nvidia-smi -r -i N`` (the fleet's ``reset_gpu`` command).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pynvml

from llmedic.errors import ConfigError, RemoteCommandError

__all__ = ["FakeNvml", "fake_reset", "main"]


class FakeNvml:
    """pynvml's interface over a JSON scenario file (re-read at every ``nvmlInit``), for tests and
    the sandbox. Scenario keys: ``no_driver``, ``driver``, ``cuda``, ``old_driver`` (no clock-event
    call: the deprecated throttle call answers) and ``devices``: a list of objects with ``name``,
    ``util``, ``memory_used``, ``memory_total``, ``temperature``, ``slowdown``, ``shutdown``,
    ``power_mw``, ``power_limit_mw``, ``sm_clock``, ``mem_clock``, ``throttle`` (bitmask),
    ``ecc_corrected``, ``ecc_uncorrected``, ``remapped`` ([corr, unc, pending, failure]),
    ``retired_pending``, ``recovery_action``, ``processes`` ([[pid, bytes]]), ``lost``."""

    NVMLError = pynvml.NVMLError

    def __init__(self, scenario: Path | None) -> None:
        if scenario is None:
            raise ConfigError(
                "the fake NVML backend needs a scenario file", hint="set nvml.scenario to its JSON file"
            )
        self.scenario = scenario
        self.data: dict[str, Any] = {}

    def _dev(self, h: int) -> dict[str, Any]:
        dev: dict[str, Any] = self.data["devices"][h]
        if dev.get("lost"):
            raise pynvml.NVMLError_GpuIsLost(pynvml.NVML_ERROR_GPU_IS_LOST)
        return dev

    def nvmlInit(self) -> None:
        self.data = json.loads(self.scenario.read_text("utf-8"))
        if self.data.get("no_driver"):
            raise pynvml.NVMLError_LibraryNotFound(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)

    def nvmlShutdown(self) -> None:
        return None

    def nvmlSystemGetDriverVersion(self) -> str:
        return str(self.data.get("driver", "550.54.15"))

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return int(self.data.get("cuda", 12040))

    def nvmlDeviceGetCount(self) -> int:
        return len(self.data.get("devices", []))

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetName(self, h: int) -> str:
        return str(self.data["devices"][h].get("name", "NVIDIA H100 80GB HBM3"))

    def nvmlDeviceGetUUID(self, h: int) -> str:
        return str(self.data["devices"][h].get("uuid", f"GPU-fake-{h}"))

    def nvmlDeviceGetPciInfo(self, h: int) -> Any:
        return SimpleNamespace(busId=str(self.data["devices"][h].get("pci", f"00000000:{16 + h:02X}:00.0")))

    def nvmlDeviceGetUtilizationRates(self, h: int) -> Any:
        d = self._dev(h)
        return SimpleNamespace(gpu=d.get("util", 0), memory=d.get("mem_util", 0))

    def nvmlDeviceGetMemoryInfo(self, h: int) -> Any:
        d = self._dev(h)
        total, used = d.get("memory_total", 85_899_345_920), d.get("memory_used", 0)
        return SimpleNamespace(total=total, used=used, free=total - used)

    def nvmlDeviceGetComputeRunningProcesses(self, h: int) -> list[Any]:
        return [SimpleNamespace(pid=p, usedGpuMemory=b) for p, b in self._dev(h).get("processes", [])]

    def nvmlDeviceGetTemperature(self, h: int, sensor: int) -> int:
        return int(self._dev(h).get("temperature", 45))

    def nvmlDeviceGetTemperatureThreshold(self, h: int, kind: int) -> int:
        d = self._dev(h)
        return int(
            d.get("slowdown", 87)
            if kind == pynvml.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN
            else d.get("shutdown", 92)
        )

    def nvmlDeviceGetPowerUsage(self, h: int) -> int:
        return int(self._dev(h).get("power_mw", 150_000))

    def nvmlDeviceGetEnforcedPowerLimit(self, h: int) -> int:
        return int(self._dev(h).get("power_limit_mw", 700_000))

    def nvmlDeviceGetClockInfo(self, h: int, clock: int) -> int:
        d = self._dev(h)
        return int(d.get("sm_clock", 1980) if clock == pynvml.NVML_CLOCK_SM else d.get("mem_clock", 2619))

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: int) -> int:
        # pynvml raises FunctionNotFound when the driver's library lacks the symbol (old drivers).
        if self.data.get("old_driver"):
            raise pynvml.NVMLError_FunctionNotFound(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
        return int(self._dev(h).get("throttle", 0))

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, h: int) -> int:
        return int(self._dev(h).get("throttle", 0))

    def nvmlDeviceGetTotalEccErrors(self, h: int, kind: int, counter: int) -> int:
        d = self._dev(h)
        return int(
            d.get("ecc_uncorrected", 0)
            if kind == pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED
            else d.get("ecc_corrected", 0)
        )

    def nvmlDeviceGetRemappedRows(self, h: int) -> tuple[int, int, int, int]:
        r = self._dev(h).get("remapped", [0, 0, 0, 0])
        return int(r[0]), int(r[1]), int(r[2]), int(r[3])

    def nvmlDeviceGetRetiredPagesPendingStatus(self, h: int) -> int:
        return int(self._dev(h).get("retired_pending", 0))

    def nvmlDeviceGetFieldValues(self, h: int, ids: list[int]) -> list[Any]:
        value = int(self._dev(h).get("recovery_action", 0))
        return [SimpleNamespace(fieldId=i, nvmlReturn=0, value=SimpleNamespace(uiVal=value)) for i in ids]


def fake_reset(scenario: Path, gpu: int) -> str:
    """What ``nvidia-smi -r`` does to a fake device: volatile ECC counters cleared, pending remaps
    and page retirements applied, the recovery action cleared. A lost GPU cannot be reset."""
    data = json.loads(scenario.read_text("utf-8"))
    dev = data["devices"][gpu]
    if dev.get("lost"):
        raise RemoteCommandError(f"GPU {gpu} is lost (fallen off the bus): a reset cannot reach it")
    dev["ecc_uncorrected"] = 0
    dev["ecc_corrected"] = 0
    remap = dev.get("remapped", [0, 0, 0, 0])
    dev["remapped"] = [remap[0], remap[1], 0, remap[3]]
    dev["retired_pending"] = 0
    dev["recovery_action"] = 0
    tmp = scenario.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    tmp.replace(scenario)
    return f"GPU {gpu} reset"


def main(argv: list[str] | None = None) -> int:
    """``reset --scenario PATH --gpu N``: reset one fake GPU and print what happened."""
    parser = argparse.ArgumentParser(prog="python -m llmedic_sandbox.fake_nvml")
    sub = parser.add_subparsers(dest="command", required=True)
    reset = sub.add_parser("reset", help="what nvidia-smi -r -i GPU does to a fake device")
    reset.add_argument("--scenario", type=Path, required=True, help="the fake-NVML scenario file")
    reset.add_argument("--gpu", type=int, required=True, help="GPU index")
    args = parser.parse_args(argv)
    try:
        sys.stdout.write(fake_reset(args.scenario, args.gpu) + "\n")
    except RemoteCommandError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
