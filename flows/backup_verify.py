"""Weekly backup verification: for every artifact declared under ``backups:`` (model weights,
serving configuration, datasets), the latest backup exists, is recent enough, matches its checksum
manifest, and restores into a scratch directory as something readable (a dataset loads, a
configuration parses, weights' headers parse). The live copy is never touched. A table artifact and
a Markdown report under ``<home>/reviews/``; a review incident for the ops team per failing
artifact; the run ends Failed when any check fails. Runs on ``schedules.backup_verify``, from the
Prefect UI, or ``llmedic review backups``."""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.client.schemas.objects import State
from prefect.states import Completed, Failed
from pydantic import BaseModel, Field

from llmedic.backups import verify_backup
from llmedic.config import load_environment, settings_from_env
from llmedic.incident import utcnow
from llmedic.reviews.incidents import ReviewIncidents

__all__ = ["BackupRequest", "backup_verify", "render"]


class BackupRequest(BaseModel):
    """Parameters of a backup-verification run (the Prefect UI shows them as a form)."""

    artifacts: list[str] = Field(default_factory=list)
    """Artifacts to verify; empty: all declared."""
    open_incidents: bool = True


@task(name="verify-backup")
def verify_one(name: str) -> dict[str, Any]:
    """Verify one artifact's latest backup."""
    env = load_environment(settings=settings_from_env())
    return verify_backup(name, env.backups[name]).as_dict()


def render(reports: list[dict[str, Any]], when: str) -> str:
    """The Markdown report."""
    lines = [
        f"# Backup verification {when}",
        "",
        "| artifact | kind | latest backup | age (h) | exists | recent | checksums | restore |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in reports:
        checks = {c["name"]: c for c in r["checks"]}

        def cell(n: str, checks: dict[str, Any] = checks) -> str:
            c = checks.get(n)
            return "—" if c is None else ("ok" if c["passed"] else "**FAILED**")

        lines.append(
            f"| {r['artifact']} | {r['kind']} | {r['backup'] or '—'} | {r['age_hours'] if r['age_hours'] is not None else '—'} | "
            f"{cell('exists')} | {cell('recent')} | {cell('checksums')} | {cell('restore')} |"
        )
    lines += ["", "## Details", ""]
    for r in reports:
        lines.append(f"### {r['artifact']}")
        lines += [f"- {c['name']}: {'ok' if c['passed'] else 'FAILED'} — {c['detail']}" for c in r["checks"]]
        lines.append("")
    return "\n".join(lines) + "\n"


@flow(name="llmedic-backup-verify", description=__doc__, log_prints=True)
def backup_verify(request: BackupRequest | None = None) -> State[Any]:
    """Verify the latest backup of every declared artifact."""
    req = request or BackupRequest()
    settings = settings_from_env()
    env = load_environment(settings=settings)
    names = req.artifacts or sorted(env.backups)
    unknown = [n for n in names if n not in env.backups]
    if unknown:
        return Failed(message=f"unknown artifact(s) {unknown}; declared under backups: {sorted(env.backups)}")
    if not names:
        return Completed(message="no backups declared (backups: in llmedic.yaml)", data={"reports": []})
    reports = [verify_one(n) for n in names]
    when = f"{utcnow():%Y-%m-%d %H:%M} UTC"
    out = settings.home / "reviews" / f"backups-{utcnow():%Y%m%d-%H%M%S}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    report = render(reports, when)
    out.write_text(report, encoding="utf-8")
    create_table_artifact(
        table=[
            {
                "artifact": r["artifact"],
                "kind": r["kind"],
                "backup": r["backup"],
                "age_hours": r["age_hours"],
                "passed": r["passed"],
                "failed": ", ".join(c["name"] for c in r["checks"] if not c["passed"]),
            }
            for r in reports
        ],
        key="backup-verify",
        description="Backup verification: one row per artifact",
    )
    create_markdown_artifact(markdown=report, key="backup-verify-report", description="Backup verification")
    failing = [r for r in reports if not r["passed"]]
    opened: dict[str, str] = {}
    if req.open_incidents:
        store = ReviewIncidents(settings.home / "reviews" / "incidents")
        week = f"{utcnow():%G-W%V}"
        for r in failing:
            rec, new = store.open(
                env,
                kind="backup",
                subject=r["artifact"],
                period=week,
                title=f"backup of {r['artifact']} ({r['kind']}) failed verification",
                findings=[f"{c['name']}: {c['detail']}" for c in r["checks"] if not c["passed"]],
                report_path=str(out),
            )
            opened[r["artifact"]] = f"{'opened' if new else 'updated'} {rec.id}"
    data = {"report": str(out), "reports": reports, "incidents": opened}
    message = f"{len(reports)} backup(s) verified; failing: {[r['artifact'] for r in failing] or 'none'}"
    return (Failed if failing else Completed)(message=message, data=data)
