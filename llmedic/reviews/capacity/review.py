"""The capacity review, end to end but for the orchestration: check the request, review one
service, write the chart, report and ``review.json`` under ``<home>/reviews/capacity-…/``, open a
review incident per service already below its reserve, and conclude. The flow
(``flows/capacity_review.py``) wires these; the Prefect task and artifacts are in ``tasks/review.py``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from llmedic.adapters.metrics import PrometheusSource
from llmedic.config import EnvironmentFile, load_environment, settings_from_env
from llmedic.errors import ConfigError, LlmedicError
from llmedic.incident import utcnow
from llmedic.reviews.capacity.chart import chart_png
from llmedic.reviews.capacity.history import ServiceReview, review_service
from llmedic.reviews.capacity.report import LABELS, fmt, render, review_json, table_rows
from llmedic.reviews.incidents import ReviewIncidents
from llmedic.reviews.selection import choose

__all__ = [
    "CapacityOutputs",
    "CapacityRequest",
    "ServiceOutcome",
    "check_request",
    "conclude",
    "open_incidents",
    "review_one",
    "write_outputs",
]


class CapacityRequest(BaseModel):
    """Parameters of a capacity-review run (the Prefect UI shows them as a form)."""

    services: list[str] = Field(default_factory=list)
    """Services to review; empty: all."""
    reserve: float | None = Field(None, ge=0.05, le=0.9)
    """Override ``capacity.reserve`` for this run."""
    lookback_days: int | None = Field(None, ge=7, le=400)
    open_incidents: bool = True


@dataclass(frozen=True)
class ServiceOutcome:
    """One service's review, or why it could not be reviewed (one service never stops the review)."""

    service: str
    review: ServiceReview | None = None
    png: bytes | None = None
    error: str | None = None


@dataclass
class CapacityOutputs:
    """What the review wrote, and what its artifacts show."""

    directory: Path
    reviews: list[ServiceReview]
    reserve: float
    report: str
    table: list[dict[str, Any]]
    errors: list[str]
    charts: dict[str, bytes] = field(default_factory=dict)

    @property
    def report_path(self) -> Path:
        """The Markdown report."""
        return self.directory / "report.md"


def check_request(env: EnvironmentFile, req: CapacityRequest) -> tuple[list[str], str | None]:
    """The services to review, or why the review cannot run (then the list is empty)."""
    if env.metrics.kind != "prometheus":
        err = ConfigError(
            "the capacity review reads 30 days of history and needs Prometheus (metrics.kind: prometheus)",
            hint="point metrics at your Prometheus; for the sandbox, `llmedic sandbox-history` backfills one",
        )
        return [], f"{err.code}: {err.message}"
    return choose(req.services, [s.name for s in env.services], kind="service")


def review_one(service: str, reserve: float | None, lookback_days: int | None, now: float) -> ServiceOutcome:
    """Review one service from Prometheus and draw its chart (errors come back as data)."""
    env = load_environment(settings=settings_from_env())
    overrides = {"reserve": reserve, "lookback_days": lookback_days}
    cfg = env.capacity.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    source = PrometheusSource(
        str(env.metrics.url),
        timeout=max(30.0, env.metrics.timeout_seconds),
        instance_label=env.metrics.instance_label,
    )
    try:
        rv = review_service(source, env, service, cfg, now=now)
    except LlmedicError as exc:
        return ServiceOutcome(service, error=f"{exc.code}: {exc.message}")
    return ServiceOutcome(service, review=rv, png=chart_png(rv))


def write_outputs(home: Path, outcomes: list[ServiceOutcome], reserve: float, when: str) -> CapacityOutputs:
    """Write the charts, ``report.md`` and ``review.json`` into a new ``<home>/reviews/capacity-…/``."""
    out_dir = home / "reviews" / f"capacity-{utcnow():%Y%m%d-%H%M%S}"
    out_dir.mkdir(parents=True, exist_ok=True)
    reviews = [o.review for o in outcomes if o.review is not None]
    charts = {o.service: o.png for o in outcomes if o.png is not None}
    for service, png in charts.items():
        (out_dir / f"{service}.png").write_bytes(png)
    errors = [f"{o.service}: {o.error}" for o in outcomes if o.error is not None]
    report = render(reviews, reserve, when, errors)
    (out_dir / "report.md").write_text(report, encoding="utf-8")
    (out_dir / "review.json").write_text(review_json(reviews, reserve, when, errors), encoding="utf-8")
    return CapacityOutputs(out_dir, reviews, reserve, report, table_rows(reviews), errors, charts)


def open_incidents(env: EnvironmentFile, home: Path, outputs: CapacityOutputs) -> dict[str, str]:
    """A review incident per service already below its reserve (one per service and month: a
    second review that month updates it). Service → ``opened|updated <id>``."""
    store = ReviewIncidents(home)
    opened: dict[str, str] = {}
    for rv in outputs.reviews:
        short = rv.below_target
        if not short:
            continue
        rec, new = store.open(
            env,
            kind="capacity",
            subject=rv.service,
            period=f"{utcnow():%Y-%m}",
            title=f"{rv.service} below its {outputs.reserve:.0%} capacity reserve",
            findings=[
                f"{LABELS.get(r.name, r.name)} headroom {r.headroom:.0%} (p99 {fmt(r.p99, r.unit)})"
                for r in short
            ]
            + [f"{x.action}: {x.reason}" for x in rv.recommendations],
            report_path=str(outputs.report_path),
        )
        opened[rv.service] = f"{'opened' if new else 'updated'} {rec.id}"
    return opened


def conclude(outputs: CapacityOutputs, opened: dict[str, str]) -> tuple[bool, str, dict[str, Any]]:
    """Whether every service was reviewed, the run's message and its result data."""
    reviews = outputs.reviews
    short_services = [rv.service for rv in reviews if rv.below_target]
    data = {
        "report": str(outputs.report_path),
        "directory": str(outputs.directory),
        "below_target": short_services,
        "incidents": opened,
        "errors": outputs.errors,
        "recommendations": {rv.service: [r.action for r in rv.recommendations] for rv in reviews},
    }
    message = f"{len(reviews)} service(s) reviewed; below the reserve: {short_services or 'none'}"
    if outputs.errors:
        return False, f"{message}; not reviewed: {outputs.errors}", data
    return True, message, data
