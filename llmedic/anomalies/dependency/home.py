"""The dependency-conflict home's steps: describe the environment with the service's own
interpreter, read the import errors in its log, drain it, reproduce by building a scratch
environment from the lock and import-testing it, verify, put the instance back."""

from __future__ import annotations

from llmedic.adapters.pyenv import try_lock_env
from llmedic.anomalies.base import Home, Isolation
from llmedic.anomalies.common import contain_instance, drain_if, release_drain
from llmedic.anomalies.dependency.diagnosis import Diagnosis
from llmedic.anomalies.dependency.environment import broken_requirements
from llmedic.anomalies.dependency.evidence import assess, confirm, evidence, service_paths
from llmedic.anomalies.dependency.results import (
    DependencyAssessment,
    DependencyConfirmation,
    DependencyFindings,
    LockReproduction,
)
from llmedic.anomalies.dependency.verify import verify
from llmedic.anomalies.runtime import Runtime, StepTimer
from llmedic.incident import Step
from llmedic.playbook import DependencySettings

__all__ = ["HOME", "contain", "isolate", "reproduce"]


def isolate(rt: Runtime, found: DependencyFindings) -> Isolation:
    """Drain the instance before its environment is changed (when enough others serve)."""
    return drain_if(
        rt,
        found.diagnosis,
        Diagnosis.DRIFT_FROM_LOCK,
        found.healthy_others,
        rt.settings_as(DependencySettings).min_healthy_instances,
        "the lock is matched; re-pinning would change nothing",
    )


def contain(rt: Runtime, found: DependencyFindings, scope: str) -> Isolation:
    """A fix refused, failed or rejected: the instance with the broken environment still leaves
    rotation when the others carry the traffic."""
    return contain_instance(
        rt, found.healthy_others, rt.settings_as(DependencySettings).min_healthy_instances, scope
    )


def reproduce(rt: Runtime) -> LockReproduction:
    """Build a scratch virtual environment from the lock and import-test it (the live one is not
    touched): does the lock import where the live environment does not?"""
    s = rt.settings_as(DependencySettings)
    t = StepTimer(Step.REPRODUCE)
    python, lock = service_paths(rt)
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
    return LockReproduction(
        **t.stamp(
            "the lock builds and imports cleanly: re-pinning fixes it"
            if ok
            else f"the lock itself fails: {env.detail}"
        ),
        reproduced=ok,
        lock_ok=ok,
    )


HOME: Home[DependencyConfirmation, DependencyAssessment, DependencyFindings] = Home(
    diagnosis=Diagnosis,
    confirm=confirm,
    assess=assess,
    evidence=evidence,
    isolate=isolate,
    reproduce=reproduce,
    verify=verify,
    release=release_drain,
    contain=contain,
)
