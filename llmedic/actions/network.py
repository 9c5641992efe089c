"""Network actions on a link (``network.links``): ``retry_with_backoff``, ``resume_sync`` and
``failover``. The incident's target is the link's name."""

from __future__ import annotations

import time
from typing import Literal

from pydantic import Field

from llmedic.actions.catalogue import ActionOutcome, Params, action
from llmedic.actions.context import ActionContext
from llmedic.adapters.netprobe import probe_link
from llmedic.adapters.shell import LocalShell, run_template
from llmedic.anomalies.network.active import active_url, set_active_url
from llmedic.catalog import AnomalyType
from llmedic.config import NetworkLink
from llmedic.errors import ControlError
from llmedic.transfer import resume_download

__all__ = [
    "FailoverParams",
    "ResumeSyncParams",
    "RetryParams",
    "failover",
    "resume_sync",
    "retry_with_backoff",
]

NETWORK = {AnomalyType.NETWORK_INTERRUPTION}


def _link(rt: ActionContext) -> NetworkLink:
    link = rt.env.network.links.get(rt.ctx.target)
    if link is None:
        raise ControlError(f"{rt.ctx.target!r} is not a link under network.links")
    return link


class RetryParams(Params):
    """Probe again with exponential backoff until the link answers (transient loss)."""

    attempts: int = Field(5, ge=1, le=20)
    backoff_seconds: float = Field(1.0, gt=0, le=60)


@action(
    "retry_with_backoff",
    params=RetryParams,
    compensation=None,
    anomalies=NETWORK,
    description="probe the link again with exponential backoff until it answers (nothing is changed)",
)
def retry_with_backoff(p: RetryParams, rt: ActionContext) -> ActionOutcome:
    """Probe the link's active endpoint until every try answers, doubling the wait each time."""
    url = active_url(rt.ctx.settings().home, rt.ctx.target, _link(rt))
    for attempt in range(1, p.attempts + 1):
        probe = probe_link(url, tries=3, timeout=2.0)
        if probe.tcp_ok == probe.tcp_tries and probe.http_ok == probe.http_tries:
            return ActionOutcome(f"{url} answered on attempt {attempt}")
        if attempt < p.attempts:
            time.sleep(p.backoff_seconds * 2 ** (attempt - 1))
    raise ControlError(f"{url} still fails after {p.attempts} attempts with backoff")


class ResumeSyncParams(Params):
    """Resume the link's interrupted artifact transfer from the bytes already received."""

    attempts: int = Field(5, ge=1, le=20)
    backoff_seconds: float = Field(0.5, gt=0, le=60)


@action(
    "resume_sync",
    params=ResumeSyncParams,
    compensation=None,
    anomalies=NETWORK,
    description="resume the link's interrupted artifact transfer from the bytes received (HTTP Range), "
    "verify its SHA-256 and move it into place atomically",
)
def resume_sync(p: ResumeSyncParams, rt: ActionContext) -> ActionOutcome:
    """Finish the link's artifact download (checksum-verified)."""
    link = _link(rt)
    if link.artifact is None:
        raise ControlError(f"link {rt.ctx.target!r} carries no artifact to resume")
    a = link.artifact
    res = resume_download(
        str(a.url), a.dest, a.sha256, attempts=p.attempts, backoff_seconds=p.backoff_seconds
    )
    return ActionOutcome(
        f"{a.dest.name}: {res.bytes_total} bytes, resumed from byte {res.resumed_from}, "
        f"{res.attempts} attempt(s), SHA-256 verified"
    )


class FailoverParams(Params):
    """Point the link's consumers at its backup endpoint (or back at the primary)."""

    to: Literal["backup", "primary"] = "backup"


@action(
    "failover",
    params=FailoverParams,
    compensation="failover",
    anomalies=NETWORK,
    description="point the link's consumers at its backup endpoint (failover_command, or the active-endpoint "
    "record); rollback points them back",
)
def failover(p: FailoverParams, rt: ActionContext) -> ActionOutcome:
    """Repoint the consumers (through ``failover_command`` when declared) and record the endpoint."""
    link = _link(rt)
    if p.to == "backup" and link.backup_url is None:
        raise ControlError(f"link {rt.ctx.target!r} has no backup_url to fail over to")
    url = str(link.backup_url if p.to == "backup" else link.url)
    home = rt.ctx.settings().home
    before = active_url(home, rt.ctx.target, link)
    if link.failover_command is not None:
        declared = rt.env.commands[link.failover_command].params
        values = {"link": rt.ctx.target, "url": url}
        run_template(
            LocalShell(),
            rt.env.commands,
            link.failover_command,
            {k: v for k, v in values.items() if k in declared},
        )
    set_active_url(home, rt.ctx.target, url, by=f"incident {rt.ctx.incident_id}")
    back: Literal["backup", "primary"] = "primary" if p.to == "backup" else "backup"
    return ActionOutcome(f"{rt.ctx.target}: {before} → {url}", FailoverParams(to=back))
