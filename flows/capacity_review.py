"""Monthly capacity review: for each service, 30 days of GPU utilisation and memory, KV-cache use,
requests per second and p99 latency from Prometheus (DCGM names for the GPUs); peaks and
percentiles; headroom against the reserve (the guide's 20–30 %, ``capacity.reserve``); a robust
growth trend and the dates the reserve and the capacity run out; recommendations with their
numbers. A chart, a table artifact and a Markdown report, archived under ``<home>/reviews/``; a
review incident for the ops team when a service is already below the reserve. Runs on
``schedules.capacity_review``, from the Prefect UI, or ``llmedic review capacity``."""

from __future__ import annotations

import time
from typing import Any

from prefect import flow
from prefect.client.schemas.objects import State
from prefect.states import Completed, Failed

from llmedic.config import load_environment, settings_from_env
from llmedic.incident import utcnow
from llmedic.reviews.capacity.review import (
    CapacityRequest,
    check_request,
    conclude,
    open_incidents,
    write_outputs,
)
from tasks.review import publish_capacity, review_service

__all__ = ["CapacityRequest", "capacity_review"]


@flow(name="llmedic-capacity-review", description=__doc__, log_prints=True)
def capacity_review(request: CapacityRequest | None = None) -> State[Any]:
    """Review every service's capacity and open review incidents where headroom is short."""
    req = request or CapacityRequest()
    settings = settings_from_env()
    env = load_environment(settings=settings)
    names, problem = check_request(env, req)
    if problem is not None:
        return Failed(message=problem)
    now = time.time()
    when = f"{utcnow():%Y-%m-%d %H:%M} UTC"
    outcomes = [review_service(n, req.reserve, req.lookback_days, now) for n in names]
    reserve = req.reserve if req.reserve is not None else env.capacity.reserve
    outputs = write_outputs(settings.home, outcomes, reserve, when)
    publish_capacity(outputs)
    opened = open_incidents(env, settings.home, outputs) if req.open_incidents else {}
    ok, message, data = conclude(outputs, opened)
    return (Completed if ok else Failed)(message=message, data=data)
