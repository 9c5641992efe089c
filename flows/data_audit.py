"""The monthly data audit: every declared dataset's current version against its schema and its
reference version; a table artifact and a report; one incident flow per breaching anomaly type; and
the audit history, so the trend of data quality is visible.

Scheduled by ``schedules.data_audit`` in ``llmedic.yaml`` (default ``0 3 1 * *``); also run from
the Prefect UI (deployment ``llmedic-data-audit/default``) and with ``llmedic audit data``.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.client.schemas.objects import State
from prefect.context import FlowRunContext
from prefect.states import Completed, Failed

from llmedic.config import load_environment, settings_from_env
from llmedic.reviews.data_audit import AuditRequest, check_request, conclude, record_history, write_report
from tasks.review import audit_dataset, open_data_incidents, publish_data_audit

__all__ = ["AuditRequest", "data_audit"]


@flow(name="llmedic-data-audit", description=__doc__, log_prints=True)
def data_audit(request: AuditRequest | None = None) -> State[Any]:
    """Audit the declared datasets and open incidents for what breaches."""
    req = request or AuditRequest()
    settings = settings_from_env()
    env = load_environment(settings=settings)
    ctx = FlowRunContext.get()
    run = str(ctx.flow_run.id) if ctx and ctx.flow_run else "local"
    names, problem = check_request(env, req)
    if problem is not None:
        return Failed(message=problem)
    records = [audit_dataset(n, run) for n in names]
    if req.open_incidents:
        records = [
            r.model_copy(update={"incidents": open_data_incidents(r)}) if r.breaches and not r.error else r
            for r in records
        ]
    history = record_history(settings.home, records)
    path, report = write_report(settings.home, records, history)
    publish_data_audit(records, report)
    ok, message, data = conclude(records, path)
    return (Completed if ok else Failed)(message=message, data=data)
