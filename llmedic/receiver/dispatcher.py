"""Drains the outbox into Prefect deployment runs.

For each pending notification, in order of arrival:

* ``resolved``: attached to the incident of the same (anomaly, target, fingerprint);
* ``firing`` whose (anomaly, target) has a *live* run — one that is not in a terminal state and whose
  incident is still open: ``duplicate`` (a second rule about the same instance joins the live
  incident rather than racing it). A run that ended, or is gone from the Prefect server, never
  suppresses, whatever its incident record still says;
* ``firing`` about an instance of a service whose incident is open and live (fleet-wide by
  assess, or a grouped run): ``joined`` — recorded on that incident, no run of its own;
* ``firing`` about an instance, with ``receiver.group_window_seconds`` > 0: held for the window
  (still ``pending``); then, with alerts of the same type about other instances of the same service
  pending, ONE run for the service starts and those rows are ``joined`` to it
  (``llmedic/receiver/grouping.py``);
* past the target's run budget (``receiver.max_runs_per_target_per_hour``): ``throttled`` — the team
  is told instead of another run starting (circuit breaker);
* otherwise a deployment run is started with the alert's idempotency key (the last line of dedup).

While the Prefect API is unreachable (to start a run, or to tell whether the last one is live),
rows back off exponentially (1 s … 60 s) and stay pending. A row that fails
``receiver.max_dispatch_attempts`` times goes ``dead``: kept with its last error, the ops team is
told, ``llmedic alerts retry KEY`` re-queues it. Every failure is logged (logger
``llmedic.receiver``) with the row it happened on.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from llmedic.alerts import Alert
from llmedic.catalog import Team, anomaly_info
from llmedic.config import EnvironmentFile
from llmedic.errors import FlowRunNotFound, OrchestrationError
from llmedic.incident import Outcome, utcnow
from llmedic.notify import notify_team
from llmedic.orchestration import Dispatched, dispatch_alerts, read_run
from llmedic.receiver.grouping import Group, joinable, service_alert, service_of
from llmedic.receiver.outbox import Outbox, OutboxRow
from llmedic.store.incidents import IncidentStore

__all__ = ["Dispatcher", "Liveness"]

log = logging.getLogger("llmedic.receiver")

_START_GRACE_SECONDS = 600.0
"""A run still scheduled or pending this long after its creation is not trusted to be live."""

Liveness = Literal["live", "ended", "unknown"]
"""Whether a flow run still handles its incident: ``unknown`` when the Prefect API cannot say."""


@dataclass
class Dispatcher:
    """Moves rows from ``pending`` to ``started`` / ``duplicate`` / ``joined`` / ``attached`` /
    ``throttled`` / ``dead``."""

    outbox: Outbox
    store: IncidentStore
    env: EnvironmentFile
    dispatch: Callable[[list], list[Dispatched]] = dispatch_alerts  # type: ignore[type-arg]
    on_event: Callable[[str, OutboxRow, float], None] | None = None
    """Called with (state, row, seconds since received) after each row is handled (metrics)."""
    notify: Callable[[EnvironmentFile, Team, str], str] = notify_team
    """How a team is told (throttled targets, dead rows)."""
    stop_event: threading.Event = field(default_factory=threading.Event)
    _outgoing: queue.Queue[tuple[Team, str, str]] = field(
        default_factory=lambda: queue.Queue(maxsize=1000), init=False, repr=False
    )
    _sender: threading.Thread | None = field(default=None, init=False, repr=False)
    _taken: set[int] = field(default_factory=set, init=False, repr=False)
    """Rows joined to a group run during the current pass (their fetched copy is stale)."""

    def _tell(self, team: Team, text: str, about: str) -> None:
        """Queue a notification for the sender thread. Delivery retries with backoff (up to
        ``notify.max_seconds`` per channel), so it never runs in the dispatch loop: one dead
        webhook must not hold back every other alert's run."""
        if self._sender is None or not self._sender.is_alive():
            self._sender = threading.Thread(target=self._send_forever, name="dispatcher-notify", daemon=True)
            self._sender.start()
        try:
            self._outgoing.put_nowait((team, text, about))
        except queue.Full:
            log.error("%s: notification queue full (1000 waiting); not sent: %s", about, text)

    def _send_forever(self) -> None:
        while True:
            team, text, about = self._outgoing.get()
            try:
                log.warning("%s: %s", about, self.notify(self.env, team, text))
            except Exception:  # notify never raises by contract; a bug in it must not kill the sender
                log.exception("%s: notifying %s failed", about, team.value)
            finally:
                self._outgoing.task_done()

    def wait_for_notifications(self, timeout: float = 30.0) -> bool:
        """Wait until every queued notification was handed to :attr:`notify` (tests, shutdown);
        False if some were still waiting after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self._outgoing.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._outgoing.unfinished_tasks

    def liveness(self, flow_run_id: str) -> Liveness:
        """Does this run still handle an open incident? Asks the Prefect API: an incident record
        says OPEN until something closes it, which a killed or cancelled run never does."""
        inc = self.store.find_by_run(flow_run_id)
        if inc is not None and inc.outcome != Outcome.OPEN:
            return "ended"
        try:
            run = read_run(flow_run_id)
        except FlowRunNotFound:
            return "ended"
        except OrchestrationError:
            return "unknown"
        # No state yet means just created: live. PAUSED / SUSPENDED (an approval gate) are live.
        if run.state is not None and run.state.is_final():
            return "ended"
        waiting = run.state is not None and (run.state.is_scheduled() or run.state.is_pending())
        if (
            waiting
            and run.created is not None
            and time.time() - run.created.timestamp() > _START_GRACE_SECONDS
        ):
            # A run that never started (no runner or worker picks it up) must not swallow later
            # alerts as duplicates for ever: they stay pending, retried, and end dead with a notice.
            return "unknown"
        return "live"

    def handle(self, row: OutboxRow) -> str:
        """Handle one row; return its new state (``pending`` when it must be retried)."""
        alert = row.alert
        if alert is None:  # an invalid row is never pending; refuse rather than guess
            raise ValueError(f"outbox row {row.id} has no alert to dispatch (state {row.state})")
        if alert.status == "resolved":
            previous = self.outbox.last_run_for(row.dedup_key)
            if previous:
                self.store.attach_resolved(previous, alert.ends_at or utcnow())
            self.outbox.mark(row.id, "attached", flow_run_id=previous)
            return "attached"
        # One live incident per (anomaly, target): a second rule firing about the same slow
        # instance (p99 and TTFT, say) joins the incident instead of racing it with a second run.
        previous = self.outbox.last_run_for_target(row.anomaly or "", row.target)
        if previous:
            live = self.liveness(previous)
            if live == "live":
                self.outbox.mark(row.id, "duplicate", flow_run_id=previous)
                return "duplicate"
            if live == "unknown":  # cannot tell: never risk a second run; ask again later
                return self._failed(
                    row,
                    f"cannot tell whether run {previous} of this target is live (API down, or never started)",
                )
        grouped = self._by_service(row, alert)
        if grouped is not None:
            return grouped
        budget = self.env.receiver.max_runs_per_target_per_hour
        if alert.anomaly and self.outbox.runs_since(alert.target, time.time() - 3600) >= budget:
            self._tell(
                anomaly_info(alert.anomaly).team,
                f"[llmedic] [throttled] {alert.anomaly.value} on {alert.target}: {budget} remediation runs "
                f"in the last hour; not starting another — a human should look ({alert.alertname})",
                f"outbox row {row.id} ({row.key}): throttled",
            )
            self.outbox.mark(row.id, "throttled", error=f"budget of {budget} runs/hour reached")
            return "throttled"
        try:
            (result,) = self.dispatch([alert])
        except OrchestrationError as exc:
            return self._failed(row, exc.message)
        state = "started" if result.status in ("started", "duplicate") else result.status
        self.outbox.mark(row.id, state, flow_run_id=result.flow_run_id)
        return state

    def _by_service(self, row: OutboxRow, alert: Alert) -> str | None:
        """Join the service's open incident, hold the row for the grouping window, or start one run
        for the service with its peers; ``None``: dispatch the row on its own."""
        service = service_of(self.env, alert)
        if service is None or alert.anomaly is None:
            return None
        for inc in self.store.open_for(alert.anomaly.value, service):
            if not joinable(inc):
                continue
            live = self.liveness(inc.flow_run_id)
            if live == "live":
                self.store.join(
                    inc.flow_run_id, Group.joined(row, f"joined {inc.id}, the incident of {service}")
                )
                self.outbox.mark(row.id, "joined", flow_run_id=inc.flow_run_id)
                return "joined"
            if live == "unknown":
                return self._failed(
                    row,
                    f"cannot tell whether run {inc.flow_run_id} of {service} is live (API down, or never started)",
                )
        window = self.env.receiver.group_window_seconds
        if window <= 0:
            return None
        until = row.received_at + window
        if time.time() < until:
            self.outbox.hold(row.id, until)
            return "pending"
        peers = [
            p
            for p in self.outbox.pending_firing(alert.anomaly.value, until)
            if p.id != row.id
            and p.target != row.target
            and p.alert is not None
            and service_of(self.env, p.alert) == service
            and not self._own_run_live(p)
        ]
        if not peers:
            return None
        return self._start_group(Group(row, service, peers), alert, window)

    def _own_run_live(self, row: OutboxRow) -> bool:
        """Has this row's own instance a live run? (then the row is its duplicate, in its own turn)"""
        previous = self.outbox.last_run_for_target(row.anomaly or "", row.target)
        return previous is not None and self.liveness(previous) != "ended"

    def _start_group(self, group: Group, alert: Alert, window: float) -> str:
        """One run for the service; the peers join its incident."""
        try:
            (result,) = self.dispatch([service_alert(alert, group.service, group.instances)])
        except OrchestrationError as exc:
            return self._failed(group.first, exc.message)
        run = result.flow_run_id
        if run is None or result.status not in ("started", "duplicate"):
            self.outbox.mark(group.first.id, result.status, flow_run_id=run)
            return result.status
        self.outbox.mark(group.first.id, "started", flow_run_id=run)
        for peer in group.peers:
            if self.outbox.join_pending(peer.id, run):
                self._taken.add(peer.id)
                why = f"grouped with {group.first.target} within {window:g} s (one run for {group.service})"
                self.store.join(run, Group.joined(peer, why))
                if self.on_event:
                    self.on_event("joined", peer, time.time() - peer.received_at)
        log.warning(
            "%d alerts about %s: one run %s for the service (%s)",
            len(group.instances),
            group.service,
            run,
            ", ".join(group.instances),
        )
        return "started"

    def _failed(self, row: OutboxRow, error: str) -> str:
        """Count a failed attempt: back off, or at the limit mark the row dead and tell ops."""
        limit = self.env.receiver.max_dispatch_attempts
        delay = self.outbox.retry_later(row.id, error, max_attempts=limit)
        if delay is not None:
            log.warning(
                "outbox row %d (%s): attempt %d failed: %s; retrying in %.0f s",
                row.id,
                row.key,
                row.attempts + 1,
                error,
                delay,
            )
            return "pending"
        log.error("outbox row %d (%s): dead after %d attempts: %s", row.id, row.key, limit, error)
        self._tell(
            Team.OPS,
            f"[llmedic] [dead alert] {row.anomaly or 'unrouted'} on {row.target}: no run could be started "
            f"after {limit} attempts (last error: {error}); the alert is kept — "
            f"`llmedic alerts retry {row.key}` re-queues it",
            f"outbox row {row.id} ({row.key})",
        )
        return "dead"

    def drain_once(self, limit: int = 100) -> int:
        """Handle every due row once; returns how many were handled."""
        rows = self.outbox.due(limit)
        self._taken.clear()
        for row in rows:
            if row.id in self._taken:  # joined to a group run earlier in this pass
                continue
            try:
                state = self.handle(row)
            except Exception as exc:
                # A bug or an unexpected library error on one row must not stop the others; it
                # counts as a failed attempt, so a row that always fails ends dead, not retried for ever.
                log.exception("outbox row %d (%s): dispatch raised", row.id, row.key)
                state = self._failed(row, f"{type(exc).__name__}: {exc}")
            if self.on_event:
                self.on_event(state, row, time.time() - row.received_at)
        return len(rows)

    def run_forever(self, idle: float = 0.2) -> None:
        """Drain until :attr:`stop_event` is set; an outbox that cannot be read is logged and
        tried again after ``idle`` seconds."""
        while not self.stop_event.is_set():
            try:
                handled = self.drain_once()
            except Exception:
                log.exception("draining the outbox %s failed", self.outbox.where)
                handled = 0
            if not handled:
                self.stop_event.wait(idle)
