"""Approval decisions from outside the flow: the CLI, the demo, the timeout sweeper.

A decision is the same form the Prefect UI shows (:class:`ApprovalDecision`), sent to the paused or
suspended run with Prefect's resume API. This module is the one seam where Prefect's resume errors
become :class:`~llmedic.errors.ApprovalError`.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from prefect.exceptions import FlowPauseTimeout, NotPausedError, ObjectNotFound
from prefect.flow_runs import resume_flow_run
from prefect.input import RunInput
from pydantic import Field

from llmedic.errors import ApprovalError, OrchestrationError
from llmedic.incident import IncidentStore, utcnow

__all__ = ["TIMEOUT_APPROVER", "ApprovalDecision", "submit_decision", "sweep_expired"]

TIMEOUT_APPROVER = "llmedic-timeout"
"""The approver name the sweeper uses; people cannot use names starting with ``llmedic``."""


class ApprovalDecision(RunInput):
    """The approval form (kept flat so the Prefect UI renders every field)."""

    approve: bool = Field(False, description="Apply this fix to production?")
    approver: str = Field("", description="Your name (recorded on the incident)")
    comment: str = Field("", description="Why (recorded on the incident)")


def _run_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ApprovalError(
            f"{value!r} is not a flow run id",
            hint="use the id `llmedic approvals list` shows (a UUID), or an incident id",
        ) from None


def resolve_run(ref: str, store: IncidentStore | None) -> uuid.UUID:
    """A flow run id, or the run of an incident id."""
    try:
        return uuid.UUID(ref)
    except ValueError:
        pass
    if store is not None:
        for inc in store.all():
            if inc.id == ref and inc.flow_run_id:
                return _run_id(inc.flow_run_id)
    return _run_id(ref)


def submit_decision(
    run: str,
    *,
    approve: bool,
    by: str,
    comment: str = "",
    store: IncidentStore | None = None,
    system: bool = False,
) -> uuid.UUID:
    """Resume the run waiting at a gate with a decision; raise :class:`ApprovalError` if it cannot."""
    who = by.strip()
    if not who:
        raise ApprovalError("an approval decision needs the name of who takes it", hint="pass --by NAME")
    if who.lower().startswith("llmedic") and not system:
        raise ApprovalError(
            f"approver names starting with 'llmedic' are reserved ({who!r})", hint="use your own name"
        )
    run_id = resolve_run(run, store)
    decision = ApprovalDecision(approve=approve, approver=who, comment=comment)
    try:
        resume_flow_run(run_id, run_input=decision.model_dump())
    except NotPausedError:
        raise ApprovalError(
            f"flow run {run_id} is not waiting for an approval",
            hint="`llmedic approvals list` shows the runs that are; the decision may already have been taken",
        ) from None
    except FlowPauseTimeout:
        raise ApprovalError(f"flow run {run_id}: the approval window has closed") from None
    except ObjectNotFound:
        raise ApprovalError(
            f"no flow run {run_id} on this Prefect server", hint="check PREFECT_API_URL"
        ) from None
    except RuntimeError as exc:
        raise ApprovalError(f"flow run {run_id} refused the decision: {exc}") from None
    except Exception as exc:  # httpx / connection errors from the Prefect client
        if "connect" in str(exc).lower() or type(exc).__name__.endswith(("ConnectError", "ConnectTimeout")):
            raise OrchestrationError(
                f"cannot reach the Prefect API to deliver the decision ({type(exc).__name__})",
                hint="start it with `llmedic up`, or set PREFECT_API_URL",
            ) from exc
        raise
    return run_id


def sweep_expired(store: IncidentStore, now: datetime | None = None) -> list[str]:
    """Reject every approval past its deadline (the flow then records reject + escalate).

    Returns the incident ids swept. Runs that already moved on are skipped silently.
    """
    now = now or utcnow()
    swept: list[str] = []
    for inc in store.pending_approvals():
        pending = inc.pending_approval or {}
        deadline = datetime.fromisoformat(str(pending.get("deadline")))
        if deadline > now:
            continue
        try:
            submit_decision(
                str(pending.get("flow_run_id", inc.flow_run_id)),
                approve=False,
                by=TIMEOUT_APPROVER,
                comment=f"no decision before {deadline:%Y-%m-%d %H:%M:%S} UTC",
                system=True,
            )
        except ApprovalError:
            continue
        swept.append(inc.id)
    return swept
