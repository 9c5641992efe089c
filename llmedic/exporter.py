"""Prometheus metrics about incidents, read from the incident store at scrape time.

The receiver serves them on its ``/metrics`` next to its own counters, so one scrape job feeds the
llmedic dashboard: incidents by anomaly type and outcome, runs waiting at an approval gate and for
how long, escalations, and time to recover. The store is the source of truth (flows write it), so
the figures survive restarts of the receiver and need no state of their own.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.registry import Collector

from llmedic.incident import Incident, Outcome, utcnow
from llmedic.store.incidents import IncidentStore

__all__ = ["IncidentCollector"]


class IncidentCollector(Collector):
    """Incident figures for a Prometheus registry.

    The store is read at most once per ``cache_seconds`` however often Prometheus scrapes.
    """

    def __init__(self, store: IncidentStore, cache_seconds: float = 10.0) -> None:
        self.store = store
        self.cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._read_at = float("-inf")
        self._incidents: list[Incident] = []

    def _current(self) -> list[Incident]:
        with self._lock:
            if time.monotonic() - self._read_at >= self.cache_seconds:
                self._incidents = self.store.all()
                self._read_at = time.monotonic()
            return self._incidents

    def collect(self) -> Iterator[GaugeMetricFamily | SummaryMetricFamily]:
        incidents = self._current()
        now = utcnow()
        by_outcome = GaugeMetricFamily(
            "llmedic_incidents",
            "Incidents in the store by anomaly type and outcome (open: still being handled).",
            labels=["anomaly", "outcome"],
        )
        for (anomaly, outcome), n in sorted(
            Counter((i.anomaly.value, i.outcome.value) for i in incidents).items()
        ):
            by_outcome.add_metric([anomaly, outcome], n)
        yield by_outcome

        waiting = [i for i in incidents if i.pending_approval and i.outcome == Outcome.OPEN]
        pending = GaugeMetricFamily(
            "llmedic_approvals_pending",
            "Runs waiting at an approval gate, by anomaly type.",
            labels=["anomaly"],
        )
        for anomaly, n in sorted(Counter(i.anomaly.value for i in waiting).items()):
            pending.add_metric([anomaly], n)
        yield pending

        oldest = GaugeMetricFamily(
            "llmedic_approval_oldest_wait_seconds",
            "How long the longest-waiting approval has waited (0 when none waits).",
        )
        waits = [(now - _requested_at(i)).total_seconds() for i in waiting]
        oldest.add_metric([], max(waits, default=0.0))
        yield oldest

        escalated = GaugeMetricFamily(
            "llmedic_incidents_escalated",
            "Incidents handed to a human (escalated), by anomaly type.",
            labels=["anomaly"],
        )
        for anomaly, n in sorted(Counter(i.anomaly.value for i in incidents if i.escalated).items()):
            escalated.add_metric([anomaly], n)
        yield escalated

        recover = SummaryMetricFamily(
            "llmedic_time_to_recover_seconds",
            "Opened → closed, over resolved incidents, by anomaly type.",
            labels=["anomaly"],
        )
        sums: dict[str, list[float]] = {}
        for i in incidents:
            if i.outcome == Outcome.RESOLVED and i.duration_seconds is not None:
                sums.setdefault(i.anomaly.value, []).append(i.duration_seconds)
        for anomaly, values in sorted(sums.items()):
            recover.add_metric([anomaly], count_value=len(values), sum_value=sum(values))
        yield recover


def _requested_at(incident: Incident) -> datetime:
    """When the gate opened (incidents written before that was recorded: when the incident opened)."""
    raw = (incident.pending_approval or {}).get("requested_at")
    try:
        return datetime.fromisoformat(str(raw)) if raw else incident.opened_at
    except ValueError:
        return incident.opened_at
