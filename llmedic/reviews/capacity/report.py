"""What the capacity review writes: the Markdown report, the table (one row per service and
resource) and ``review.json``."""

from __future__ import annotations

import json
import math
from typing import Any

from llmedic.reviews.capacity.history import ServiceReview

__all__ = ["LABELS", "fmt", "render", "review_json", "table_rows"]

LABELS = {
    "gpu_utilisation": "GPU utilisation",
    "gpu_memory": "GPU memory",
    "kv_cache": "KV cache",
    "qps": "requests/s",
    "latency_p99": "p99 latency",
}
"""Resource key → how the report, the chart and the incidents name it."""


def fmt(value: float, unit: str) -> str:
    """A figure in its unit (shares as percentages; ``—`` for no data)."""
    if math.isnan(value):
        return "—"
    return f"{value:.0%}" if unit == "share" else f"{value:.3g} {unit}"


def _service_section(rv: ServiceReview) -> list[str]:
    lines = [
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
            f"| {LABELS.get(name, name)} | {fmt(r.p50, r.unit)} | {fmt(r.p95, r.unit)} | {fmt(r.p99, r.unit)} | "
            f"{fmt(r.peak, r.unit)} | {fmt(r.capacity, r.unit) if declared else 'not declared'} | {head} | "
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
    return lines


def render(reviews: list[ServiceReview], reserve: float, when: str, errors: list[str] | None = None) -> str:
    """The Markdown report (with a "Not reviewed" section for the services that failed)."""
    lines = [f"# Capacity review {when}", "", f"Reserve target: {reserve:.0%} headroom.", ""]
    for rv in reviews:
        lines += _service_section(rv)
    report = "\n".join(lines) + "\n"
    if errors:
        report += "\n## Not reviewed\n\n" + "\n".join(f"- {e}" for e in errors) + "\n"
    return report


def table_rows(reviews: list[ServiceReview]) -> list[dict[str, Any]]:
    """One row per service and resource (the table artifact and ``review.json``'s resources)."""
    return [
        {"service": rv.service, **{k: v for k, v in r.as_dict().items() if k != "note"}, "note": r.note}
        for rv in reviews
        for r in rv.resources.values()
    ]


def review_json(reviews: list[ServiceReview], reserve: float, when: str, errors: list[str]) -> str:
    """``review.json``: the figures and the recommendations, machine-readable."""
    return json.dumps(
        {
            "at": when,
            "reserve": reserve,
            "resources": table_rows(reviews),
            "recommendations": {rv.service: [r.__dict__ for r in rv.recommendations] for rv in reviews},
            "errors": errors,
        },
        indent=2,
    )
