"""Release gate: before a model version is promoted, compare it with the current one on a canary
instance that takes no user traffic (a drained standby): the same golden items scored under both
versions (McNemar, per item), the adversarial prompts (the candidate must resist every one the
current version resists), and a short load test (p99 and failures). The candidate is blocked when it
is worse on any of the three. With ``promote``, a passing candidate is recorded as released with its
golden score as baseline, and every in-rotation instance is switched to it one at a time. Run it
from the Prefect UI (deployment ``llmedic-release-gate/default``) or ``llmedic model gate``."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.client.schemas.objects import State
from prefect.states import Completed, Failed

from llmedic.config import settings_from_env
from llmedic.errors import LlmedicError
from llmedic.reviews.release_gate import (
    GateCheck,
    ReleaseGateRequest,
    compare,
    conclude,
    prepare,
    write_report,
)
from tasks.review import judge_version, promote_candidate, publish_release_gate

__all__ = ["GateCheck", "ReleaseGateRequest", "release_gate"]


@flow(name="llmedic-release-gate", description=__doc__, log_prints=True)
def release_gate(request: ReleaseGateRequest) -> State[Any]:
    """Judge a candidate model version against the current one; block it when it is worse."""
    settings = settings_from_env()
    try:
        gate = prepare(request)
        try:
            current = judge_version(request, gate.canary.name, gate.current)
            candidate = judge_version(request, gate.canary.name, request.candidate)
        finally:
            gate.control.set_model(gate.canary, gate.was)  # the canary goes back to what it served
    except LlmedicError as exc:
        return Failed(message=f"release gate could not run: {exc.code}: {exc.message}")
    checks = compare(current, candidate, gate.settings, request)
    passed = all(c.passed for c in checks)
    try:
        promoted = promote_candidate(request, candidate) if passed and request.promote else None
    except LlmedicError as exc:
        return Failed(message=f"{request.candidate} passed but was not promoted: {exc.code}: {exc.message}")
    path, report = write_report(settings.home, request, gate, checks, promoted)
    publish_release_gate(report)
    ok, message, data = conclude(request, gate, checks, promoted, path)
    return (Completed if ok else Failed)(message=message, data=data)
