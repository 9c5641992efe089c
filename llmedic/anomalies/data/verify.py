"""The data verification criteria: consumers see an unquarantined version, this anomaly's breaches
are gone, no new kind of breach appeared, no column drifted from the reference (a repair that leaves
the batch shifted fails), and the published copy is that version byte for byte."""

from __future__ import annotations

import hashlib

from llmedic.anomalies.common import verification_stamp
from llmedic.anomalies.data.results import AuditFigures, DataConfirmation, DataVerification
from llmedic.anomalies.runtime import Runtime, StepTimer
from llmedic.incident import Step, VerificationCheck

__all__ = ["verify"]


def _published_copy(rt: Runtime, sha256: str, version: str) -> VerificationCheck | None:
    """The published copy (``publish_to``) is the current version, byte for byte."""
    publish = rt.dataset.publish_to
    if publish is None:
        return None
    try:
        digest = hashlib.sha256(publish.read_bytes()).hexdigest()
    except OSError:
        digest = "unreadable"
    return VerificationCheck(
        name="published_copy",
        passed=digest == sha256,
        observed=digest[:12],
        expected=f"sha256 {sha256[:12]} ({version})",
    )


def verify(rt: Runtime, confirmed: DataConfirmation) -> DataVerification:
    """Re-audit the version consumers now see against the schema and the reference: this anomaly's
    breaches gone, no new kind of breach, not quarantined, and the published copy identical."""
    ctx = rt.ctx
    t = StepTimer(Step.VERIFY)
    name = ctx.target
    state = rt.store.state(name)
    before = rt.audit(ctx.version)
    current = rt.store.version(name, "current")
    after = rt.audit(current.id, fresh=True)
    left = after.breaches(ctx.anomaly)
    drifted = sorted({f.column for f in after.breaches() if f.kind == "drift" and f.column})
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
        VerificationCheck(
            name="no_drift_from_reference",
            passed=not drifted,
            observed=", ".join(drifted) or ("none" if after.reference else "is the reference"),
            expected=f"no drifted column against {after.reference or 'the reference'}",
        ),
    ]
    published = _published_copy(rt, current.sha256, current.id)
    if published is not None:
        checks.append(published)
    b, a = AuditFigures.of(before), AuditFigures.of(after)
    bd, ad = b.model_dump(), a.model_dump()
    t.add(
        "before_after",
        "audit",
        "; ".join(f"{k} {bd[k]} → {ad[k]}" for k in bd if k != "version" and bd[k] != ad[k])
        or "no change in the figures",
        {"before": bd, "after": ad},
    )
    for f in left:
        t.add(f"still_{f.kind}", "audit", f.message, f.model_dump(mode="json"))
    stamp, passed = verification_stamp(t, checks, f"verified {name}@{current.id}: all checks passed")
    return DataVerification(**stamp, passed=passed, before=b, after=a)
