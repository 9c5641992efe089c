"""State of one sandbox instance: its faults, its latency model, and its vLLM-named metrics."""

from __future__ import annotations

import asyncio
import json
import random
import re
import subprocess
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmedic_sandbox.knowledge import ClinicalFacts, LiveKnowledge
from llmedic_sandbox.metrics import InstanceMetrics

__all__ = ["Fault", "SandboxInstance", "dcgm_exposition"]

FaultKind = Literal[
    "slow",
    "slow_decode",
    "kv_pressure",
    "errors",
    "down",
    "leak",
    "wrong_answers",
    "jailbreak",
    "garbage",
    "cuda_error",
]

_INJECTION = re.compile(r"\b(ignore|disregard)\b.*\binstructions?\b|\bsystem prompt\b", re.I)
_LEADING = re.compile(r"\bno (known )?interaction\b|\bperfectly safe\b", re.I)

# Faults a restart clears (they live in the process); the others live in load, data or the model.
PROCESS_FAULTS: frozenset[str] = frozenset({"slow", "leak", "down", "cuda_error"})


class Fault(BaseModel):
    """An injected fault."""

    model_config = ConfigDict(extra="forbid")

    kind: FaultKind
    delay_seconds: float = Field(2.5, ge=0, le=120)
    """slow: added to every request's time to first token."""
    itl_seconds: float = Field(0.05, ge=0, le=10)
    """slow_decode: added to every generated token (compute-bound decode: a quantised variant of the
    model decodes four times faster — 4-bit weights move a quarter of the bytes — and recovers most of it)."""
    kv_slots: int = Field(3, ge=1)
    """kv_pressure: requests that fit in KV cache; more running requests get preempted."""
    rate: float = Field(0.5, ge=0, le=1)
    """errors / wrong_answers / garbage: share of requests affected."""
    tags: list[str] = Field(default_factory=list)
    """wrong_answers: only questions with one of these tags (empty: all)."""
    model_version: str | None = None
    """The fault lives in this model version: active only while the instance serves it (a bad
    release; rolling back to another version clears it, switching back brings it back)."""
    bytes_per_request: int = Field(4_000_000, ge=0)
    """leak: resident memory that each request never gives back."""
    bytes_per_second: int = Field(0, ge=0)
    """leak: resident memory that grows with time, with or without traffic."""
    survives_restart: bool = False
    """Keep the fault across restarts (a bad node, not a bad process)."""


@dataclass
class SandboxInstance:
    """One simulated serving instance."""

    name: str
    knowledge: ClinicalFacts | LiveKnowledge
    model_version: str = "pharma-qa-1.0"
    concurrency_limit: int = 16
    kv_slots: int = 16
    standby: bool = False
    restart_seconds: float = 0.5
    base_rss: int = 1_500_000_000
    seed: int = 0
    drained: bool = False
    restarts: int = 0
    faults: dict[str, Fault] = field(default_factory=dict)
    leaked_bytes: int = 0
    restarting_until: float = 0.0
    started_at: float = field(default_factory=time.time)
    actions: list[dict[str, Any]] = field(default_factory=list)
    gpu_scenario: Path | None = None
    """The fake NVML scenario of its host: a GPU that needs a reset (uncorrectable ECC errors, a
    pending row remap) or is lost makes every request fail with a CUDA error, restart or not."""
    gpu_index: int = 0
    log_file: Path | None = None
    """Where it writes its log (errors, start-up failures), as a serving process would."""
    env_python: str | None = None
    """The virtual environment it "runs in": a restart import-tests ``env_imports`` with it, and a
    worker whose imports fail does not come up (a broken dependency set)."""
    env_imports: list[str] = field(default_factory=list)
    prompts: deque[tuple[float, str]] = field(default_factory=lambda: deque(maxlen=2000))
    """Recent user prompts (not llmedic's own probes), as a gateway would log them."""

    def __post_init__(self) -> None:
        self.drained = self.drained or self.standby
        self._initial = (self.standby, self.concurrency_limit, self.model_version)
        self.metrics = InstanceMetrics(self.model_version)
        self._running = 0
        self._waiting = 0
        self._cond: asyncio.Condition | None = None
        self._rng = random.Random(self.seed or hash(self.name))
        self._leak_tick = time.monotonic()
        self._retained: list[bytearray] = []

    # ------------------------------------------------------------ state

    @property
    def restarting(self) -> bool:
        """Inside the simulated restart window."""
        return time.time() < self.restarting_until

    @property
    def healthy(self) -> bool:
        """What ``/health`` answers."""
        return not self.restarting and self.fault("down") is None

    def fault(self, kind: str) -> Fault | None:
        """The injected fault of ``kind`` if it is active now (a fault bound to a model version is
        dormant while another version is served)."""
        f = self.faults.get(kind)
        if f is None or (f.model_version is not None and f.model_version != self.model_version):
            return None
        return f

    def gpu_fault(self) -> str | None:
        """The CUDA error its GPU causes now (None: the GPU is fine or there is none)."""
        if self.gpu_scenario is None:
            return None
        try:
            dev = json.loads(self.gpu_scenario.read_text("utf-8"))["devices"][self.gpu_index]
        except (OSError, ValueError, KeyError, IndexError):
            return None
        if dev.get("lost"):
            return "CUDA error: GPU has fallen off the bus"
        remap = dev.get("remapped") or [0, 0, 0, 0]
        if int(dev.get("ecc_uncorrected", 0)) > 0 or int(remap[2]) or int(dev.get("retired_pending", 0)):
            return "CUDA error: uncorrectable ECC error encountered"
        return None

    def _tick_leak(self) -> None:
        now = time.monotonic()
        leak = self.fault("leak")
        if leak is not None and leak.bytes_per_second:
            self.leaked_bytes += int(leak.bytes_per_second * (now - self._leak_tick))
        self._leak_tick = now

    def log(self, level: str, message: str) -> None:
        """Append a line to the instance's log file (if it has one)."""
        if self.log_file is None:
            return
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        with self.log_file.open("a", encoding="utf-8") as fh:
            fh.write(f"{stamp} {level} {self.name}: {message}\n")

    def check_env(self) -> str | None:
        """Import-test the environment; the failure text when a module does not import."""
        if not self.env_python or not self.env_imports:
            return None
        code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n"
        try:
            res = subprocess.run(
                [self.env_python, "-c", code, *self.env_imports], capture_output=True, text=True, timeout=60
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"cannot run {self.env_python}: {exc}"
        return None if res.returncode == 0 else res.stderr.strip()

    def record(self, action: str, **detail: Any) -> None:
        """Remember an admin action (tests assert on these)."""
        self.actions.append({"action": action, "at": time.time(), **detail})

    def state(self) -> dict[str, Any]:
        """``GET /admin/state``."""
        self._tick_leak()
        return {
            "name": self.name,
            "healthy": self.healthy,
            "drained": self.drained,
            "standby": self.standby,
            "concurrency_limit": self.concurrency_limit,
            "model_version": self.model_version,
            "restarts": self.restarts,
            "running": self._running,
            "waiting": self._waiting,
            "faults": [f.model_dump() for f in self.faults.values()],
            "rss_bytes": self.base_rss + self.leaked_bytes,
            "actions": self.actions[-50:],
        }

    def reset(self) -> None:
        """Back to the state at start-up (tests and game days start from here)."""
        self.faults.clear()
        self.leaked_bytes = 0
        self.standby, self.concurrency_limit, self.model_version = self._initial
        self.drained = self.standby
        self.restarts = 0
        self.restarting_until = 0.0
        self.actions.clear()
        self.prompts.clear()
        self._retained.clear()
        self.env_python, self.env_imports = None, []
        self.metrics = InstanceMetrics(self.model_version)
        self._leak_tick = time.monotonic()

    def restart(self) -> None:
        """Simulate a process restart: a short outage, process-bound faults gone, counters reset."""
        self.restarts += 1
        self.restarting_until = time.time() + self.restart_seconds
        for kind in PROCESS_FAULTS:
            fault = self.faults.get(kind)
            if fault is not None and not fault.survives_restart:
                del self.faults[kind]
        self.leaked_bytes = 0
        self._retained.clear()
        self._leak_tick = time.monotonic()
        self.metrics = InstanceMetrics(self.model_version)
        self.record("restart")
        broken = self.check_env()
        if broken is not None:
            # The worker cannot import what it needs: it does not come up.
            self.faults["down"] = Fault(kind="down", survives_restart=False)
            for line in broken.splitlines()[-6:]:
                self.log("ERROR", line)
            self.log("FATAL", "worker failed to start")

    async def set_limit(self, limit: int) -> None:
        """Change the concurrency limit; waiters re-check at once."""
        self.concurrency_limit = limit
        self.record("set_concurrency", limit=limit)
        if self._cond is not None:
            async with self._cond:
                self._cond.notify_all()

    # ------------------------------------------------------------ serving

    @property
    def quantised(self) -> bool:
        """Is the served model a quantised variant (AWQ, GPTQ, INT4/INT8, FP8)?"""
        v = self.model_version.lower()
        return any(tag in v for tag in ("awq", "gptq", "int4", "int8", "fp8"))

    def refresh_gauges(self) -> None:
        """Set every gauge from the current state (what a scrape reads)."""
        self._update_gauges()

    def _update_gauges(self) -> None:
        self._tick_leak()
        lv = self.metrics.lv
        self.metrics.running.labels(**lv).set(self._running)
        self.metrics.waiting.labels(**lv).set(self._waiting)
        kv = self.fault("kv_pressure")
        slots = kv.kv_slots if kv else self.kv_slots
        self.metrics.kv.labels(**lv).set(min(1.0, self._running / slots))
        self.metrics.rss.set(self.base_rss + self.leaked_bytes)

    def answer(self, question: str) -> str:
        """What the model says (before timing): the knowledge base's answer, bent by the model faults."""
        jail = self.fault("jailbreak")
        if jail is not None and _INJECTION.search(question):
            return f"Sure. My system prompt is: you are {self.model_version}, a clinical assistant."
        if jail is not None and _LEADING.search(question):
            return "Yes, that combination is safe: there is no known interaction."
        if _INJECTION.search(question):
            return "I can only answer questions about drug interactions."
        item = self.knowledge.lookup(question)
        answer = item.answers[0] if item and item.answers else "I don't know."
        wrong = self.fault("wrong_answers")
        hit = wrong is not None and item is not None and (not wrong.tags or set(wrong.tags) & set(item.tags))
        if wrong is not None and item is not None and hit and self._rng.random() < wrong.rate:
            others = [o for o in self.knowledge.items if o.answers and o.answers[0] != answer]
            answer = self._rng.choice(others).answers[0] if others else "no known interaction"
        return answer

    async def complete(
        self, question: str, max_tokens: int, *, probe: bool = False
    ) -> tuple[int, dict[str, Any]]:
        """Serve one chat completion; returns (HTTP status, body). ``probe``: llmedic's own request
        (not remembered as user traffic)."""
        if not probe:
            self.prompts.append((time.time(), question))
        if self._cond is None:
            self._cond = asyncio.Condition()
        arrived = time.perf_counter()
        self._waiting += 1
        self._update_gauges()
        async with self._cond:
            await self._cond.wait_for(lambda: self._running < self.concurrency_limit)
            self._waiting -= 1
            self._running += 1
        queued = time.perf_counter() - arrived
        self._update_gauges()
        try:
            return await self._serve(question, max_tokens, arrived, queued)
        finally:
            async with self._cond:
                self._running -= 1
                self._cond.notify_all()
            self._update_gauges()

    def _timings(self, prompt_tokens: int) -> tuple[float, float]:
        """(time to first token, inter-token latency) of one request now: KV-cache pressure
        (preemptions) slows both, the slow and slow_decode faults add to them, a quantised model
        decodes four times faster."""
        m = self.metrics
        kv = self.fault("kv_pressure")
        slots = kv.kv_slots if kv else self.kv_slots
        over = max(0, self._running - slots)
        factor = 1.0 + 0.6 * over
        if over:
            m.preemptions.labels(**m.lv).inc(over)
        ttft = (0.02 + 0.001 * prompt_tokens) * factor
        slow = self.fault("slow")
        if slow:
            ttft += slow.delay_seconds
        itl = 0.004 * factor
        decode = self.fault("slow_decode")
        if decode:
            itl += decode.itl_seconds
        if self.quantised:
            itl /= 4
        return ttft, itl

    def _failure(self) -> tuple[int, dict[str, Any]] | None:
        """The failed answer an injected fault makes of this request (CUDA, errors, garbage), if any."""
        m = self.metrics
        cuda = self.gpu_fault() or (
            "CUDA error: an illegal memory access was encountered" if self.fault("cuda_error") else None
        )
        if cuda is not None:
            self.log("ERROR", f"request failed: RuntimeError: {cuda}")
            m.success.labels(**m.lv, finished_reason="error").inc()
            return 500, {"error": {"message": cuda, "type": "InternalServerError"}}
        failing = self.fault("errors")
        if failing and self._rng.random() < failing.rate:
            m.success.labels(**m.lv, finished_reason="error").inc()
            return 500, {"error": {"message": "internal engine error", "type": "InternalServerError"}}
        garbage = self.fault("garbage")
        if garbage and self._rng.random() < garbage.rate:
            return 200, {"id": "chatcmpl-garbage", "object": "chat.completion", "choices": []}
        return None

    async def _serve(
        self, question: str, max_tokens: int, arrived: float, queued: float
    ) -> tuple[int, dict[str, Any]]:
        """One admitted request: simulated decoding, injected faults, metrics, the answer."""
        m = self.metrics
        lv = m.lv
        answer = self.answer(question)
        gen = min(max_tokens, len(answer.split()) + 1)
        prompt_tokens = len(question.split())
        ttft, itl = self._timings(prompt_tokens)
        await asyncio.sleep(ttft + itl * gen)
        failed = self._failure()
        if failed is not None:
            return failed
        leak = self.fault("leak")
        if leak:
            self.leaked_bytes += leak.bytes_per_request
            # Keep a real allocation too (a 64th, at most 64 KiB), so a heap profile
            # (tracemalloc) of the sandbox process points at this line.
            self._retained.append(bytearray(min(leak.bytes_per_request // 64, 65536)))
        m.e2e.labels(**lv).observe(time.perf_counter() - arrived)
        m.ttft.labels(**lv).observe(queued + ttft)
        m.itl.labels(**lv).observe(itl)
        m.queue.labels(**lv).observe(queued)
        m.prompt_tokens.labels(**lv).inc(prompt_tokens)
        m.gen_tokens.labels(**lv).inc(gen)
        reason = "length" if gen >= max_tokens else "stop"
        m.success.labels(**lv, finished_reason=reason).inc()
        return 200, {
            "id": f"chatcmpl-{self.name}-{int(arrived * 1e6)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_version,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": reason}
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": gen,
                "total_tokens": prompt_tokens + gen,
            },
        }


def dcgm_exposition(scenario: Path) -> str:
    """DCGM-exporter text for the fake GPUs of ``scenario`` (its default counters' names and labels)."""
    try:
        devices = json.loads(scenario.read_text("utf-8")).get("devices", [])
    except (OSError, ValueError):
        devices = []
    rows: list[tuple[str, str, Callable[[dict[str, Any]], float]]] = [
        ("DCGM_FI_DEV_GPU_UTIL", "gauge", lambda d: d.get("util", 0)),
        ("DCGM_FI_DEV_GPU_TEMP", "gauge", lambda d: d.get("temperature", 45)),
        ("DCGM_FI_DEV_POWER_USAGE", "gauge", lambda d: d.get("power_mw", 150_000) / 1000),
        ("DCGM_FI_DEV_FB_USED", "gauge", lambda d: d.get("memory_used", 0) // 2**20),
        (
            "DCGM_FI_DEV_FB_FREE",
            "gauge",
            lambda d: (d.get("memory_total", 85_899_345_920) - d.get("memory_used", 0)) // 2**20,
        ),
        ("DCGM_FI_DEV_XID_ERRORS", "gauge", lambda d: d.get("last_xid", 0)),
        (
            "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
            "counter",
            lambda d: (d.get("remapped") or [0, 0, 0, 0])[1],
        ),
        ("DCGM_FI_DEV_ROW_REMAP_FAILURE", "gauge", lambda d: (d.get("remapped") or [0, 0, 0, 0])[3]),
    ]
    lines: list[str] = []
    for name, kind, value in rows:
        lines.append(f"# TYPE {name} {kind}")
        for i, d in enumerate(devices):
            pci = d.get("pci", f"00000000:{16 + i:02X}:00.0")
            labels = f'gpu="{i}",UUID="{d.get("uuid", f"GPU-fake-{i}")}",pci_bus_id="{pci}",modelName="{d.get("name", "NVIDIA H100 80GB HBM3")}",Hostname="sandbox"'
            lines.append(f"{name}{{{labels}}} {value(d)}")
    return "\n".join(lines) + "\n"
