"""The step tasks of the dependency_conflict playbook.

The service's environment is described with its own interpreter (``llmedic/probes/envprobe.py``):
broken requirements as ``pip check`` reports them, installed against the lock, import tests of the
modules it needs, torch's CUDA against the driver's; the service log adds the import errors the
workers hit. Reproduction builds a scratch environment from the lock and import-tests it — if the
lock imports where the live environment does not, re-pinning is the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmedic.adapters.endpoint import Endpoint
from llmedic.adapters.gpu import host_snapshot
from llmedic.adapters.pyenv import probe_env, try_lock_env
from llmedic.anomalies.dependency.diagnosis import Diagnosis as DependencyDiagnosis
from llmedic.anomalies.dependency.diagnosis import EnvironmentReport, diagnose_environment
from llmedic.anomalies.dependency.environment import (
    broken_requirements,
    cuda_mismatch,
    diff_lock,
    import_failures,
    parse_lock,
)
from llmedic.errors import ConfigError, LlmedicError
from llmedic.incident import Step, StepResult, VerificationCheck
from llmedic.playbook import DependencySettings
from tasks.evidence import system_evidence
from tasks.isolate import drain_if
from tasks.runtime import Runtime, StepContext, StepTimer, step_task
from tasks.verify import verification_result

__all__ = [
    "assess_deps",
    "confirm_deps",
    "environment_report",
    "evidence_deps",
    "isolate_deps",
    "reproduce_deps",
    "verify_deps",
]


def _paths(rt: Runtime) -> tuple[Path, Path]:
    svc = rt.service
    if svc.python is None or svc.lock_file is None:
        raise ConfigError(
            f"service {svc.name!r} declares no python/lock_file, so its dependencies cannot be checked",
            hint="set services[].python (the venv's interpreter) and services[].lock_file in llmedic.yaml",
        )
    return svc.python, svc.lock_file


def environment_report(rt: Runtime, s: DependencySettings) -> dict[str, Any]:
    """Everything wrong with the live environment, as data."""
    python, lock_path = _paths(rt)
    try:
        lock = parse_lock(lock_path.read_text("utf-8"), str(lock_path))
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot use the lock file: {exc}", hint="a requirements file of name==version pins"
        ) from None
    probe = probe_env(python, rt.service.imports, torch=s.check_torch_cuda, timeout=s.probe_timeout_seconds)
    broken = broken_requirements(probe["distributions"], probe["python"])
    diff = diff_lock(probe["distributions"], lock)
    failed_imports = {m: r for m, r in probe["imports"].items() if r != "ok"}
    cuda = None
    if s.check_torch_cuda:
        snap = host_snapshot(rt.env, rt.instance.host)
        cuda = cuda_mismatch(probe.get("torch_cuda"), snap.cuda_driver)
    return {
        "python": probe["python"],
        "executable": probe["executable"],
        "broken": broken,
        "lock_diff": diff.lines(),
        "lock_clean": diff.clean,
        "failed_imports": failed_imports,
        "cuda_mismatch": cuda,
        "installed": {k: v["version"] for k, v in sorted(probe["distributions"].items())},
        "lock": lock,
    }


def _sick(report: dict[str, Any]) -> bool:
    return bool(
        report["broken"] or not report["lock_clean"] or report["failed_imports"] or report["cuda_mismatch"]
    )


def _add_report(t: StepTimer, report: dict[str, Any], name: str = "environment") -> None:
    t.add(
        name,
        "envprobe",
        f"{report['executable']} (Python {report['python']}): {len(report['broken'])} broken requirement(s), "
        f"{len(report['lock_diff'])} difference(s) from the lock, failed imports {sorted(report['failed_imports']) or 'none'}"
        + (f"; {report['cuda_mismatch']}" if report["cuda_mismatch"] else ""),
        {k: v for k, v in report.items() if k != "installed"} | {"installed_count": len(report["installed"])},
    )


@step_task(Step.CONFIRM)
def confirm_deps(ctx: StepContext) -> StepResult:
    """Describe the live environment: confirmed when a requirement is broken, the lock is not
    matched, a needed module does not import, or torch's CUDA is newer than the driver's."""
    rt = Runtime(ctx)
    s = rt.settings_as(DependencySettings)
    t = StepTimer(Step.CONFIRM)
    report = environment_report(rt, s)
    _add_report(t, report)
    confirmed = _sick(report)
    why = (
        "; ".join(
            report["broken"][:3] + report["lock_diff"][:3] + list(report["failed_imports"].values())[:2]
        )
        if confirmed
        else "the environment matches its lock, every requirement holds and every module imports"
    )
    t.decide("confirm", "confirmed" if confirmed else "not confirmed", why)
    return t.done(why, data={"confirmed": confirmed, "report": report})


@step_task(Step.ASSESS)
def assess_deps(ctx: StepContext, confirm: dict[str, Any] | None = None) -> StepResult:
    """Is the instance serving, and which other instances are up."""
    rt = Runtime(ctx)
    t = StepTimer(Step.ASSESS)
    up = [i for i in rt.service.instances if i.name != rt.instance.name]
    serving = [i.name for i in up if (st := rt.control.state(i)).healthy and not st.drained]
    mine = rt.control.state(rt.instance)
    impact = f"{rt.instance.name} is {'up' if mine.healthy else 'DOWN'}; other instances serving: {serving or 'none'}"
    t.decide("route", "ops team", "environments and packages are the ops team's")
    return t.done(impact, data={"scope": "instance", "impact": impact, "serving": serving})


@step_task(Step.EVIDENCE)
def evidence_deps(ctx: StepContext, confirm: dict[str, Any], assess: dict[str, Any]) -> StepResult:
    """Import errors from the service log beside the environment report → the diagnosis."""
    rt = Runtime(ctx)
    t = StepTimer(Step.EVIDENCE)
    report = confirm["report"]
    try:
        log = rt.service_log()
    except LlmedicError:
        log = None  # system_evidence records why
    if log is not None:
        fails = import_failures(log)
        t.add(
            "import_errors_in_log",
            "shell",
            ", ".join(f"{k} ×{v}" for k, v in fails.items()) or "no import error in the recent log",
            {"import_errors": fails},
        )
    diagnosis, reason = diagnose_environment(EnvironmentReport.model_validate(report))
    system_evidence(rt, t)
    t.decide("diagnosis", diagnosis, reason)
    return t.done(
        f"{diagnosis}: {reason}",
        data={"diagnosis": diagnosis, "reason": reason, "healthy_others": len(assess.get("serving") or [])},
    )


@step_task(Step.ISOLATE)
def isolate_deps(ctx: StepContext, evidence: dict[str, Any]) -> StepResult:
    """Drain the instance before its environment is changed (when enough others serve)."""
    s = Runtime(ctx).settings_as(DependencySettings)
    return drain_if(
        ctx,
        evidence.get("diagnosis"),
        DependencyDiagnosis.DRIFT_FROM_LOCK,
        int(evidence.get("healthy_others", 0)),
        s.min_healthy_instances,
        "the lock is matched; re-pinning would change nothing",
    )


@step_task(Step.REPRODUCE)
def reproduce_deps(ctx: StepContext) -> StepResult:
    """Build a scratch virtual environment from the lock and import-test it (the live one is not
    touched): does the lock import where the live environment does not?"""
    rt = Runtime(ctx)
    s = rt.settings_as(DependencySettings)
    t = StepTimer(Step.REPRODUCE)
    python, lock = _paths(rt)
    env = try_lock_env(
        python, lock, rt.service.wheelhouse, rt.service.imports, timeout=s.lock_env_timeout_seconds
    )
    imports = (env.probe or {}).get("imports", {})
    broken = broken_requirements(env.probe["distributions"], env.probe["python"]) if env.probe else []
    t.add(
        "lock_environment",
        "venv",
        f"{env.detail}: imports {imports or 'not tested'}; {len(broken)} broken requirement(s)",
        {"built": env.built, "detail": env.detail, "imports": imports, "broken": broken},
    )
    ok = env.built and env.imports_ok and not broken
    t.decide("reproduce", "lock works" if ok else "lock fails too", env.detail)
    return t.done(
        "the lock builds and imports cleanly: re-pinning fixes it"
        if ok
        else f"the lock itself fails: {env.detail}",
        data={"lock_ok": ok},
    )


@step_task(Step.VERIFY)
def verify_deps(ctx: StepContext, confirm: dict[str, Any] | None = None) -> StepResult:
    """The environment matches the lock with no broken requirement and every import working, and
    the instance is healthy and answers."""
    rt = Runtime(ctx)
    s = rt.settings_as(DependencySettings)
    t = StepTimer(Step.VERIFY)
    report = environment_report(rt, s)
    _add_report(t, report, "environment_after")
    with Endpoint(rt.instance.base_url, timeout=30) as ep:
        healthy = ep.health()
        answered = ep.probe(s.canary_prompt).ok
    checks = [
        VerificationCheck(
            name="matches_lock",
            passed=report["lock_clean"],
            observed="; ".join(report["lock_diff"]) or "yes",
            expected="yes",
        ),
        VerificationCheck(
            name="no_broken_requirements",
            passed=not report["broken"],
            observed=len(report["broken"]),
            expected="0",
        ),
        VerificationCheck(
            name="imports",
            passed=not report["failed_imports"],
            observed=str(report["failed_imports"] or "all ok"),
            expected="all ok",
        ),
        VerificationCheck(name="health", passed=healthy, observed=str(healthy), expected="True"),
        VerificationCheck(name="canary_completion", passed=answered, observed=str(answered), expected="True"),
    ]
    return verification_result(t, checks)
