"""Approval decisions from outside the flow: the CLI, the demo, the timeout sweeper.

A decision is the same form the Prefect UI shows (:class:`ApprovalDecision`), sent to the paused or
suspended run with Prefect's resume API. This module is the one seam where Prefect's resume errors
become :class:`~llmedic.errors.ApprovalError`. Who may decide and how a decision proves it is in
:mod:`llmedic.approval.identity`; the flow judges every decision itself (:mod:`llmedic.approval.gate`,
called from ``tasks/approve.py``), because the Prefect API can be called without this module.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from prefect.exceptions import FlowPauseTimeout, NotPausedError, ObjectNotFound
from prefect.flow_runs import resume_flow_run
from prefect.input import RunInput
from pydantic import Field

from llmedic.approval.identity import TIMEOUT_APPROVER, make_proof, system_key, valid_person
from llmedic.errors import ApprovalError, OrchestrationError
from llmedic.incident import utcnow
from llmedic.store.incidents import IncidentStore

__all__ = [
    "TIMEOUT_APPROVER",
    "ApprovalDecision",
    "pending_gate",
    "resolve_run",
    "submit_decision",
    "sweep_expired",
]


class ApprovalDecision(RunInput):
    """The approval form (kept flat so the Prefect UI renders every field)."""

    approve: bool = Field(False, description="Apply this fix to production?")
    approver: str = Field("", description="Your name (recorded on the incident)")
    comment: str = Field("", description="Why (recorded on the incident)")
    code: str = Field(
        "",
        description="The one-time approval code llmedic sent you when the gate opened "
        "(needed when the playbook names approvers; `llmedic approve` fills in a token proof instead)",
    )


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


def pending_gate(run_id: uuid.UUID, store: IncidentStore) -> dict[str, Any]:
    """The pending approval a run's incident records (action, nonce, deadline, approvers ...)."""
    for inc in store.pending_approvals():
        pending = inc.pending_approval or {}
        if str(pending.get("flow_run_id", inc.flow_run_id)) == str(run_id):
            return pending
    raise ApprovalError(
        f"no incident in {store.where} is waiting for an approval in flow run {run_id}",
        hint="`llmedic approvals list` shows the runs that are (a token proof needs the gate's nonce)",
    )


def submit_decision(
    run: str,
    *,
    approve: bool,
    by: str,
    comment: str = "",
    store: IncidentStore | None = None,
    system: bool = False,
    token: str | None = None,
    code: str = "",
    home: Path | None = None,
) -> uuid.UUID:
    """Resume the run waiting at a gate with a decision; raise :class:`ApprovalError` if it cannot.

    ``token`` (the approver's, see ``llmedic approvers add``) attaches a proof the flow verifies;
    ``code`` passes a one-time approval code as the UI form would; ``system`` is the sweeper, which
    signs with llmedic's own key under ``home`` (default: the store's parent). Both need ``store``
    to find the gate's nonce.
    """
    who = TIMEOUT_APPROVER if system else valid_person(by)
    run_id = resolve_run(run, store)
    if token is not None or system:
        if store is None:
            raise ApprovalError("a signed decision needs the incident store (for the gate's nonce)")
        pending = pending_gate(run_id, store)
        key_home = home or store.home  # llmedic's own key is a file in its home
        if system and key_home is None:
            raise ApprovalError("a signed timeout needs llmedic's home (its key is <home>/approvals.key)")
        secret: str | bytes = system_key(key_home or Path()) if system else token or ""
        code = make_proof(
            secret,
            run_id=str(run_id),
            action=str(pending.get("action", "")),
            approver=who,
            approve=approve,
            comment=comment,
            nonce=str(pending.get("nonce", "")),
        )
    decision = ApprovalDecision(approve=approve, approver=who, comment=comment, code=code)
    # An empty code is left out, so a gate opened before the form had the field still accepts it.
    body = decision.model_dump(exclude={"code"} if not code else set())
    try:
        resume_flow_run(run_id, run_input=body)
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


def sweep_expired(store: IncidentStore, now: datetime | None = None, home: Path | None = None) -> list[str]:
    """Reject every approval past its deadline (the flow then records reject + escalate).

    Each rejection is signed with llmedic's own key (``<home>/approvals.key``), so a person typing
    ``llmedic-timeout`` into the form cannot do what the sweeper does. Returns the incident ids
    swept. Runs that already moved on are skipped silently.
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
                store=store,
                system=True,
                home=home,
            )
        except ApprovalError:
            continue
        swept.append(inc.id)
    return swept
