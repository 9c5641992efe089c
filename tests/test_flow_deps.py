"""The dependency_conflict flow against a real throw-away virtual environment: a bad deploy installs
a version off the lock, the restarted worker cannot import and stays down; the flow confirms it with
the environment's own interpreter (pip-check result, lock diff, import test), finds the import error
in the service log, builds a scratch environment from the lock that imports, re-pins after approval
and the worker comes back. An environment that matches its lock is a false positive."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from llmedic.alerts import Alert
from llmedic.anomalies.dependency.environment import (
    broken_requirements,
    diff_lock,
    import_failures,
    parse_lock,
)
from llmedic.catalog import AnomalyType
from llmedic.incident import IncidentRequest, Outcome, utcnow
from llmedic_sandbox.pyenv import BrokenEnv, service_env
from tests.conftest import Fleet
from tests.flowrun import approve, run_flow

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture(scope="module")
def pyenv(tmp_path_factory: pytest.TempPathFactory) -> BrokenEnv:
    return service_env(tmp_path_factory.mktemp("pyenv"))


@pytest.fixture
def configured(
    sandbox: Fleet, pyenv: BrokenEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> BrokenEnv:
    pyenv.install("-r", str(pyenv.lock))  # healthy at the start of every test
    env = yaml.safe_load(sandbox.config.read_text())
    env["services"][0].update(
        {
            "python": str(pyenv.python),
            "lock_file": str(pyenv.lock),
            "wheelhouse": str(pyenv.wheelhouse),
            "imports": ["vertical_core"],
        }
    )
    (tmp_path / "llmedic.yaml").write_text(yaml.safe_dump(env))
    monkeypatch.setenv("LLMEDIC_CONFIG", str(tmp_path / "llmedic.yaml"))
    sandbox.admin("sandbox-1", "env", {"python": str(pyenv.python), "imports": ["vertical_core"]})
    return pyenv


def request() -> IncidentRequest:
    alert = Alert(
        source="manual",
        anomaly=AnomalyType.DEPENDENCY_CONFLICT,
        alertname="WorkerImportError",
        target="sandbox-1",
        starts_at=utcnow(),
    )
    return IncidentRequest(alert=alert)


def flow() -> Any:
    from flows.dependency_conflict import dependency_conflict

    return dependency_conflict


def evidence(inc: Any, name: str) -> dict[str, Any]:
    return next(e for e in inc.evidence if e.name == name).data  # type: ignore[no-any-return]


def test_a_bad_deploy_is_repinned_to_the_lock(sandbox: Fleet, configured: BrokenEnv) -> None:
    configured.install("vertical-utils==3.1")  # the bad deploy
    sandbox.admin("sandbox-1", "restart")  # the worker restarts into it and cannot import
    assert sandbox.state("sandbox-1")["healthy"] is False
    state, inc = run_flow(flow(), request(), approve(), timeout=300)
    assert state.is_completed(), inc.escalation_reason
    assert inc.outcome == Outcome.RESOLVED and inc.diagnosis.startswith("drift_from_lock")
    report = evidence(inc, "environment")
    assert report["broken"] == [
        "vertical-core 1.0 has requirement vertical-utils<3,>=2, but you have vertical-utils 3.1."
    ]
    assert report["lock_diff"] == ["vertical-utils: locked 2.4, installed 3.1"]
    assert report["failed_imports"]["vertical_core"].startswith("ImportError: cannot import name 'normalize'")
    logged = evidence(inc, "import_errors_in_log")["import_errors"]
    assert any(
        k.startswith("ImportError: cannot import name 'normalize' from 'vertical_utils'") for k in logged
    )
    assert evidence(inc, "lock_environment")["imports"] == {"vertical_core": "ok"}
    (appr,) = inc.approvals
    assert (appr.action, appr.by) == ("repin_to_lock", "alice")
    fix = next(a for a in inc.actions if a.name == "repin_to_lock")
    assert fix.result == "re-pinned to the lock: ['vertical-utils']; sandbox-1 restarted"
    assert fix.compensation_params == {"pins": {"vertical-core": "1.0", "vertical-utils": "3.1"}}
    assert sandbox.state("sandbox-1")["healthy"] is True


def test_an_environment_on_its_lock_is_a_false_positive(sandbox: Fleet, configured: BrokenEnv) -> None:
    state, inc = run_flow(flow(), request(), timeout=120)
    assert state.is_completed() and inc.outcome == Outcome.FALSE_POSITIVE
    assert inc.actions == []


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("torch==2.4.0\nvllm>=0.6\n", "lock:2: 'vllm>=0.6' is not an exact pin (name==version)"),
        ("# only comments\n", "lock: no pins found"),
    ],
)
def test_bad_lock_files_name_the_line(text: str, error: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_lock(text, "lock")
    assert str(err.value) == error


def test_pip_check_semantics() -> None:
    dists = {
        "a": {
            "name": "a",
            "version": "1.0",
            "requires": ["b>=2", "c; python_version < '3.0'", "d[x]==1.0; extra == 'gpu'"],
        },
        "b": {"name": "b", "version": "1.5", "requires": ["missing-pkg"]},
    }
    assert broken_requirements(dists, "3.11.7") == [
        "a 1.0 has requirement b>=2, but you have b 1.5.",
        "b 1.5 requires missing-pkg, which is not installed.",
    ]
    diff = diff_lock(dists, {"a": "1.0", "b": "2.0", "e": "1.0"})
    assert diff.lines() == ["b: locked 2.0, installed 1.5", "e: locked, not installed"]


def test_import_failures_in_a_log() -> None:
    log = (
        "INFO started\nModuleNotFoundError: No module named 'flash_attn'\n"
        "ModuleNotFoundError: No module named 'flash_attn'\n"
        "ImportError: cannot import name 'normalize' from 'vertical_utils' (/venv/lib/vertical_utils/__init__.py)\n"
    )
    assert import_failures(log) == {
        "ModuleNotFoundError: No module named 'flash_attn'": 2,
        "ImportError: cannot import name 'normalize' from 'vertical_utils'": 1,
    }
