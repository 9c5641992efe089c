"""What the dependency-conflict steps read: the service's Python environment described with its
own interpreter (``llmedic/probes/envprobe.py``: broken requirements as ``pip check`` reports
them, installed against the lock, import tests of the modules it needs, torch's CUDA against the
driver's) and the import errors the workers hit in the service log."""

from __future__ import annotations

from pathlib import Path

from llmedic.adapters.gpu import host_snapshot
from llmedic.adapters.pyenv import probe_env
from llmedic.anomalies.common import system_evidence
from llmedic.anomalies.dependency.diagnosis import EnvironmentReport, diagnose_environment
from llmedic.anomalies.dependency.environment import (
    broken_requirements,
    cuda_mismatch,
    diff_lock,
    import_failures,
    parse_lock,
)
from llmedic.anomalies.dependency.results import (
    DependencyAssessment,
    DependencyConfirmation,
    DependencyFindings,
)
from llmedic.anomalies.runtime import Runtime, StepTimer
from llmedic.catalog import anomaly_info
from llmedic.errors import ConfigError, LlmedicError
from llmedic.incident import Step
from llmedic.playbook import DependencySettings

__all__ = ["add_report", "assess", "confirm", "environment_report", "evidence", "service_paths"]


def service_paths(rt: Runtime) -> tuple[Path, Path]:
    """(the service's interpreter, its lock file), both required."""
    svc = rt.service
    if svc.python is None or svc.lock_file is None:
        raise ConfigError(
            f"service {svc.name!r} declares no python/lock_file, so its dependencies cannot be checked",
            hint="set services[].python (the venv's interpreter) and services[].lock_file in llmedic.yaml",
        )
    return svc.python, svc.lock_file


def environment_report(rt: Runtime, s: DependencySettings) -> EnvironmentReport:
    """Everything wrong with the live environment."""
    python, lock_path = service_paths(rt)
    try:
        lock = parse_lock(lock_path.read_text("utf-8"), str(lock_path))
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot use the lock file: {exc}", hint="a requirements file of name==version pins"
        ) from None
    probe = probe_env(python, rt.service.imports, torch=s.check_torch_cuda, timeout=s.probe_timeout_seconds)
    diff = diff_lock(probe["distributions"], lock)
    cuda = None
    if s.check_torch_cuda:
        snap = host_snapshot(rt.env, rt.instance.host)
        cuda = cuda_mismatch(probe.get("torch_cuda"), snap.cuda_driver)
    return EnvironmentReport(
        python=probe["python"],
        executable=probe["executable"],
        broken=broken_requirements(probe["distributions"], probe["python"]),
        lock_diff=diff.lines(),
        lock_clean=diff.clean,
        failed_imports={m: r for m, r in probe["imports"].items() if r != "ok"},
        cuda_mismatch=cuda,
        installed={k: v["version"] for k, v in sorted(probe["distributions"].items())},
        lock=lock,
    )


def add_report(t: StepTimer, report: EnvironmentReport, name: str = "environment") -> None:
    """The report as evidence (the installed versions counted, not listed)."""
    t.add(
        name,
        "envprobe",
        f"{report.executable} (Python {report.python}): {len(report.broken)} broken requirement(s), "
        f"{len(report.lock_diff)} difference(s) from the lock, failed imports {sorted(report.failed_imports) or 'none'}"
        + (f"; {report.cuda_mismatch}" if report.cuda_mismatch else ""),
        report.model_dump(exclude={"installed"}) | {"installed_count": len(report.installed)},
    )


def confirm(rt: Runtime) -> DependencyConfirmation:
    """Describe the live environment: confirmed when a requirement is broken, the lock is not
    matched, a needed module does not import, or torch's CUDA is newer than the driver's."""
    s = rt.settings_as(DependencySettings)
    t = StepTimer(Step.CONFIRM)
    report = environment_report(rt, s)
    add_report(t, report)
    confirmed = report.sick
    why = (
        "; ".join(report.broken[:3] + report.lock_diff[:3] + list(report.failed_imports.values())[:2])
        if confirmed
        else "the environment matches its lock, every requirement holds and every module imports"
    )
    t.decide("confirm", "confirmed" if confirmed else "not confirmed", why)
    return DependencyConfirmation(**t.stamp(why), confirmed=confirmed, report=report)


def assess(rt: Runtime, confirmed: DependencyConfirmation) -> DependencyAssessment:
    """Is the instance serving, and which other instances are up."""
    t = StepTimer(Step.ASSESS)
    up = [i for i in rt.service.instances if i.name != rt.instance.name]
    serving = [i.name for i in up if (st := rt.control.state(i)).healthy and not st.drained]
    mine = rt.control.state(rt.instance)
    impact = f"{rt.instance.name} is {'up' if mine.healthy else 'DOWN'}; other instances serving: {serving or 'none'}"
    t.decide("route", "ops team", "environments and packages are the ops team's")
    return DependencyAssessment(
        **t.stamp(impact),
        scope="instance",
        impact=impact,
        team=anomaly_info(rt.ctx.anomaly).team.value,
        serving=serving,
    )


def evidence(
    rt: Runtime, confirmed: DependencyConfirmation, assessed: DependencyAssessment
) -> DependencyFindings:
    """Import errors from the service log beside the environment report → the diagnosis."""
    t = StepTimer(Step.EVIDENCE)
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
    diagnosis, reason = diagnose_environment(confirmed.report)
    system_evidence(rt, t)
    t.decide("diagnosis", diagnosis, reason)
    return DependencyFindings(
        **t.stamp(f"{diagnosis}: {reason}"),
        diagnosis=diagnosis,
        reason=reason,
        healthy_others=len(assessed.serving),
    )
