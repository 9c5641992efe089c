"""The Prefect side of the scheduled reviews: their tasks (one per unit of work a review repeats,
so each shows as its own task run) and the artifacts they publish. What the reviews do is in
``llmedic/reviews/``; the flows in ``flows/`` wire these."""

from __future__ import annotations

import base64

from prefect import task
from prefect.artifacts import create_image_artifact, create_markdown_artifact, create_table_artifact

from llmedic.reviews import backups
from llmedic.reviews.capacity import review as capacity

__all__ = ["publish_backups", "publish_capacity", "review_service", "verify_backup"]


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
