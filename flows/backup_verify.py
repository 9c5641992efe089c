"""Weekly backup verification: for every artifact declared under ``backups:`` (model weights,
serving configuration, datasets), the latest backup exists, is recent enough, matches its checksum
manifest, and restores into a scratch directory as something readable (a dataset loads, a
configuration parses, weights' headers parse). The live copy is never touched. A table artifact and
a Markdown report under ``<home>/reviews/``; a review incident for the ops team per failing
artifact; the run ends Failed when any check fails. Runs on ``schedules.backup_verify``, from the
Prefect UI, or ``llmedic review backups``."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.client.schemas.objects import State
from prefect.states import Completed, Failed

from llmedic.config import load_environment, settings_from_env
from llmedic.reviews.backups import BackupRequest, check_request, conclude, open_incidents, write_report
from tasks.review import publish_backups, verify_backup

__all__ = ["BackupRequest", "backup_verify"]


@flow(name="llmedic-backup-verify", description=__doc__, log_prints=True)
def backup_verify(request: BackupRequest | None = None) -> State[Any]:
    """Verify the latest backup of every declared artifact."""
    req = request or BackupRequest()
    settings = settings_from_env()
    env = load_environment(settings=settings)
    names, problem = check_request(env, req)
    if problem is not None:
        return Failed(message=problem)
    if not names:
        return Completed(message="no backups declared (backups: in llmedic.yaml)", data={"reports": []})
    reports = [verify_backup(n) for n in names]
    path, report = write_report(settings.home, reports)
    publish_backups(reports, report)
    opened = open_incidents(env, settings.home, reports, path) if req.open_incidents else {}
    ok, message, data = conclude(reports, path, opened)
    return (Completed if ok else Failed)(message=message, data=data)
