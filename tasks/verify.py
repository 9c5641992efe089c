"""Step 7 — verify & recover: did the fix bring the service back within its criteria?

Verification polls in its own loop (``rounds``) instead of relying on task retries: a retried
task inside a Prefect transaction rolls the transaction back on its first failed attempt (see
``docs/architecture.md``), and a fix must never be undone by a retry artefact.
"""

from __future__ import annotations

import hashlib
from typing import Any

from llmedic.anomalies import home_of
from llmedic.anomalies.base import Confirmation, VerificationResult
from llmedic.incident import Step, StepResult, Verification, VerificationCheck
from tasks.confirm import audit_summary
from tasks.runtime import Runtime, StepContext, StepTimer, step_task

__all__ = ["verify", "verify_data"]


@step_task(Step.VERIFY)
def verify(ctx: StepContext, confirmed: Confirmation) -> VerificationResult:
    """Did the fix bring the service back within its criteria? (the home's criteria)"""
    result: VerificationResult = home_of(ctx.anomaly).verify(Runtime(ctx), confirmed)
    return result


def verification_result(
    t: StepTimer, checks: list[VerificationCheck], ok: str = "verified: all checks passed", **data: Any
) -> StepResult:
    """The verify step's result: passed when every check passed (each verify task uses this)."""
    passed = all(c.passed for c in checks)
    failed = [c.name for c in checks if not c.passed]
    return t.done(
        ok if passed else f"verification failed: {failed}",
        status="ok" if passed else "failed",
        verification=Verification(passed=passed, checks=checks),
        data={"passed": passed, **data},
    )


@step_task(Step.VERIFY)
def verify_data(ctx: StepContext, confirm: dict[str, Any] | None = None) -> StepResult:
    """Re-audit the version consumers now see against the schema and the reference: this anomaly's
    breaches gone, no new kind of breach, not quarantined, and the published copy identical."""
    rt = Runtime(ctx)
    t = StepTimer(Step.VERIFY)
    name = ctx.target
    state = rt.store.state(name)
    before = rt.audit(ctx.version)
    current = rt.store.version(name, "current")
    after = rt.audit(current.id, fresh=True)
    left = after.breaches(ctx.anomaly)
    kinds_before = {f.kind for f in before.breaches()}
    new = sorted({f.kind for f in after.breaches()} - kinds_before)
    checks = [
        VerificationCheck(
            name="serves_unquarantined_version",
            passed=current.id not in state.quarantined,
            observed=current.id,
            expected=f"not {sorted(state.quarantined)}",
        ),
        VerificationCheck(
            name=f"{ctx.anomaly.value}_breaches",
            passed=not left,
            observed=float(len(left)),
            expected=f"0 (was {len(before.breaches(ctx.anomaly))})",
        ),
        VerificationCheck(
            name="new_breach_kinds", passed=not new, observed=", ".join(new) or "none", expected="none"
        ),
    ]
    publish = rt.dataset.publish_to
    if publish is not None:
        try:
            digest = hashlib.sha256(publish.read_bytes()).hexdigest()
        except OSError:
            digest = "unreadable"
        checks.append(
            VerificationCheck(
                name="published_copy",
                passed=digest == current.sha256,
                observed=digest[:12],
                expected=f"sha256 {current.sha256[:12]} ({current.id})",
            )
        )
    b, a = audit_summary(before), audit_summary(after)
    t.add(
        "before_after",
        "audit",
        "; ".join(f"{k} {b[k]} → {a[k]}" for k in b if k != "version" and b[k] != a[k])
        or "no change in the figures",
        {"before": b, "after": a},
    )
    for f in left:
        t.add(f"still_{f.kind}", "audit", f.message, f.model_dump(mode="json"))
    return verification_result(
        t, checks, f"verified {name}@{current.id}: all checks passed", before=b, after=a
    )
