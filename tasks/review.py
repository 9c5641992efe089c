"""The Prefect side of the scheduled reviews: their tasks (one per unit of work a review repeats,
so each shows as its own task run) and the artifacts they publish. What the reviews do is in
``llmedic/reviews/``; the flows in ``flows/`` wire these."""

from __future__ import annotations

import base64

from prefect import task
from prefect.artifacts import create_image_artifact, create_markdown_artifact, create_table_artifact

from llmedic.auditing import AuditRecord
from llmedic.reviews import backups, data_audit, golden_sample, release_gate
from llmedic.reviews.capacity import review as capacity

__all__ = [
    "audit_dataset",
    "judge_version",
    "open_accuracy_incident",
    "open_data_incidents",
    "promote_candidate",
    "publish_backups",
    "publish_capacity",
    "publish_data_audit",
    "publish_golden_sample",
    "publish_release_gate",
    "review_service",
    "sample_service",
    "verify_backup",
]


@task(name="review-service")
def review_service(
    service: str, reserve: float | None, lookback_days: int | None, now: float
) -> capacity.ServiceOutcome:
    """Review one service's capacity (errors come back as data: one service never stops the review)."""
    return capacity.review_one(service, reserve, lookback_days, now)


def publish_capacity(outputs: capacity.CapacityOutputs) -> None:
    """The capacity review's artifacts: a chart per service, the table and the report."""
    for service, png in outputs.charts.items():
        create_image_artifact(
            image_url=f"data:image/png;base64,{base64.b64encode(png).decode()}",
            key=f"capacity-{service}".lower(),
            description=f"Capacity of {service} over the look-back window",
        )
    create_table_artifact(
        table=outputs.table,
        key="capacity-review",
        description="Capacity review: one row per service and resource",
    )
    create_markdown_artifact(
        markdown=outputs.report, key="capacity-review-report", description="Capacity review"
    )


@task(name="verify-backup")
def verify_backup(name: str) -> backups.BackupReport:
    """Verify one artifact's latest backup."""
    return backups.verify_declared(name)


def publish_backups(reports: list[backups.BackupReport], report: str) -> None:
    """The backup verification's artifacts: the table and the report."""
    create_table_artifact(
        table=backups.table_rows(reports),
        key="backup-verify",
        description="Backup verification: one row per artifact",
    )
    create_markdown_artifact(markdown=report, key="backup-verify-report", description="Backup verification")


@task(name="audit-dataset")
def audit_dataset(name: str, run: str) -> AuditRecord:
    """Audit the current version of one dataset (errors are recorded, never fatal to the audit)."""
    return data_audit.audit_dataset(name, run)


@task(name="open-data-incidents")
def open_data_incidents(record: AuditRecord) -> dict[str, str]:
    """One run of the matching data flow per breaching anomaly type (idempotent per version)."""
    return data_audit.open_incidents(record)


def publish_data_audit(records: list[AuditRecord], report: str) -> None:
    """The data audit's artifacts: the table and the report with its trend."""
    create_table_artifact(
        key="data-audit",
        table=data_audit.table_rows(records),
        description="Monthly data audit: one row per dataset",
    )
    create_markdown_artifact(
        markdown=report, key="data-audit-report", description="Data audit report and trend"
    )


@task(name="sample-service")
def sample_service(service: str, size: int | None, day: str) -> golden_sample.SampleRecord:
    """Score one service's golden sample and judge it against its reference baseline."""
    return golden_sample.sample_service(service, size, day)


@task(name="open-accuracy-incident")
def open_accuracy_incident(rec: golden_sample.SampleRecord, day: str) -> str:
    """One ``accuracy_drop`` run per service and day (idempotent)."""
    return golden_sample.open_incident(rec, day)


def publish_golden_sample(records: list[golden_sample.SampleRecord], report: str) -> None:
    """The golden sample's artifacts: the table and the report."""
    create_table_artifact(
        key="golden-sample",
        table=[r.model_dump(mode="json") for r in records],
        description="Daily golden sample: one row per service",
    )
    create_markdown_artifact(markdown=report, key="golden-sample-report", description="Daily golden sample")


@task(name="judge-version")
def judge_version(
    req: release_gate.ReleaseGateRequest, canary: str, version: str
) -> release_gate.Measurement:
    """Serve ``version`` on the canary and measure it: golden scores, adversarial, load."""
    return release_gate.judge_version(req, canary, version)


@task(name="promote-candidate")
def promote_candidate(req: release_gate.ReleaseGateRequest, candidate: release_gate.Measurement) -> str:
    """Record the release and its baseline, then switch every in-rotation instance, one at a time."""
    return release_gate.promote(req, candidate)


def publish_release_gate(report: str) -> None:
    """The release gate's artifact: its verdict."""
    create_markdown_artifact(markdown=report, key="release-gate", description="Release gate verdict")
