"""Run a small sandbox fleet in one process: N instances (+ standby) on consecutive ports and an
optional background load, and write the ``llmedic.yaml`` that describes it."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import shlex
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import httpx
import uvicorn
import yaml

from llmedic.errors import OrchestrationError
from llmedic_sandbox.app import create_app
from llmedic_sandbox.instance import SandboxInstance
from llmedic_sandbox.knowledge import (
    ClinicalFacts,
    LiveKnowledge,
    adversarial_path,
    golden_path,
    load_knowledge,
    shipped_path,
)

__all__ = [
    "FAKE_NVML_BACKEND",
    "KNOWLEDGE_DATASET",
    "FleetSpec",
    "environment_for",
    "free_port",
    "knowledge_dataset",
    "run_fleet",
    "start_fleet",
    "write_healthy_gpus",
]

FAKE_NVML_BACKEND = "llmedic_sandbox.fake_nvml:FakeNvml"
"""The NVML backend a sandbox host names in ``llmedic.yaml`` (imported by name, only when read)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class FleetSpec:
    """Shape of a sandbox fleet."""

    instances: int = 3
    standby: int = 1
    host: str = "127.0.0.1"
    port: int = 8100
    """First port; 0 picks free ports."""
    load_qps: float = 0.0
    concurrency_limit: int = 16
    admin_token: str | None = None
    service: str = "pharma-qa"
    knowledge: Path | None = None
    """Serve the knowledge base from this file (the dataset's ``publish_to``), re-read on change;
    default: the shipped file, fixed."""
    log_dir: Path | None = None
    """Each instance writes ``<log_dir>/<instance>.log`` (the service's ``logs`` command reads it)."""
    lab_results: Path | None = None
    """Also declare the tabular dataset ``lab-results`` (drug doses and INR readings, CSV),
    published here: a target for the data scenarios of game days."""
    gpu_scenario: Path | None = None
    """Give the fleet fake GPUs: a fake-NVML scenario here (one healthy GPU per instance, written at
    start), a kernel log beside it (``kern.log``), and the host commands to read and reset them."""

    def names(self) -> list[tuple[str, bool]]:
        """(instance name, is standby) in port order."""
        return [(f"sandbox-{i}", i >= self.instances) for i in range(self.instances + self.standby)]


def _ports(spec: FleetSpec) -> Iterator[int]:
    if spec.port == 0:
        while True:
            yield free_port(spec.host)
    yield from itertools.count(spec.port)


KNOWLEDGE_DATASET = "drug-interactions"


def knowledge_dataset(publish_to: Path, service: str) -> dict[str, object]:
    """The declaration of the sandbox's knowledge base as a versioned dataset."""
    return {
        "path": str(shipped_path()),
        "format": "jsonl",
        "description": "clinical drug-interaction Q/A pairs the service answers from (its RAG corpus)",
        "columns": {
            "id": {"dtype": "string", "nullable": False, "regex": r"ddi-\d{3}", "drift": False},
            "question": {"dtype": "string", "nullable": False, "drift": False},
            "answers": {"dtype": "string", "nullable": False, "impute": False, "drift": False},
            "tags": {"dtype": "string", "drift": False},
        },
        "key": ["id"],
        "publish_to": str(publish_to),
        "consumers": [service],
    }


LAB_DATASET = "lab-results"


def lab_dataset(publish_to: Path) -> dict[str, object]:
    """The declaration of the sandbox's tabular dataset (synthetic lab results, 200 rows)."""
    return {
        "path": str(Path(str(resources.files("llmedic_sandbox").joinpath("data/lab_results.csv")))),
        "format": "csv",
        "description": "synthetic lab results: dose and INR per sample (a tabular pipeline output)",
        "columns": {
            "sample_id": {"dtype": "string", "nullable": False, "regex": r"lab-\d{4}", "drift": False},
            "patient": {"dtype": "string", "nullable": False, "drift": False},
            "drug": {"dtype": "category", "nullable": False},
            # One column, many drugs: metformin's 500-1000 mg are as normal as warfarin's 2.5-40 mg.
            "dose_mg": {"dtype": "float", "nullable": False, "min": 0, "max": 2000, "group_by": "drug"},
            "inr": {"dtype": "float", "nullable": False, "min": 0.5, "max": 8},
            "measured_at": {"dtype": "date", "nullable": False, "date_formats": ["%Y-%m-%d"], "drift": False},
        },
        "key": ["sample_id"],
        "time_column": "measured_at",
        "publish_to": str(publish_to),
    }


def write_healthy_gpus(scenario: Path, count: int) -> None:
    """A fake-NVML scenario of ``count`` healthy H100s and an empty kernel log beside it."""
    scenario.parent.mkdir(parents=True, exist_ok=True)
    devices = [
        {
            "name": "NVIDIA H100 80GB HBM3",
            "uuid": f"GPU-sandbox-{i}",
            "util": 40,
            "memory_used": 60 << 30,
            "temperature": 58,
        }
        for i in range(count)
    ]
    scenario.write_text(json.dumps({"driver": "550.54.15", "cuda": 12040, "devices": devices}, indent=2))
    scenario.with_name("kern.log").write_text("")


def _host_sections(spec: FleetSpec, ports: dict[str, int]) -> dict[str, object]:
    """``hosts:`` (the fake GPUs, their kernel log, DCGM) and ``commands:`` (kernel log, GPU reset,
    instance logs) of the fleet's llmedic.yaml, as far as the spec asks for them."""
    commands: dict[str, object] = {}
    out: dict[str, object] = {}
    if spec.gpu_scenario is not None:
        log = spec.gpu_scenario.with_name("kern.log")
        out["hosts"] = [
            {
                "name": "local",
                "nvml": {"backend": FAKE_NVML_BACKEND, "scenario": str(spec.gpu_scenario)},
                "kernel_log": "kernel_log",
                "dcgm_url": f"http://{spec.host}:{ports[spec.names()[0][0]]}/dcgm/metrics",
            }
        ]
        commands = {
            "kernel_log": {
                "template": f"cat {shlex.quote(str(log))}",
                "description": "the host's kernel log",
            },
            "reset_gpu": {
                "template": f"{shlex.quote(sys.executable)} -m llmedic_sandbox.fake_nvml reset "
                f"--scenario {shlex.quote(str(spec.gpu_scenario))} --gpu {{gpu}}",
                "params": {"gpu": {"pattern": r"^[0-9]{1,2}$"}},
                "description": "reset one GPU (nvidia-smi -r -i {gpu} on a real host)",
            },
        }
    if spec.log_dir is not None:
        commands["instance_logs"] = {
            "template": f"tail -n 500 {shlex.quote(str(spec.log_dir))}/{{instance}}.log",
            "params": {"instance": {"pattern": r"^sandbox-[0-9]{1,2}$"}},
            "description": "the instance's recent log lines",
        }
    if commands:
        out["commands"] = commands
    return out


def environment_for(spec: FleetSpec, ports: dict[str, int]) -> dict[str, object]:
    """The ``llmedic.yaml`` content that points llmedic at this fleet."""

    def inst(name: str) -> dict[str, object]:
        out: dict[str, object] = {"name": name, "url": f"http://{spec.host}:{ports[name]}"}
        if spec.gpu_scenario is not None:
            out["gpus"] = [int(name.rsplit("-", 1)[1])]
        return out

    gpu = _host_sections(spec, ports)
    control: dict[str, object] = {"kind": "sandbox"}
    if spec.admin_token:
        control["admin_token"] = spec.admin_token
    return {
        "services": [
            {
                "name": spec.service,
                "engine": "vllm",
                "model": "pharma-qa-1.0",
                "instances": [inst(n) for n, standby in spec.names() if not standby],
                "standby": [inst(n) for n, standby in spec.names() if standby],
                "control": control,
                **({"logs": "instance_logs"} if spec.log_dir is not None else {}),
            }
        ],
        **gpu,
        "metrics": {"kind": "scrape"},
        "golden_sets": {
            f"{spec.service}-golden": {
                "path": str(golden_path()),
                "service": spec.service,
                "adversarial": str(adversarial_path()),
            }
        },
        **(
            {
                "datasets": {
                    **(
                        {KNOWLEDGE_DATASET: knowledge_dataset(spec.knowledge, spec.service)}
                        if spec.knowledge
                        else {}
                    ),
                    **({LAB_DATASET: lab_dataset(spec.lab_results)} if spec.lab_results else {}),
                }
            }
            if spec.knowledge or spec.lab_results
            else {}
        ),
        "alert_rules": [
            {"match": {"alertname": "VLLMHighP99Latency"}, "anomaly": "latency"},
            {"match": {"alertname": "VLLMHighTTFT"}, "anomaly": "latency"},
            {"match": {"alertname": "GoldenSetAccuracyDrop"}, "anomaly": "accuracy_drop"},
        ],
    }


class _Server(uvicorn.Server):
    # Several servers share one loop; the fleet handles signals itself.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _load(
    instances: list[SandboxInstance], ports: dict[str, int], spec: FleetSpec, stop: asyncio.Event
) -> None:
    kb = instances[0].knowledge
    rng = random.Random(7)
    rr = itertools.count()
    pending: set[asyncio.Task[httpx.Response]] = set()
    async with httpx.AsyncClient(timeout=60) as client:
        while not stop.is_set():
            active = [i for i in instances if not i.drained and i.healthy]
            if active:
                inst = active[next(rr) % len(active)]
                item = rng.choice(kb.items)
                body = {
                    "model": "default",
                    "messages": [{"role": "user", "content": item.question}],
                    "max_tokens": 16,
                }
                url = f"http://{spec.host}:{ports[inst.name]}/v1/chat/completions"
                task = asyncio.create_task(client.post(url, json=body))
                pending.add(task)
                task.add_done_callback(pending.discard)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0 / spec.load_qps)
        for task in pending:
            task.cancel()


async def _serve(
    spec: FleetSpec, config_out: Path | None, external_stop: threading.Event | None = None
) -> None:
    kb: ClinicalFacts | LiveKnowledge
    if spec.knowledge is not None:
        if not spec.knowledge.exists():  # first start: publish the shipped version
            spec.knowledge.parent.mkdir(parents=True, exist_ok=True)
            spec.knowledge.write_bytes(shipped_path().read_bytes())
        kb = LiveKnowledge(spec.knowledge)
    else:
        kb = load_knowledge()
    if spec.gpu_scenario is not None:
        write_healthy_gpus(spec.gpu_scenario, len(spec.names()))
    if spec.log_dir is not None:
        spec.log_dir.mkdir(parents=True, exist_ok=True)
        for name, _ in spec.names():
            (spec.log_dir / f"{name}.log").touch()
    port_iter = _ports(spec)
    ports: dict[str, int] = {}
    instances: list[SandboxInstance] = []
    servers: list[_Server] = []
    for i, (name, standby) in enumerate(spec.names()):
        ports[name] = next(port_iter)
        inst = SandboxInstance(
            name=name,
            knowledge=kb,
            standby=standby,
            concurrency_limit=spec.concurrency_limit,
            seed=i + 1,
            gpu_scenario=spec.gpu_scenario,
            gpu_index=i,
            log_file=spec.log_dir / f"{name}.log" if spec.log_dir else None,
        )
        instances.append(inst)
        app = create_app(inst, spec.admin_token)
        config = uvicorn.Config(app, host=spec.host, port=ports[name], log_level="warning", access_log=False)
        servers.append(_Server(config))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    async def watch() -> None:
        while not stop.is_set():
            if external_stop is not None and external_stop.is_set():
                stop.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.2)
        for s in servers:
            s.should_exit = True

    tasks = [asyncio.create_task(s.serve()) for s in servers]
    tasks.append(asyncio.create_task(watch()))
    while not all(s.started for s in servers):
        if any(t.done() for t in tasks[:-1]):
            stop.set()
            break
        await asyncio.sleep(0.05)
    if not stop.is_set():
        if config_out is not None:
            config_out.parent.mkdir(parents=True, exist_ok=True)
            config_out.write_text(yaml.safe_dump(environment_for(spec, ports), sort_keys=False))
        if spec.load_qps > 0:
            tasks.append(asyncio.create_task(_load(instances, ports, spec, stop)))
    await asyncio.gather(*tasks, return_exceptions=True)


def run_fleet(spec: FleetSpec, config_out: Path | None = None, stop: threading.Event | None = None) -> None:
    """Serve the fleet until SIGINT/SIGTERM (or ``stop`` is set); writes ``config_out`` once every
    instance listens."""
    asyncio.run(_serve(spec, config_out, stop))


def start_fleet(
    spec: FleetSpec, config_out: Path, stop: threading.Event, timeout: float = 60.0
) -> tuple[threading.Thread, dict[str, str]]:
    """Serve the fleet in a background thread until ``stop`` is set; once every instance listens,
    return the thread and the URL of each instance (standbys included), by name."""
    config_out.unlink(missing_ok=True)
    thread = threading.Thread(
        target=run_fleet, args=(spec, config_out, stop), name="sandbox-fleet", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + timeout
    while not config_out.exists():
        if time.monotonic() > deadline or not thread.is_alive():
            stop.set()
            raise OrchestrationError(f"the sandbox fleet did not start within {timeout:g}s")
        time.sleep(0.05)
    svc = yaml.safe_load(config_out.read_text())["services"][0]
    return thread, {i["name"]: i["url"] for i in svc["instances"] + svc["standby"]}
