"""Monthly capacity review: for each service, 30 days of GPU utilisation and memory, KV-cache use,
requests per second and p99 latency from Prometheus (DCGM names for the GPUs); peaks and
percentiles; headroom against the reserve (the guide's 20–30 %, ``capacity.reserve``); a robust
growth trend and the dates the reserve and the capacity run out; recommendations with their
numbers. A chart, a table artifact and a Markdown report, archived under ``<home>/reviews/``; a
review incident for the ops team when a service is already below the reserve. Runs on
``schedules.capacity_review``, from the Prefect UI, or ``llmedic review capacity``."""

from __future__ import annotations

import base64
import io
import json
import math
import time
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_image_artifact, create_markdown_artifact, create_table_artifact
from prefect.client.schemas.objects import State
from prefect.states import Completed, Failed
from pydantic import BaseModel, Field

from llmedic.adapters.metrics import PrometheusSource
from llmedic.capacity import ServiceReview, review_service
from llmedic.config import load_environment, settings_from_env
from llmedic.errors import ConfigError, LlmedicError
from llmedic.incident import utcnow
from llmedic.reviews.incidents import ReviewIncidents

__all__ = ["CapacityRequest", "capacity_review", "chart_png", "render"]

LABELS = {
    "gpu_utilisation": "GPU utilisation",
    "gpu_memory": "GPU memory",
    "kv_cache": "KV cache",
    "qps": "requests/s",
    "latency_p99": "p99 latency",
}


class CapacityRequest(BaseModel):
    """Parameters of a capacity-review run (the Prefect UI shows them as a form)."""

    services: list[str] = Field(default_factory=list)
    """Services to review; empty: all."""
    reserve: float | None = Field(None, ge=0.05, le=0.9)
    """Override ``capacity.reserve`` for this run."""
    lookback_days: int | None = Field(None, ge=7, le=400)
    open_incidents: bool = True


def chart_png(review: ServiceReview) -> bytes:
    """One panel per resource with data: the series, its capacity and the reserve line."""
    import matplotlib

    matplotlib.use("Agg")
    from datetime import UTC, datetime

    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    names = [n for n, (t, _) in review.series.items() if t]
    fig, axes = plt.subplots(
        len(names) or 1, 1, figsize=(9, 2.2 * max(1, len(names))), sharex=True, squeeze=False
    )
    for ax, name in zip(axes[:, 0], names, strict=False):
        t, y = review.series[name]
        r = review.resources[name]
        ax.plot([datetime.fromtimestamp(x, UTC) for x in t], y, linewidth=0.8, label=LABELS.get(name, name))
        if r.note != "no capacity declared":
            ax.axhline(r.capacity, color="black", linewidth=0.8, linestyle="-", label="capacity")
            ax.axhline(
                (1 - r.reserve) * r.capacity, color="red", linewidth=0.8, linestyle="--", label="reserve line"
            )
        ax.set_ylabel(f"{LABELS.get(name, name)}\n({r.unit})", fontsize=8)
        ax.legend(loc="upper left", fontsize=7)
        ax.grid(alpha=0.3)
    axes[-1, 0].xaxis.set_major_formatter(mdates.DateFormatter("%m-%d"))  # type: ignore[no-untyped-call]
    fig.suptitle(f"{review.service}: last {round((review.end - review.start) / 86_400)} days")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def _fmt(value: float, unit: str) -> str:
    if math.isnan(value):
        return "—"
    return f"{value:.0%}" if unit == "share" else f"{value:.3g} {unit}"


def render(reviews: list[ServiceReview], reserve: float, when: str) -> str:
    """The Markdown report."""
    lines = [f"# Capacity review {when}", "", f"Reserve target: {reserve:.0%} headroom.", ""]
    for rv in reviews:
        lines += [
            f"## {rv.service}",
            "",
            f"{rv.replicas} replica(s), {rv.gpus if rv.gpus is not None else 'unknown'} GPU(s); ![chart]({rv.service}.png)",
            "",
            "| resource | p50 | p95 | p99 | peak | capacity | headroom | trend/day | reserve reached | capacity reached |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, r in rv.resources.items():
            d = r.as_dict()
            if r.samples == 0:
                lines.append(f"| {LABELS.get(name, name)} | no data | | | | | | | | |")
                continue
            declared = r.note != "no capacity declared"
            head = f"{r.headroom:.0%}" + (" **below target**" if r.below_target else "") if declared else "—"
            lines.append(
                f"| {LABELS.get(name, name)} | {_fmt(r.p50, r.unit)} | {_fmt(r.p95, r.unit)} | {_fmt(r.p99, r.unit)} | "
                f"{_fmt(r.peak, r.unit)} | {_fmt(r.capacity, r.unit) if declared else 'not declared'} | {head} | "
                f"{r.slope_per_day:+.3g} | {d['reserve_date'] or '—'} | {d['exhaustion_date'] or '—'} |"
            )
        if rv.per_instance_qps:
            lines += [
                "",
                "Per-instance p95 req/s: "
                + ", ".join(f"{k} {v:.2f}" for k, v in sorted(rv.per_instance_qps.items())),
            ]
        lines += ["", "### Recommendations", ""]
        lines += [f"- **{r.action}**: {r.reason}" for r in rv.recommendations] or ["- none: headroom holds"]
        lines.append("")
    return "\n".join(lines) + "\n"


@task(name="review-service")
def review_one(service: str, reserve: float | None, lookback_days: int | None, now: float) -> dict[str, Any]:
    """Review one service (errors come back as data: one service never stops the review)."""
    settings = settings_from_env()
    env = load_environment(settings=settings)
    cfg = env.capacity.model_copy(
        update={
            k: v for k, v in {"reserve": reserve, "lookback_days": lookback_days}.items() if v is not None
        }
    )
    source = PrometheusSource(
        str(env.metrics.url),
        timeout=max(30.0, env.metrics.timeout_seconds),
        instance_label=env.metrics.instance_label,
    )
    try:
        rv = review_service(source, env, service, cfg, now=now)
    except LlmedicError as exc:
        return {"service": service, "error": f"{exc.code}: {exc.message}"}
    png = chart_png(rv)
    return {
        "service": service,
        "review": rv,
        "png": base64.b64encode(png).decode(),
        "reserve": cfg.reserve,
    }


@flow(name="llmedic-capacity-review", description=__doc__, log_prints=True)
def capacity_review(request: CapacityRequest | None = None) -> State[Any]:
    """Review every service's capacity and open review incidents where headroom is short."""
    req = request or CapacityRequest()
    settings = settings_from_env()
    env = load_environment(settings=settings)
    if env.metrics.kind != "prometheus":
        err = ConfigError(
            "the capacity review reads 30 days of history and needs Prometheus (metrics.kind: prometheus)",
            hint="point metrics at your Prometheus; for the sandbox, `llmedic sandbox history` backfills one",
        )
        return Failed(message=f"{err.code}: {err.message}")
    names = req.services or [s.name for s in env.services]
    unknown = [n for n in names if n not in {s.name for s in env.services}]
    if unknown:
        return Failed(message=f"unknown service(s) {unknown}; declared: {[s.name for s in env.services]}")
    now = time.time()
    when = f"{utcnow():%Y-%m-%d %H:%M} UTC"
    results = [review_one(n, req.reserve, req.lookback_days, now) for n in names]
    out_dir = settings.home / "reviews" / f"capacity-{utcnow():%Y%m%d-%H%M%S}"
    out_dir.mkdir(parents=True, exist_ok=True)
    reviews: list[ServiceReview] = [r["review"] for r in results if "review" in r]
    reserve = req.reserve if req.reserve is not None else env.capacity.reserve
    for r in results:
        if "png" in r:
            (out_dir / f"{r['service']}.png").write_bytes(base64.b64decode(r["png"]))
            create_image_artifact(
                image_url=f"data:image/png;base64,{r['png']}",
                key=f"capacity-{r['service']}".lower(),
                description=f"Capacity of {r['service']} over the look-back window",
            )
    report = render(reviews, reserve, when)
    errors = [f"{r['service']}: {r['error']}" for r in results if "error" in r]
    if errors:
        report += "\n## Not reviewed\n\n" + "\n".join(f"- {e}" for e in errors) + "\n"
    (out_dir / "report.md").write_text(report, encoding="utf-8")
    table = [
        {"service": rv.service, **{k: v for k, v in r.as_dict().items() if k != "note"}, "note": r.note}
        for rv in reviews
        for r in rv.resources.values()
    ]
    (out_dir / "review.json").write_text(
        json.dumps(
            {
                "at": when,
                "reserve": reserve,
                "resources": table,
                "recommendations": {rv.service: [r.__dict__ for r in rv.recommendations] for rv in reviews},
                "errors": errors,
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    create_table_artifact(
        table=table, key="capacity-review", description="Capacity review: one row per service and resource"
    )
    create_markdown_artifact(markdown=report, key="capacity-review-report", description="Capacity review")
    opened: dict[str, str] = {}
    if req.open_incidents:
        store = ReviewIncidents(settings.home / "reviews" / "incidents")
        for rv in reviews:
            short = rv.below_target
            if not short:
                continue
            rec, new = store.open(
                env,
                kind="capacity",
                subject=rv.service,
                period=f"{utcnow():%Y-%m}",
                title=f"{rv.service} below its {reserve:.0%} capacity reserve",
                findings=[
                    f"{LABELS.get(r.name, r.name)} headroom {r.headroom:.0%} (p99 {_fmt(r.p99, r.unit)})"
                    for r in short
                ]
                + [f"{x.action}: {x.reason}" for x in rv.recommendations],
                report_path=str(out_dir / "report.md"),
            )
            opened[rv.service] = f"{'opened' if new else 'updated'} {rec.id}"
    short_services = [rv.service for rv in reviews if rv.below_target]
    data = {
        "report": str(out_dir / "report.md"),
        "directory": str(out_dir),
        "below_target": short_services,
        "incidents": opened,
        "errors": errors,
        "recommendations": {rv.service: [r.action for r in rv.recommendations] for rv in reviews},
    }
    message = f"{len(reviews)} service(s) reviewed; below the reserve: {short_services or 'none'}"
    if errors:
        return Failed(message=f"{message}; not reviewed: {errors}", data=data)
    return Completed(message=message, data=data)
