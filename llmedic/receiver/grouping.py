"""One incident per cause: alerts about several instances of one service become one incident.

Two ways, both per (anomaly type, service) — an alert of another anomaly type, or about another
service, is never grouped:

* **Joining an open incident.** An incident is the service's when its run's target is the service
  (a grouped run, until assess says otherwise) or when assess found the scope fleet-wide
  (:data:`~llmedic.store.incidents.SERVICE_SCOPES`): re-keyed to the service right after assess
  (:func:`after_assess`). While its run is live, a firing alert about another instance of that
  service *joins* it: recorded on the incident (``Incident.joined_alerts``: time, key, instance,
  alert name), its outbox row ``joined`` — no run, no approval request of its own.
* **The grouping window.** The dispatcher holds the first firing alert about an instance for
  ``receiver.group_window_seconds``. If alerts of the same type about other instances of the same
  service arrived meanwhile, one run starts with the *service* as its target (the first alert's
  instance stands in where a step needs one instance), and the others join its incident.

A grouped run whose assess finds an instance-level cause does not swallow the other instances'
alerts: :func:`after_assess` releases them (back to ``pending``, so each gets its own run), and the
incident records that it did.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from llmedic.alerts import Alert, labels_fingerprint
from llmedic.catalog import Category, anomaly_info
from llmedic.config import EnvironmentFile, InstanceConfig, ServiceConfig, Settings
from llmedic.incident import Decision, Incident, JoinedAlert, utcnow
from llmedic.receiver.outbox import Outbox, OutboxRow
from llmedic.store.incidents import SERVICE_SCOPES, IncidentStore

__all__ = [
    "GROUPED_LABEL",
    "STAND_IN_LABEL",
    "Group",
    "after_assess",
    "joinable",
    "service_alert",
    "service_of",
    "stand_in",
]

log = logging.getLogger("llmedic.receiver")
GROUPED_LABEL = "llmedic_grouped"
"""Label of a service-scope alert the receiver made from several instances' alerts: their names."""
STAND_IN_LABEL = "llmedic_stand_in"
"""Label naming the instance that stands in, in a service-scope run, for steps that need one."""


def service_alert(first: Alert, service: str, instances: Sequence[str]) -> Alert:
    """The alert of one service-scope run for alerts about several instances of ``service``
    (``first`` is the earliest; its instance stands in where a step needs one instance)."""
    labels = {
        **first.labels,
        "target": service,
        GROUPED_LABEL: ",".join(instances),
        STAND_IN_LABEL: first.target,
    }
    return first.model_copy(
        update={
            "target": service,
            "labels": labels,
            "fingerprint": labels_fingerprint(labels),
            "annotations": {
                **first.annotations,
                "summary": f"{first.alertname} on {len(instances)} instances of {service}: "
                + ", ".join(instances),
            },
        }
    )


def stand_in(service: ServiceConfig, alert: Alert) -> InstanceConfig:
    """The instance a service-scope run uses where a step needs one: the one its alert names
    (:data:`STAND_IN_LABEL`, an instance of ``service``), else the service's first instance."""
    named = alert.labels.get(STAND_IN_LABEL, "")
    for inst in [*service.instances, *service.standby]:
        netloc = inst.base_url.split("://", 1)[-1]
        if named in (inst.name, netloc, inst.base_url):
            return inst
    return service.instances[0]


def service_of(env: EnvironmentFile, alert: Alert) -> str | None:
    """The service an alert's *instance* belongs to; ``None`` for data alerts, alerts that name a
    service, a dataset or a link, and targets ``llmedic.yaml`` does not declare."""
    if alert.anomaly is None or anomaly_info(alert.anomaly).category == Category.DATA:
        return None
    found = env.find_instance(alert.target)
    return found[0].name if found else None


def joinable(incident: Incident) -> bool:
    """May alerts about other instances join this open incident? Only a service's incident: found
    fleet-wide by assess, or a grouped run not yet assessed."""
    if incident.scope:
        return incident.scope in SERVICE_SCOPES
    return GROUPED_LABEL in incident.alert.labels


@dataclass(frozen=True)
class Group:
    """The pending alerts a held row is dispatched with: one per other instance of its service."""

    first: OutboxRow
    service: str
    peers: list[OutboxRow]

    @property
    def instances(self) -> list[str]:
        """The instances alerting, the first one's first."""
        seen = [self.first.target]
        for p in self.peers:
            if p.target not in seen:
                seen.append(p.target)
        return seen

    @staticmethod
    def joined(row: OutboxRow, why: str) -> JoinedAlert:
        """How a row that joins an incident is recorded on it."""
        alert = row.alert
        return JoinedAlert(
            at=utcnow(),
            key=row.key,
            target=row.target,
            alertname=alert.alertname if alert else "",
            why=why,
        )


def _decided(incident: Incident, choice: str) -> bool:
    return any(d.topic == "incident-key" and d.choice == choice for d in incident.decisions)


def after_assess(incident: Incident, store: IncidentStore, settings: Settings) -> None:
    """Right after assess: re-key a fleet-wide incident to its service (later alerts about its
    other instances join it), or, for a grouped run whose scope is one instance, release the other
    instances' alerts to runs of their own. Idempotent (a resumed run passes here again); saves the
    incident."""
    service = incident.service
    if not service:
        return
    if incident.scope in SERVICE_SCOPES:
        if not _decided(incident, "service"):
            incident.decisions.append(
                Decision(
                    topic="incident-key",
                    choice="service",
                    reason=f"scope {incident.scope}: one cause for {service}; alerts about its other "
                    "instances join this incident while it is open (no run of their own)",
                )
            )
        store.save(incident)
        return
    if GROUPED_LABEL not in incident.alert.labels or not incident.flow_run_id:
        return
    outbox = (
        Outbox(url=settings.outbox_url.get_secret_value())
        if settings.outbox_url is not None
        else Outbox(store=store.store)
    )
    keep = incident.alert.labels.get(STAND_IN_LABEL, "")
    others = [r for r in outbox.joined_to(incident.flow_run_id) if r.target != keep]
    if others:
        why = f"released by {incident.id}: scope {incident.scope or 'instance'}, not one cause"
        outbox.release([r.id for r in others], why)
        store.unjoin(incident.flow_run_id, {r.key for r in others})
        incident.decisions.append(
            Decision(
                topic="incident-key",
                choice="instance",
                reason=f"scope {incident.scope or 'instance'} on {keep or incident.target}: the alerts "
                f"about {', '.join(sorted({r.target for r in others}))} get runs of their own",
            )
        )
        log.warning("%s: %d grouped alerts released to runs of their own", incident.id, len(others))
    store.save(incident)
