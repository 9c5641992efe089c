"""Game-day timing: faults injected after the scenario's start (``after_seconds``), and the key of
an approval gate (one run may open several)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from llmedic.incident import Incident, Outcome
from llmedic_sandbox.gameday.scenario import (
    DatasetFault,
    DepsFault,
    GpuFault,
    LinkFault,
    ModelRelease,
    SandboxFault,
)

__all__ = ["AnyFault", "DelayedFaults", "gate_key"]

AnyFault = SandboxFault | GpuFault | DatasetFault | ModelRelease | DepsFault | LinkFault


def gate_key(incident: Incident) -> tuple[str, str] | None:
    """The gate ``incident`` waits at, as (flow run, the pending approval's nonce); ``None`` when it
    waits at none. One run may open several gates (the next fix after a failed verification, each
    behind its own), so answering a run once is not answering all of its gates."""
    pending = incident.pending_approval
    if not pending or not incident.flow_run_id or incident.outcome != Outcome.OPEN:
        return None
    nonce = str(pending.get("nonce") or pending.get("requested_at") or pending.get("action", ""))
    return incident.flow_run_id, nonce


@dataclass
class DelayedFaults:
    """Faults injected ``after_seconds`` after the scenario's start, each on its own timer thread;
    :meth:`stop` cancels the ones not yet due and joins the rest (bounded)."""

    inject: Any
    """``inject(fault)``: applies one fault (raises on a bad one)."""
    log: Any = print
    timers: list[tuple[AnyFault, threading.Timer]] = field(default_factory=list)
    injected: list[AnyFault] = field(default_factory=list)
    failed: list[AnyFault] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    join_seconds: float = 15.0

    def schedule(self, fault: AnyFault, started: float) -> None:
        """Inject ``fault`` at ``started`` (monotonic) + its ``after_seconds``."""
        delay = max(0.0, started + fault.after_seconds - time.monotonic())
        timer = threading.Timer(delay, self._fire, args=(fault,))
        timer.daemon = True
        self.timers.append((fault, timer))
        timer.start()

    def _fire(self, fault: AnyFault) -> None:
        what = f"{fault.kind} at {fault.after_seconds:g} s"
        try:
            self.inject(fault)
        except Exception as exc:  # a timer thread: the error goes on the scorecard, never lost
            code = getattr(exc, "code", type(exc).__name__)
            self.problems.append(f"game day error [{code}] injecting {what}: {exc}")
            self.failed.append(fault)
            return
        self.injected.append(fault)
        self.log(f"  injected {what}: {fault.model_dump(exclude={'kind'}, exclude_none=True)}")

    def stop(self) -> list[str]:
        """Cancel what is not due, join what runs; the problems (failed or never injected faults)."""
        for _, timer in self.timers:
            timer.cancel()
        for fault, timer in self.timers:
            timer.join(self.join_seconds)
            if timer.is_alive():
                self.problems.append(
                    f"fault {fault.kind} at {fault.after_seconds:g} s still injecting after "
                    f"{self.join_seconds:g} s; the scenario went on without it"
                )
            elif fault not in self.injected and fault not in self.failed:
                self.problems.append(
                    f"fault {fault.kind} at {fault.after_seconds:g} s was never injected: every incident "
                    "closed (or the scenario timed out) first; lower its after_seconds"
                )
        return self.problems
