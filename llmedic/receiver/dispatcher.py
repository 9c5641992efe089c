"""Drains the outbox into Prefect deployment runs.

For each pending notification, in order of arrival:

* ``resolved``: attached to the open incident of the same (anomaly, target, fingerprint);
* ``firing`` whose (anomaly, target) already has an open incident: ``duplicate`` (a second rule about
  the same instance joins the open incident rather than racing it);
* past the target's run budget (``receiver.max_runs_per_target_per_hour``): ``throttled`` — the team
  is told instead of another run starting (circuit breaker);
* otherwise a deployment run is started with the alert's idempotency key (the last line of dedup).

While the Prefect API is unreachable, rows back off exponentially (1 s … 60 s) and stay pending:
nothing accepted is lost, runs are only delayed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from llmedic.config import EnvironmentFile
from llmedic.errors import OrchestrationError
from llmedic.incident import IncidentStore, Outcome, utcnow
from llmedic.notify import notify_team_of
from llmedic.orchestration import Dispatched, dispatch_alerts, read_run
from llmedic.receiver.outbox import Outbox, OutboxRow

__all__ = ["Dispatcher"]


@dataclass
class Dispatcher:
    """Moves rows from ``pending`` to ``started`` / ``duplicate`` / ``attached`` / ``throttled``."""

    outbox: Outbox
    store: IncidentStore
    env: EnvironmentFile
    dispatch: Callable[[list], list[Dispatched]] = dispatch_alerts  # type: ignore[type-arg]
    on_event: Callable[[str, OutboxRow, float], None] | None = None
    """Called with (state, row, seconds since received) after each row is handled (metrics)."""
    stop_event: threading.Event = field(default_factory=threading.Event)

    def _open(self, flow_run_id: str) -> bool:
        inc = self.store.find_by_run(flow_run_id)
        if inc is not None:
            return inc.outcome == Outcome.OPEN
        try:
            run = read_run(flow_run_id)
        except OrchestrationError:
            return True  # cannot tell: do not start a second run
        return not (run.state and run.state.is_final())

    def handle(self, row: OutboxRow) -> str:
        """Handle one row; return its new state (or ``pending`` when it must be retried)."""
        alert = row.alert
        if alert.status == "resolved":
            previous = self.outbox.last_run_for(row.dedup_key)
            if previous:
                self.store.attach_resolved(previous, alert.ends_at or utcnow())
            self.outbox.mark(row.id, "attached", flow_run_id=previous)
            return "attached"
        # One open incident per (anomaly, target): a second rule firing about the same slow
        # instance (p99 and TTFT, say) joins the incident instead of racing it with a second run.
        previous = self.outbox.last_run_for_target(row.anomaly or "", row.target)
        if previous and self._open(previous):
            self.outbox.mark(row.id, "duplicate", flow_run_id=previous)
            return "duplicate"
        budget = self.env.receiver.max_runs_per_target_per_hour
        if alert.anomaly and self.outbox.runs_since(alert.target, time.time() - 3600) >= budget:
            notify_team_of(
                self.env,
                alert.anomaly,
                f"[llmedic] [throttled] {alert.anomaly.value} on {alert.target}: {budget} remediation runs "
                f"in the last hour; not starting another — a human should look ({alert.alertname})",
            )
            self.outbox.mark(row.id, "throttled", error=f"budget of {budget} runs/hour reached")
            return "throttled"
        try:
            (result,) = self.dispatch([alert])
        except OrchestrationError as exc:
            self.outbox.retry_later(row.id, exc.message)
            return "pending"
        state = "started" if result.status in ("started", "duplicate") else result.status
        self.outbox.mark(row.id, state, flow_run_id=result.flow_run_id)
        return state

    def drain_once(self, limit: int = 100) -> int:
        """Handle every due row once; returns how many were handled."""
        rows = self.outbox.due(limit)
        for row in rows:
            try:
                state = self.handle(row)
            except Exception as exc:
                self.outbox.retry_later(row.id, f"{type(exc).__name__}: {exc}")
                state = "pending"
            if self.on_event:
                self.on_event(state, row, time.time() - row.received_at)
        return len(rows)

    def run_forever(self, idle: float = 0.2) -> None:
        """Drain until :attr:`stop_event` is set."""
        while not self.stop_event.is_set():
            try:
                handled = self.drain_once()
            except Exception:
                handled = 0
            if not handled:
                self.stop_event.wait(idle)
