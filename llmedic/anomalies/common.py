"""Step pieces several homes share: draining an instance (and putting it back), the model-release
and system evidence every service incident carries, and the verify step's verdict."""

from __future__ import annotations

import json
from typing import Any

from llmedic.adapters.shell import make_shell, run_template
from llmedic.anomalies.base import Isolation, Recovery, VerificationResult
from llmedic.anomalies.logaudit import audit_log
from llmedic.anomalies.runtime import Runtime, Stamp, StepTimer
from llmedic.catalog import Risk
from llmedic.errors import LlmedicError
from llmedic.hostcheck import host_report, problems
from llmedic.incident import ActionRecord, Step, Verification, VerificationCheck, utcnow
from llmedic.registry import Release, config_diff

__all__ = [
    "FLEET_SCOPES",
    "contain_instance",
    "drain_if",
    "release_drain",
    "release_evidence",
    "system_evidence",
    "verification_result",
    "verification_stamp",
]


def verification_stamp(
    t: StepTimer, checks: list[VerificationCheck], ok: str = "verified: all checks passed"
) -> tuple[Stamp, bool]:
    """The verify step's record and verdict: passed when every check passed."""
    passed = all(c.passed for c in checks)
    failed = [c.name for c in checks if not c.passed]
    stamp = t.stamp(
        ok if passed else f"verification failed: {failed}",
        status="ok" if passed else "failed",
        verification=Verification(passed=passed, checks=checks),
    )
    return stamp, passed


def verification_result(
    t: StepTimer, checks: list[VerificationCheck], ok: str = "verified: all checks passed"
) -> VerificationResult:
    """The verify step's result (a home with more figures to hand on uses :func:`verification_stamp`)."""
    stamp, passed = verification_stamp(t, checks, ok)
    return VerificationResult(**stamp, passed=passed)


def drain_if(
    rt: Runtime, diagnosis: object, drain_for: str, others: int, min_healthy: int, why_not_load: str
) -> Isolation:
    """Drain the incident's instance when the diagnosis is ``drain_for`` and enough healthy
    instances remain; record why not otherwise (shared by every playbook that drains)."""
    t = StepTimer(Step.ISOLATE)
    if not rt.playbook.isolate:
        t.decide("isolate", "no", "the playbook turns isolation off")
        return Isolation(**t.stamp("isolation off in the playbook", status="skipped"), isolated=False)
    if diagnosis != drain_for:
        reason = f"diagnosis {diagnosis}: {why_not_load}"
        t.decide("isolate", "no", reason)
        return Isolation(**t.stamp(reason, status="skipped"), isolated=False)
    if others < max(1, min_healthy):
        reason = f"only {others} healthy instance(s) would remain (minimum {min_healthy})"
        t.decide("isolate", "no", reason)
        return Isolation(**t.stamp(reason, status="skipped"), isolated=False)
    return _drain(rt, t, others)


FLEET_SCOPES = frozenset({"fleet", "service"})
"""Assessed scopes no single instance's drain contains (it would only load the others)."""


def contain_instance(rt: Runtime, others: int, min_healthy: int, scope: str) -> Isolation:
    """Containment: take the incident's instance out of rotation whatever the diagnosis, whenever
    ``others`` healthy instances (at least ``min_healthy``, at least one) carry the traffic; the
    record says why not otherwise. Already drained: nothing to do, it stays out."""
    t = StepTimer(Step.ISOLATE)
    name = rt.instance.name
    if scope in FLEET_SCOPES:
        reason = f"the problem is {scope}-wide: draining {name} would only load the others"
        t.decide("contain", "no", reason)
        return Isolation(**t.stamp(f"not contained: {reason}", status="skipped"), isolated=False)
    if rt.control.state(rt.instance).drained:
        t.decide("contain", "already", f"{name} is already out of rotation; it stays out")
        return Isolation(**t.stamp(f"contained: {name} already out of rotation"), isolated=True)
    if others < max(1, min_healthy):
        reason = f"only {others} healthy instance(s) would remain (minimum {max(1, min_healthy)})"
        t.decide("contain", "no", reason)
        return Isolation(**t.stamp(f"not contained: {reason}", status="skipped"), isolated=False)
    drained = _drain(rt, t, others, topic="contain")
    if drained.isolated:
        return drained.model_copy(update={"summary": f"contained: {name} out of rotation"})
    return drained


def _drain(rt: Runtime, t: StepTimer, others: int, topic: str = "isolate") -> Isolation:
    """Drain the incident's instance (recorded only, in a dry run)."""
    ctx = rt.ctx
    action = ActionRecord(
        name="drain_instance",
        risk=Risk.LOW,
        target=rt.instance.name,
        compensation="undrain_instance",
        dry_run=ctx.dry_run,
    )
    if ctx.dry_run:
        t.decide(topic, "would drain", f"{others} healthy instance(s) carry the traffic meanwhile")
        return Isolation(
            **t.stamp(f"dry run: would drain {rt.instance.name}", actions=[action]), isolated=False
        )
    from llmedic.limits import limit_acts  # the blast-radius limit, over every concurrent incident

    limit_acts(rt, [rt.instance], "drain_instance")  # over it: BlastRadiusExceeded, the incident escalates
    rt.control.drain(rt.instance)
    action = action.model_copy(update={"applied": True, "result": "drained", "at": utcnow()})
    t.decide(topic, "drain", f"{others} healthy instance(s) carry the traffic meanwhile")
    return Isolation(**t.stamp(f"drained {rt.instance.name}", actions=[action]), isolated=True)


def release_drain(rt: Runtime, isolated: bool) -> Recovery:
    """Put a drained instance back into rotation once the fix is verified."""
    t = StepTimer(Step.RECOVER)
    if not isolated:
        return Recovery(**t.stamp("nothing was isolated", status="skipped"))
    rt.control.undrain(rt.instance)
    action = ActionRecord(
        name="undrain_instance", risk=Risk.LOW, target=rt.instance.name, applied=True, result="undrained"
    )
    return Recovery(**t.stamp(f"{rt.instance.name} back in rotation", actions=[action]))


def release_evidence(
    rt: Runtime, t: StepTimer, *, against: str | None = None, served: dict[str, str] | None = None
) -> tuple[Release | None, str | None, list[dict[str, Any]]]:
    """Add ``model_versions``: the current release, the version it is compared with (``against``,
    default the last good release), their configuration diff (sampling, quantisation, limits —
    whatever the releases record), what the instances serve and the recent releases. Every model
    incident carries it. Returns (current release, compared version, diff)."""
    svc = rt.service.name
    current = rt.registry.current(svc)
    if against is None:
        good = rt.registry.last_good(svc)
        against = good.version if good else None
    diff: list[dict[str, Any]] = []
    if current is not None and against is not None and against != current.version:
        try:
            diff = config_diff(rt.registry.release_of(svc, against).config, current.config)
        except LlmedicError:
            diff = []
    if served is None:
        served = {i.name: rt.control.state(i).model_version or "unknown" for i in rt.in_rotation()}
    recent = [r.model_dump(mode="json") for r in rt.registry.releases(svc)[-5:]]
    t.add(
        "model_versions",
        "registry",
        f"released {current.version if current else 'unknown'}; compared with {against or 'nothing'}; "
        f"instances serve {sorted(set(served.values()))}"
        + (f"; config changed: {', '.join(str(d['key']) for d in diff)}" if diff else "; same configuration"),
        {
            "current": current.model_dump(mode="json") if current else None,
            "compared_with": against,
            "served": served,
            "recent_releases": recent,
            "config_diff": diff,
        },
    )
    return current, against, diff


def system_evidence(rt: Runtime, t: StepTimer) -> None:
    """Every service incident's log audit and host check (gaps say why one is missing).

    ``service_log``: the instance's recent log, keywords counted, repeated lines folded into
    templates, first occurrences placed against the alert's start. ``host``: CPU, memory, disk space
    and I/O, the heaviest processes, and the service's paths (exist, readable, disk)."""
    start = rt.ctx.alert_started_at
    try:
        text = rt.service_log()
    except LlmedicError as exc:
        t.add("service_log", "shell", f"log unreadable: {exc.message}", gap=True)
        text = ""
    if text is None:
        t.add("service_log", "shell", f"service {rt.service.name!r} names no logs command", gap=True)
    elif text:
        audit = audit_log(text, anomaly_start=start)
        t.add("service_log", "shell", audit.summary(), audit.as_dict())
    host = rt.env.host(rt.instance.host)
    try:
        if host.kind == "local":
            report = host_report(list(rt.service.paths))
        elif host.host_check is not None:
            report = json.loads(run_template(make_shell(host), rt.env.commands, host.host_check, {}).stdout)
        else:
            t.add("host", "shell", f"remote host {host.name!r} names no host_check command", gap=True)
            return
    except (LlmedicError, ValueError) as exc:
        t.add("host", "shell", f"host check failed: {exc}", gap=True)
        return
    found = problems(report)
    t.add(
        "host",
        host.name,
        f"{host.name}: load {report['load']} on {report['cpus']} CPUs"
        + (f"; problems: {'; '.join(found)}" if found else "; no resource or permission problem"),
        {**report, "problems": found},
    )
