"""Step 8 — archive & post-mortem: the report on disk, in the knowledge base and in Prefect."""

from __future__ import annotations

from prefect.artifacts import create_markdown_artifact

from llmedic.anomalies.base import Archived
from llmedic.incident import Incident, Step
from llmedic.report import render_markdown
from llmedic.store.knowledge import KnowledgeBase
from tasks.runtime import StepContext, StepTimer, step_task

__all__ = ["archive_incident", "artifact_key"]


def artifact_key(incident_id: str) -> str:
    """Prefect artifact keys allow lower-case letters, digits and dashes only."""
    return "incident-" + "".join(c if c.isalnum() else "-" for c in incident_id.lower())


@step_task(Step.ARCHIVE)
def archive_incident(ctx: StepContext, incident: Incident) -> Archived:
    """Write ``<kb>/<id>.md`` + ``.json`` and publish the report as a Markdown artifact."""
    t = StepTimer(Step.ARCHIVE)
    final = KnowledgeBase.from_settings(ctx.settings()).archive(incident)
    create_markdown_artifact(
        markdown=render_markdown(final),
        key=artifact_key(incident.id),
        description=f"{incident.anomaly.value} incident on {incident.target}: {incident.outcome.value}",
    )
    return Archived(
        **t.stamp(f"report {final.report_path}"), report_path=str(final.report_path), related=final.related
    )
