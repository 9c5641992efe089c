"""Step 0 — detect: validate the run's request, find its target and open the incident record (or,
when it cannot be opened, record a minimal incident closed escalated, so the alert is not lost)."""

from __future__ import annotations

import logging
from pathlib import Path

from prefect.context import FlowRunContext
from prefect.logging import get_run_logger
from pydantic import BaseModel

from llmedic.alerts import Alert
from llmedic.catalog import AnomalyType, Category, anomaly_info
from llmedic.config import EnvironmentFile, Settings, load_environment, settings_from_env
from llmedic.errors import ConfigError, LlmedicError, StepFailed
from llmedic.incident import Incident, IncidentRequest, Step, StepRecord, utcnow
from llmedic.playbook import load_playbook
from llmedic.receiver.grouping import GROUPED_LABEL, stand_in
from llmedic.reconcile import close_escalated
from llmedic.store.incidents import IncidentStore
from tasks.runtime import StepContext, step_task

__all__ = ["Opened", "log_unexpected", "open_incident", "record_unopened"]


class Opened(BaseModel):
    """Result of :func:`open_incident`."""

    incident: Incident
    ctx: StepContext


class _Located(BaseModel):
    """Where the incident's target is in the environment file."""

    target: str
    service: str | None = None
    instance: str | None = None
    version: str | None = None
    """Data incidents: the dataset version pinned when the incident opens."""


def log_unexpected(reason: str, exc: BaseException | None) -> None:
    """Put an error the response process absorbed, with its traceback, in the flow run's log."""
    logger = get_run_logger() if FlowRunContext.get() else logging.getLogger("llmedic.respond")
    logger.error("%s", reason, exc_info=exc)


def _locate(
    anomaly: AnomalyType, target: str, alert: Alert, env: EnvironmentFile, settings: Settings
) -> _Located:
    """The service and instance (or the dataset version) the incident is about."""
    info = anomaly_info(anomaly)
    if info.category == Category.DATA:
        # A data incident is about one version of a declared dataset, pinned now: isolation moves
        # the current pointer, and every later step must still look at the version that was bad.
        cfg = env.dataset(target)
        from llmedic.adapters.datastore import DataStore

        store = DataStore(settings.datasets_dir)
        store.ensure_seeded(target, cfg)
        return _Located(
            target=target, version=store.version(target, alert.labels.get("version") or "current").id
        )
    link = anomaly == AnomalyType.NETWORK_INTERRUPTION and target in env.network.links
    found = env.find_instance(target)
    if (
        found is None
        and not link
        and (info.category == Category.MODEL or GROUPED_LABEL in alert.labels)
        and target in {s.name for s in env.services}
    ):
        # A model-quality alert, or the receiver's alert for several instances at once, names the
        # service; one instance (the first alerting) stands in for steps that need one.
        svc = env.service(target)
        found = (svc, stand_in(svc, alert))
    if found is None:
        if link:  # a network incident is about a link (an endpoint the services depend on)
            return _Located(target=target)
        raise ConfigError(
            f"target {target!r} is not an instance of any service in the environment file",
            hint="add it under services[].instances in llmedic.yaml, or fix the alert's instance/target label",
        )
    service, instance = found[0].name, found[1].name
    return _Located(target=target if target == service else instance, service=service, instance=instance)


@step_task(Step.DETECT, name="open-incident")
def open_incident(
    anomaly: AnomalyType,
    request: IncidentRequest,
    flow_run_id: str,
    home: str,
    config_path: str | None,
    playbooks_dir: str | None,
) -> Opened:
    """Validate the request, find the target in ``llmedic.yaml`` and open the incident record."""
    settings = settings_from_env().model_copy(
        update={
            "home": Path(home),
            "config": Path(config_path) if config_path else None,
            "playbooks_dir": Path(playbooks_dir) if playbooks_dir else None,
        }
    )
    load_playbook(anomaly, settings, request.overrides)  # fail early on a bad playbook/override
    env = load_environment(settings=settings)
    alert = request.alert
    target = (alert.target if alert else "") or request.target
    if not target:
        raise ConfigError("the run has neither an alert nor a target", hint="set `target` for a manual run")
    if alert is None:
        alert = Alert(source="manual", anomaly=anomaly, target=target, alertname="manual", starts_at=utcnow())
    where = _locate(anomaly, target, alert, env, settings)
    info = anomaly_info(anomaly)
    now = utcnow()
    incident_id = f"{anomaly.value.replace('_', '-')}-{now:%Y%m%d-%H%M%S}-{flow_run_id.replace('-', '')[:6]}"
    incident = Incident(
        id=incident_id,
        anomaly=anomaly,
        category=info.category,
        team=info.team,
        title=f"{info.title}: {alert.summary}",
        target=where.target,
        service=where.service,
        alert=alert,
        flow_run_id=flow_run_id,
        dry_run=request.dry_run,
        opened_at=now,
    )
    detected = alert.starts_at or now
    incident.timeline.append(
        StepRecord(
            step=Step.DETECT,
            started_at=min(detected, now),
            finished_at=now,
            summary=f"{alert.source} alert {alert.alertname} ({alert.severity}) on {target}"
            + (f" version {where.version}" if where.version else ""),
        )
    )
    ctx = StepContext(
        incident_id=incident_id,
        anomaly=anomaly,
        target=where.target,
        service=where.service,
        instance=where.instance,
        version=where.version,
        dry_run=request.dry_run,
        alert_started_at=alert.starts_at,
        flow_run_id=flow_run_id,
        home=home,
        config_path=config_path,
        playbooks_dir=playbooks_dir,
        overrides=request.overrides,
    )
    return Opened(incident=incident, ctx=ctx)


def record_unopened(
    anomaly: AnomalyType, request: IncidentRequest, flow_run_id: str, settings: Settings, exc: Exception
) -> Incident:
    """The incident could not even be opened (a target the environment file does not know for this
    anomaly type, a bad override, a dataset version that does not exist): record a minimal incident
    and close it escalated, so the alert is not lost in a Failed run nobody reads."""
    code = exc.code if isinstance(exc, LlmedicError) else StepFailed.code
    message = exc.message if isinstance(exc, LlmedicError) else f"{type(exc).__name__}: {exc}"
    log_unexpected(f"opening the incident failed: {code}: {message}", exc)
    info = anomaly_info(anomaly)
    alert = request.alert
    target = (alert.target if alert else "") or request.target or "unknown"
    now = utcnow()
    if alert is None:
        alert = Alert(source="manual", anomaly=anomaly, target=target, alertname="manual", starts_at=now)
    suffix = flow_run_id.replace("-", "")[:6]
    incident = Incident(
        id=f"{anomaly.value.replace('_', '-')}-{now:%Y%m%d-%H%M%S}-{suffix}",
        anomaly=anomaly,
        category=info.category,
        team=info.team,
        title=f"{info.title}: {alert.summary}",
        target=target,
        alert=alert,
        flow_run_id=flow_run_id,
        dry_run=request.dry_run,
        opened_at=now,
    )
    store = IncidentStore.from_settings(settings)
    store.save(incident)
    closed = close_escalated(
        incident.id,
        code=code,
        reason=f"the incident could not be opened: {message}",
        closed_by="the response process",
        settings=settings,
    )
    return closed or store.load(incident.id)
