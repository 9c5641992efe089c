"""The daily golden sample review: score a stratified sample of each service's golden set against
its live instances and compare it with the reference baseline (McNemar on the same items); when
the drop is significant and material, open an ``accuracy_drop`` incident. A service with no
baseline yet gets this score as its first one. Scoring and golden sets are shared with the
accuracy-drop response (``llmedic.evaluation``, ``llmedic.golden``); ``flows/golden_sample.py``
wires this, with its tasks and artifacts in ``tasks/review.py``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from llmedic.alerts import Alert
from llmedic.anomalies.accuracy.stats import compare_runs
from llmedic.catalog import AnomalyType
from llmedic.config import EnvironmentFile, load_environment, settings_from_env
from llmedic.errors import LlmedicError
from llmedic.evaluation import Evaluation
from llmedic.golden import Scorecard, sample_items
from llmedic.incident import utcnow
from llmedic.orchestration import dispatch_alerts
from llmedic.playbook import AccuracySettings, load_playbook
from llmedic.reviews.selection import choose

__all__ = [
    "GoldenSampleRequest",
    "SampleRecord",
    "check_request",
    "conclude",
    "open_incident",
    "render",
    "sample_service",
    "write_report",
]


class GoldenSampleRequest(BaseModel):
    """Parameters of a golden-sample run (the Prefect UI shows them as a form)."""

    services: list[str] = Field(default_factory=list)
    """Services to sample; empty: every service with a golden set."""
    sample_size: int | None = Field(None, ge=10)
    """Items per service (stratified by tag, a new sample each day); null: the whole set."""
    open_incidents: bool = True


class SampleRecord(BaseModel):
    """What one service's sample showed."""

    service: str
    at: datetime
    golden: str | None = None
    version: str | None = None
    items: int = 0
    accuracy: float | None = None
    baseline_version: str | None = None
    baseline_accuracy: float | None = None
    p_value: float | None = None
    dropped: bool = False
    note: str = ""
    incident: str | None = None
    error: str | None = None


def check_request(env: EnvironmentFile, req: GoldenSampleRequest) -> tuple[list[str], str | None]:
    """The services to sample, or why the run cannot go on (then the list is empty)."""
    with_golden = {gs.service for gs in env.golden_sets.values()}
    return choose(req.services, with_golden, "no golden set for {kind}(s)", kind="service")


def _judge(
    rec: SampleRecord, card: Scorecard, ref_version: str, ref_scores: dict[str, int], s: AccuracySettings
) -> SampleRecord:
    """The sample against the reference baseline, on the items both scored (McNemar)."""
    now = card.correctness()
    v = compare_runs({k: x for k, x in ref_scores.items() if k in now}, now, margin=s.margin, alpha=s.alpha)
    return rec.model_copy(
        update={
            "baseline_version": ref_version,
            "baseline_accuracy": round(v.base_accuracy, 4),
            "p_value": round(v.p_value, 6),
            "dropped": v.dropped,
            "note": (v.power_note or "") if not v.dropped else f"{len(v.newly_wrong)} items newly wrong",
        }
    )


def sample_service(service: str, size: int | None, day: str) -> SampleRecord:
    """Score one service's sample and judge it against its reference baseline (errors are data)."""
    settings = settings_from_env()
    rec = SampleRecord(service=service, at=utcnow())
    try:
        env = load_environment(settings=settings)
        pb = load_playbook(AnomalyType.ACCURACY_DROP, settings)
        s = AccuracySettings.model_validate(pb.settings)
        ev = Evaluation(env, settings, service, s)
        golden, items = ev.golden
        chosen = sample_items(items, size, seed=f"{service}-{day}")
        card = ev.score(chosen)
        reg = ev.registry
        cur = reg.current(service)
        ref = reg.reference(service, golden)
        rec = rec.model_copy(
            update={
                "golden": golden,
                "version": cur.version if cur else None,
                "items": len(card.scored),
                "accuracy": round(card.accuracy, 4),
            }
        )
        if ref is not None:
            return _judge(rec, card, ref.version, ref.scores, s)
        if size is None or size >= len(items):
            ev.record_baseline(card, by="llmedic-golden-sample", note="first daily sample (no baseline yet)")
            return rec.model_copy(update={"note": "no baseline yet: this score is now the baseline"})
        return rec.model_copy(
            update={"note": "no baseline yet: run `llmedic model baseline` on a healthy service"}
        )
    except LlmedicError as exc:
        return rec.model_copy(update={"error": f"{exc.code}: {exc.message}"})


def open_incident(rec: SampleRecord, day: str) -> str:
    """One ``accuracy_drop`` run per service and day (idempotent: a second sample that day reuses it)."""
    alert = Alert(
        source="schedule",
        anomaly=AnomalyType.ACCURACY_DROP,
        alertname="GoldenSetAccuracyDrop",
        target=rec.service,
        severity="warning",
        starts_at=datetime.fromisoformat(f"{day}T00:00:00+00:00"),
        labels={"service": rec.service, "version": rec.version or ""},
        annotations={
            "summary": f"{rec.service} {rec.version}: golden sample {rec.accuracy:.1%} vs baseline "
            f"{rec.baseline_accuracy:.1%} (p={rec.p_value:.2g})"
        },
    )
    try:
        (d,) = dispatch_alerts([alert])
        return f"{d.status} {d.flow_run_id}"
    except LlmedicError as exc:
        return f"not opened: {exc.code}: {exc.message}"


def render(records: list[SampleRecord]) -> str:
    """The report: one row per service."""
    lines = [
        f"# Golden sample {records[0].at:%Y-%m-%d %H:%M} UTC" if records else "# Golden sample",
        "",
        "| service | version | items | accuracy | baseline | p | dropped | incident | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        if r.error:
            lines.append(f"| {r.service} | — | — | — | — | — | — | — | **error**: {r.error} |")
            continue
        acc = f"{r.accuracy:.1%}" if r.accuracy is not None else "—"
        base = f"{r.baseline_accuracy:.1%} ({r.baseline_version})" if r.baseline_accuracy is not None else "—"
        p = f"{r.p_value:.2g}" if r.p_value is not None else "—"
        lines.append(
            f"| {r.service} | `{r.version}` | {r.items} | {acc} | {base} | {p} | "
            f"{'**yes**' if r.dropped else 'no'} | {r.incident or '—'} | {r.note} |"
        )
    return "\n".join(lines) + "\n"


def write_report(home: Path, records: list[SampleRecord]) -> tuple[Path, str]:
    """Write ``<home>/audits/golden-….md``; returns its path and text."""
    report = render(records)
    out = home / "audits" / f"golden-{utcnow():%Y%m%d-%H%M%S}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report, encoding="utf-8")
    return out, report


def conclude(records: list[SampleRecord], report: Path) -> tuple[bool, str, dict[str, Any]]:
    """Whether every service was sampled and every incident opened, the message and the data."""
    dropped = [r.service for r in records if r.dropped]
    failed = [r.service for r in records if r.error] + [
        r.service for r in records if r.incident and r.incident.startswith("not opened")
    ]
    summary = {"report": str(report), "records": [r.model_dump(mode="json") for r in records]}
    message = f"{len(records)} service(s) sampled; accuracy dropped: {dropped or 'none'}"
    if failed:
        return False, f"{message}; could not sample or open incidents for: {failed}", summary
    return True, message, summary
