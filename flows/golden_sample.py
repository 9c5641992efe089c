"""Daily golden sample: score a stratified sample of each service's golden set against its live
instances and compare it with the reference baseline (McNemar on the same items); when the drop is
significant and material, open an ``accuracy_drop`` incident. A service with no baseline yet gets
this score as its first one (recorded as such). Runs on ``schedules.golden_sample`` (daily by
default), from the Prefect UI, or ``llmedic audit golden``."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.client.schemas.objects import State
from prefect.states import Completed, Failed

from llmedic.config import load_environment, settings_from_env
from llmedic.incident import utcnow
from llmedic.reviews.golden_sample import (
    GoldenSampleRequest,
    SampleRecord,
    check_request,
    conclude,
    write_report,
)
from tasks.review import open_accuracy_incident, publish_golden_sample, sample_service

__all__ = ["GoldenSampleRequest", "SampleRecord", "golden_sample"]


@flow(name="llmedic-golden-sample", description=__doc__, log_prints=True)
def golden_sample(request: GoldenSampleRequest | None = None) -> State[Any]:
    """Sample every service's golden set and open incidents for real drops."""
    req = request or GoldenSampleRequest()
    settings = settings_from_env()
    env = load_environment(settings=settings)
    names, problem = check_request(env, req)
    if problem is not None:
        return Failed(message=problem)
    day = f"{utcnow():%Y-%m-%d}"
    records = [sample_service(n, req.sample_size, day) for n in names]
    if req.open_incidents:
        records = [
            r.model_copy(update={"incident": open_accuracy_incident(r, day)}) if r.dropped else r
            for r in records
        ]
    path, report = write_report(settings.home, records)
    publish_golden_sample(records, report)
    ok, message, data = conclude(records, path)
    return (Completed if ok else Failed)(message=message, data=data)
