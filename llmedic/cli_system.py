"""``llmedic gpu``: read this host's GPUs (what the gpu_fault playbook reads), and the sandbox's
fake reset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

__all__ = ["gpu_app", "host_app"]

gpu_app = typer.Typer(help="GPU health on this host (NVML).", no_args_is_help=True)
host_app = typer.Typer(help="This host's resources and the service's paths.", no_args_is_help=True)
out = Console(soft_wrap=True)


@host_app.command("check")
def host_check(
    path: Annotated[
        list[Path] | None, typer.Option("--path", help="Model/data path to check (repeatable).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Machine-readable (what remote hosts print).")
    ] = False,
) -> None:
    """CPU, memory, disk space and I/O, the heaviest processes, and the given paths' permissions."""
    from llmedic.hostcheck import host_report, problems

    report = host_report(path or [])
    if as_json:
        out.print_json(json.dumps(report))
        return
    out.print(
        f"load {report['load']} on {report['cpus']} CPUs; memory available {report['memory_available_bytes']}"
    )
    for p in problems(report):
        out.print(f"  problem: {p}")


@gpu_app.command("snapshot")
def gpu_snapshot(
    backend: Annotated[
        str | None,
        typer.Option(
            help="Read another object with pynvml's interface (module:factory) instead of NVML, "
            "e.g. the sandbox's llmedic_sandbox.fake_nvml:FakeNvml."
        ),
    ] = None,
    scenario: Annotated[Path | None, typer.Option(help="Passed to the --backend factory.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Machine-readable (what remote hosts print).")
    ] = False,
) -> None:
    """Every GPU of this host with its health and diagnosis; says so when there is no GPU or driver."""
    from llmedic.adapters.gpu import NvmlReader, load_nvml
    from llmedic.analysis.gpu_health import diagnose_gpu
    from llmedic.config import NvmlBackend
    from llmedic.errors import ConfigError
    from llmedic.yamlfile import validate_model

    nvml = (
        validate_model(
            NvmlBackend, {"backend": backend, "scenario": scenario}, source="--backend", error=ConfigError
        )
        if backend
        else None
    )
    snap = (NvmlReader(load_nvml(nvml)) if nvml else NvmlReader()).snapshot()
    if as_json:
        out.print_json(json.dumps(snap.as_dict()))
        return
    if not snap.available:
        out.print(f"no GPU: {snap.reason}")
        return
    out.print(f"driver {snap.driver}, CUDA {snap.cuda_driver}, {len(snap.devices)} GPU(s)")
    for d in snap.devices:
        diag = diagnose_gpu(d.as_dict(), [])
        out.print(
            f"  GPU {d.index} {d.name}: util {d.utilisation_pct}%, {d.temperature_c} °C, power {d.power_w} W, "
            f"throttle {d.throttle_reasons or 'none'}, ECC unc {d.ecc_uncorrected_volatile}, "
            f"remap {d.remapped_rows}, recovery {d.recovery_action} → {diag.diagnosis}"
        )
