"""The ``llmedic`` commands that run a flow now, in this process: ``review capacity``, ``review
backups``, ``audit data``, ``audit golden`` and ``model gate``.

They live with the flows, not in ``llmedic.cli``, because the core never imports the layers above
it (import-linter's layer contract, pyproject.toml). ``pyproject.toml`` registers each under the
``llmedic.commands`` entry-point group as ``GROUP.COMMAND``, the way the sandbox adds its commands;
the groups, the options and the output helpers are the core CLI's.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from llmedic.cli.models import _config, out
from llmedic.cli.reviews import report_run

__all__ = ["audit_data", "audit_golden", "model_gate", "review_backups", "review_capacity"]


def _finish(state: Any, as_json: bool) -> None:
    report_run(state, as_json)
    raise typer.Exit(0 if state.is_completed() else 1)


def review_capacity(
    service: Annotated[list[str] | None, typer.Option("--service", help="Only these (repeatable).")] = None,
    reserve: Annotated[
        float | None, typer.Option(help="Headroom target for this run (0.2–0.3 typical).")
    ] = None,
    open_incidents: Annotated[bool, typer.Option(help="Open review incidents for shortfalls.")] = True,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Run the capacity review now (exit 1 when a service could not be reviewed)."""
    from flows.capacity_review import CapacityRequest, capacity_review

    req = CapacityRequest(services=service or [], reserve=reserve, open_incidents=open_incidents)
    _finish(capacity_review(req, return_state=True), as_json)


def review_backups(
    artifact: Annotated[list[str] | None, typer.Option("--artifact", help="Only these (repeatable).")] = None,
    open_incidents: Annotated[bool, typer.Option(help="Open review incidents for failures.")] = True,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Verify the latest backups now (exit 1 when any check fails)."""
    from flows.backup_verify import BackupRequest, backup_verify

    req = BackupRequest(artifacts=artifact or [], open_incidents=open_incidents)
    _finish(backup_verify(req, return_state=True), as_json)


def audit_data(
    dataset: Annotated[
        list[str] | None, typer.Option("--dataset", help="Audit only these (repeatable).")
    ] = None,
    open_incidents: Annotated[
        bool, typer.Option(help="Start the data flows for breaches (needs `llmedic up`).")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Run the monthly data audit now. Exit 0 when every dataset is clean, 1 otherwise."""
    from flows.data_audit import AuditRequest, data_audit

    state = data_audit(AuditRequest(datasets=dataset or [], open_incidents=open_incidents), return_state=True)
    summary = report_run(state, as_json, failed="audit")
    assert summary is not None  # report_run exits when there is none
    raise typer.Exit(0 if state.is_completed() and not summary["breaching"] else 1)


def audit_golden(
    service: Annotated[list[str] | None, typer.Option("--service", help="Only these (repeatable).")] = None,
    sample: Annotated[int | None, typer.Option(help="Items per service (default: all).")] = None,
    open_incidents: Annotated[
        bool, typer.Option(help="Start accuracy_drop runs for real drops (needs `llmedic up`).")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Run the daily golden sample now. Exit 0 when no service dropped, 1 otherwise."""
    from flows.golden_sample import GoldenSampleRequest, golden_sample

    req = GoldenSampleRequest(services=service or [], sample_size=sample, open_incidents=open_incidents)
    state = golden_sample(req, return_state=True)
    summary = report_run(state, as_json, failed="golden sample")
    assert summary is not None  # report_run exits when there is none
    dropped = any(r["dropped"] for r in summary["records"])
    raise typer.Exit(0 if state.is_completed() and not dropped else 1)


def model_gate(
    service: str,
    candidate: str,
    by: Annotated[str, typer.Option(help="Who asks (recorded with a promotion).")] = "release-gate",
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Candidate configuration KEY=VALUE.")
    ] = None,
    canary: Annotated[str | None, typer.Option(help="Drained instance to judge on.")] = None,
    promote: Annotated[bool, typer.Option(help="On a pass, release it and switch the fleet.")] = False,
) -> None:
    """Run the release gate now: exit 0 when the candidate passes, 1 when it is blocked."""
    from flows.release_gate import ReleaseGateRequest, release_gate

    req = ReleaseGateRequest(
        service=service,
        candidate=candidate,
        config=_config(set_ or []),
        canary=canary,
        promote=promote,
        by=by,
    )
    state = release_gate(req, return_state=True)
    data: Any = state.result(raise_on_failure=False) if state.data is not None else None
    out.print(state.message or "")
    if isinstance(data, dict):
        for c in data["checks"]:
            out.print(
                f"  {c['name']}: {'pass' if c['passed'] else 'BLOCKED'} (current {c['current']}, candidate {c['candidate']})"
            )
        out.print(f"report: {data['report']}")
    raise typer.Exit(0 if state.is_completed() else 1)
