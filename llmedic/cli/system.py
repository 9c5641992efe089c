"""The installation itself: ``llmedic up`` (the whole stack), ``llmedic receiver``, ``llmedic config``,
``llmedic playbooks``, ``llmedic host`` and ``llmedic gpu`` (this host's GPUs, what the gpu_fault
playbook reads)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from llmedic.config import load_environment, settings_from_env

__all__ = ["config_app", "gpu_app", "host_app", "playbooks_app", "receiver", "up"]

gpu_app = typer.Typer(help="GPU health on this host (NVML).", no_args_is_help=True)
host_app = typer.Typer(help="This host's resources and the service's paths.", no_args_is_help=True)
playbooks_app = typer.Typer(help="Playbook files.", no_args_is_help=True)
config_app = typer.Typer(help="The environment file (llmedic.yaml).", no_args_is_help=True)
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
    from llmedic.anomalies.gpu.diagnosis import diagnose_gpu
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


def up(
    port: Annotated[int, typer.Option(help="Prefect server port.")] = 4200,
    host: Annotated[str, typer.Option(help="Prefect server address.")] = "127.0.0.1",
    receiver_port: Annotated[int, typer.Option(help="Alert receiver port.")] = 9095,
    config: Annotated[Path | None, typer.Option(help="Environment file (default: llmedic.yaml).")] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            envvar="LLMEDIC_PREFECT_DATABASE_URL",
            help="The Prefect server's database, e.g. postgresql+asyncpg://user:pass@db/prefect (default: SQLite in the state directory).",
        ),
    ] = None,
) -> None:
    """Start the Prefect server (unless PREFECT_API_URL is set), every deployment and the approval sweeper."""
    from llmedic.stack import Stack

    settings = settings_from_env()
    env = load_environment(config, settings)
    stack = Stack(
        settings,
        host=host,
        port=port,
        config_path=config,
        receiver_port=receiver_port,
        database_url=database_url,
    )
    out.print(f"llmedic up: {len(env.services)} service(s); state in {stack.home}")
    out.print(f"Prefect UI: http://{host}:{port}  (Ctrl-C to stop; waiting approvals survive a restart)")
    out.print(f"alert receiver: http://{host}:{receiver_port}/alerts/alertmanager")
    if stack.api_auth() is not None:
        where = stack.auth_path or "PREFECT_API_AUTH_STRING / PREFECT_SERVER_API_AUTH_STRING"
        out.print(f"Prefect API: basic auth required; the user:password (the UI's login) is in {where}")
    raise typer.Exit(stack.run_forever())


def receiver(
    port: Annotated[int, typer.Option(help="Listen port.")] = 9095,
    host: Annotated[str, typer.Option(help="Listen address.")] = "127.0.0.1",
    insecure: Annotated[
        bool, typer.Option(help="Accept alerts without credentials (local demos only).")
    ] = False,
    no_dispatch: Annotated[bool, typer.Option(help="Only accept into the outbox; start no runs.")] = False,
) -> None:
    """The alert webhook receiver (durable outbox + dispatcher into Prefect runs)."""
    import os

    # The outbox retries with its own backoff; the Prefect client's retries would only make one
    # row hold up the others while the API is down.
    os.environ.setdefault("PREFECT_CLIENT_MAX_RETRIES", "1")
    from llmedic.receiver.server import Receiver, auth_from_settings

    settings = settings_from_env()
    env = load_environment(settings=settings)
    auth = auth_from_settings(settings, insecure=insecure)
    out.print(f"llmedic receiver on http://{host}:{port}")
    Receiver(settings, env, auth, host=host, port=port, dispatch=not no_dispatch).serve()


@playbooks_app.command("check")
def playbooks_check() -> None:
    """Validate every playbook (shipped and overrides)."""
    from llmedic.playbook import load_all_playbooks, playbook_files

    settings = settings_from_env()
    books = load_all_playbooks(settings)
    files = playbook_files(settings)
    for kind, book in books.items():
        out.print(f"ok  {kind.value:22} {len(book.fixes)} fix(es)  {files[kind]}")


@config_app.command("check")
def config_check(path: Annotated[Path | None, typer.Argument()] = None) -> None:
    """Validate the environment file."""
    settings = settings_from_env()
    target = path or settings.config_path()
    env = load_environment(path, settings)
    out.print(
        f"ok  {target}: {len(env.services)} service(s), {len(env.hosts)} host(s), "
        f"{len(env.commands)} command template(s), metrics from {env.metrics.kind}"
    )


@config_app.command("reference")
def config_reference() -> None:
    """Print the configuration reference (Markdown), generated from the validating models."""
    from llmedic.configdoc import render_reference

    sys.stdout.write(render_reference())
