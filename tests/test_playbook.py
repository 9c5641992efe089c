import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from llmedic.anomalies import diagnoses_of
from llmedic.catalog import AnomalyType, Risk
from llmedic.config import Settings
from llmedic.errors import ControlError, PlaybookError
from llmedic.incident import Step
from llmedic.playbook import (
    DEFAULT_PROBE_PROMPT,
    REMOVED_KEYS,
    DependencySettings,
    GpuSettings,
    LatencySettings,
    MemoryLeakSettings,
    StepPolicy,
    load_all_playbooks,
    load_playbook,
)
from tasks.confirm import confirm as confirm_latency
from tasks.fix import apply_fix, compensate
from tasks.runtime import configured_step, run_step, step_task

SHIPPED = Path(__file__).resolve().parents[1] / "playbooks" / "latency.yaml"


def test_every_shipped_playbook_validates() -> None:
    books = load_all_playbooks()
    assert AnomalyType.LATENCY in books
    latency = books[AnomalyType.LATENCY]
    assert [(f.name, f.risk) for f in latency.fixes] == [
        ("lower_concurrency", Risk.LOW),
        ("restart_instance", Risk.HIGH),
        ("switch_to_quantised", Risk.HIGH),
        ("scale_out", Risk.HIGH),
    ]
    assert set(books) == {
        AnomalyType.DATA_MISSING,
        AnomalyType.DATA_FORMAT,
        AnomalyType.DATA_QUALITY,
        AnomalyType.LATENCY,
        AnomalyType.MEMORY_LEAK,
        AnomalyType.ACCURACY_DROP,
        AnomalyType.GPU_FAULT,
        AnomalyType.DEPENDENCY_CONFLICT,
        AnomalyType.NETWORK_INTERRUPTION,
    }
    assert latency.approval.needs_approval(Risk.HIGH) and not latency.approval.needs_approval(Risk.LOW)


@pytest.mark.parametrize(
    ("diagnosis", "fix"),
    [
        ("kv_cache_pressure", "lower_concurrency"),
        ("queueing", "lower_concurrency"),
        ("instance_degraded", "restart_instance"),
        ("slow_decode", "switch_to_quantised"),
        ("fleet_overload", "scale_out"),
        ("unknown", None),
    ],
)
def test_fix_for_diagnosis(diagnosis: str, fix: str | None) -> None:
    chosen = load_playbook("latency").fix_for(diagnosis)
    assert (chosen.name if chosen else None) == fix


def _override_dir(tmp_path: Path, old: str, new: str) -> Settings:
    text = SHIPPED.read_text()
    assert old in text
    (tmp_path / "latency.yaml").write_text(text.replace(old, new, 1))
    return Settings(playbooks_dir=tmp_path)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(
            "isolate: true",
            "isolate: true\nisolation: true",
            "latency.yaml:36: isolation: Extra inputs are not permitted",
            id="typo-key",
        ),
        pytest.param(
            "risk: high",
            "risk: extreme",
            "latency.yaml:47: fixes[1].risk: Input should be 'none', 'low', 'medium' or 'high' (got 'extreme')",
            id="bad-risk",
        ),
        pytest.param(
            "action: scale_out",
            "action: reboot_cluster",
            "latency.yaml:37: fixes: [3] (scale_out): action 'reboot_cluster' is not available to latency playbooks",
            id="unknown-action",
        ),
        pytest.param(
            "params: {replicas: 1}",
            "params: {replicas: 0}",
            "latency.yaml:37: fixes: [3].params.replicas: Input should be greater than or equal to 1 (got 0)",
            id="bad-params",
        ),
        pytest.param(
            "slo_p99_seconds: 2.0",
            "slo_p99_seconds: fast",
            "latency.yaml:10: settings: slo_p99_seconds: Input should be a valid number",
            id="bad-setting",
        ),
        pytest.param(
            "confirm:   {retries: 2",
            "confrim:   {retries: 2",
            "latency.yaml:26: steps.confrim: Input should be 'detect', 'confirm'",
            id="unknown-step",
        ),
    ],
)
def test_playbook_errors_name_file_line_and_fix(tmp_path: Path, old: str, new: str, expected: str) -> None:
    with pytest.raises(PlaybookError) as exc:
        load_playbook("latency", _override_dir(tmp_path, old, new))
    line = exc.value.message.splitlines()[1].strip()
    assert line.startswith(str(tmp_path) + "/" + expected), line


def test_file_name_must_match_anomaly(tmp_path: Path) -> None:
    (tmp_path / "gpu_fault.yaml").write_text(SHIPPED.read_text())
    with pytest.raises(PlaybookError) as exc:
        load_playbook("gpu_fault", Settings(playbooks_dir=tmp_path))
    assert (
        exc.value.message
        == f"{tmp_path / 'gpu_fault.yaml'}: declares anomaly 'latency' but is named gpu_fault.yaml"
    )


def test_file_name_must_be_an_anomaly(tmp_path: Path) -> None:
    (tmp_path / "slowness.yaml").write_text("anomaly: latency\n")
    with pytest.raises(PlaybookError) as exc:
        load_playbook("latency", Settings(playbooks_dir=tmp_path))
    assert exc.value.message == f"{tmp_path / 'slowness.yaml'}: file name 'slowness' is not an anomaly type"


def test_overrides_are_validated_too() -> None:
    book = load_playbook(
        "latency", overrides={"settings": {"slo_p99_seconds": 1.5}, "approval": {"timeout_minutes": 5}}
    )
    assert (book.settings["slo_p99_seconds"], book.approval.timeout_minutes) == (1.5, 5)
    with pytest.raises(PlaybookError) as exc:
        load_playbook("latency", overrides={"approval": {"timeout_minutes": -1}})
    assert "approval.timeout_minutes: Input should be greater than 0 (got -1)" in exc.value.message


def test_no_playbook_for_a_type(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every type ships a playbook; an installation that lost one says which and how to fix it.
    (tmp_path / "latency.yaml").write_text(SHIPPED.read_text())
    monkeypatch.setattr("llmedic.playbook._shipped_dir", lambda: tmp_path)
    with pytest.raises(PlaybookError) as exc:
        load_playbook("gpu_fault")
    assert exc.value.message == "no playbook for anomaly type 'gpu_fault'"


# --- fixes are never retried ------------------------------------------------------------------------

FIX_LINE = "  fix:       {retries: 0, timeout_seconds: 180}"


@pytest.mark.fault(
    tried="a playbook asking for retries on fix or rollback (file and run-time override)",
    survives="refused at load with file:line; a fix or rollback runs once whatever the policy says",
)
@pytest.mark.parametrize(
    ("new", "expected"),
    [
        pytest.param(
            "  fix:       {retries: 1, timeout_seconds: 180}",
            "latency.yaml:31: steps.fix.retries: fix is never retried (a retry could apply a change "
            "twice); set retries: 0 or leave it out (got 1)",
            id="fix",
        ),
        pytest.param(
            FIX_LINE + "\n  rollback:  {retries: 2, retry_delay_seconds: 5}",
            "latency.yaml:32: steps.rollback.retries: rollback is never retried (a retry could apply a "
            "change twice); set retries: 0 or leave it out (got 2)",
            id="rollback",
        ),
    ],
)
def test_a_playbook_asking_to_retry_a_change_is_refused(tmp_path: Path, new: str, expected: str) -> None:
    with pytest.raises(PlaybookError) as exc:
        load_playbook("latency", _override_dir(tmp_path, FIX_LINE, new))
    assert exc.value.message.splitlines()[1].strip() == f"{tmp_path}/{expected}"
    assert exc.value.hint == "fixes and rollbacks run once; verification decides whether they worked"


@pytest.mark.parametrize("step", ["fix", "rollback"])
def test_an_override_asking_to_retry_a_change_is_refused(step: str) -> None:
    with pytest.raises(PlaybookError) as exc:
        load_playbook("latency", overrides={"steps": {step: {"retries": 1}}})
    assert exc.value.message.splitlines()[1].strip() == (
        f"latency.yaml + overrides: steps.{step}.retries: {step} is never retried (a retry could apply "
        "a change twice); set retries: 0 or leave it out (got 1)"
    )


@pytest.mark.fault(
    tried="a custom playbook that leaves out steps.fix (the reported breakage: its fix was retried)",
    survives="fix and rollback default to 0 retries; other steps keep the default retry",
)
@pytest.mark.parametrize(
    ("step", "retries"),
    [(Step.FIX, 0), (Step.ROLLBACK, 0), (Step.CONFIRM, 1), (Step.VERIFY, 1), (Step.ARCHIVE, 1)],
)
def test_a_playbook_without_step_policies_never_retries_its_changes(
    tmp_path: Path, step: Step, retries: int
) -> None:
    # The reported breakage: a custom playbook that leaves `steps:` out took the default policy
    # (one retry) for its fix too.
    text = SHIPPED.read_text()
    start, end = text.index("steps:\n"), text.index("isolate: true")
    (tmp_path / "latency.yaml").write_text(text[:start] + text[end:])
    book = load_playbook("latency", Settings(playbooks_dir=tmp_path))
    assert book.steps == {}
    assert book.step_policy(step).retries == retries


@pytest.mark.parametrize(
    ("task", "retries"),
    [(apply_fix, 0), (compensate, 0), (confirm_latency, 5)],
    ids=["fix", "rollback", "confirm"],
)
def test_run_step_forces_no_retries_on_changes_whatever_the_policy(task: Any, retries: int) -> None:
    configured: Any = configured_step(task, StepPolicy(retries=5, retry_delay_seconds=3))
    assert configured.retries == retries
    assert configured.retry_delay_seconds == (0 if retries == 0 else 3)


_CALLS: dict[str, int] = {}


def _fails_first_time(token: str) -> str:
    _CALLS[token] = _CALLS.get(token, 0) + 1
    if _CALLS[token] == 1:
        raise ControlError("the first attempt fails half-way")
    return f"applied on attempt {_CALLS[token]}"


_flaky = {
    step: step_task(step, name=f"test-flaky-{step.value}")(_fails_first_time)
    for step in (Step.FIX, Step.ROLLBACK, Step.CONFIRM)
}


@pytest.mark.fault(
    tried="a fix (and a rollback) failing half-way under a policy of 3 retries, in a real Prefect flow",
    survives="called once and the run fails; a confirm step under the same policy is retried",
)
@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize(
    ("step", "calls", "completed"),
    [(Step.FIX, 1, False), (Step.ROLLBACK, 1, False), (Step.CONFIRM, 2, True)],
)
def test_a_failing_fix_runs_once_in_a_real_flow(step: Step, calls: int, completed: bool) -> None:
    from prefect import flow

    token = f"{step.value}-{uuid.uuid4().hex}"

    @flow(name="test-never-retried")
    def once() -> str:
        return run_step(_flaky[step], StepPolicy(retries=3, retry_delay_seconds=0), token)

    state = once(return_state=True)
    assert (state.is_completed(), _CALLS[token]) == (completed, calls)


# --- diagnoses ---------------------------------------------------------------------------------------


def test_a_fix_for_a_diagnosis_the_type_cannot_produce_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PlaybookError) as exc:
        load_playbook("latency", _override_dir(tmp_path, "when: [slow_decode]", "when: [no_such_diagnosis]"))
    assert exc.value.message.splitlines()[1].strip() == (
        f"{tmp_path}/latency.yaml:54: fixes[2].when[0]: 'no_such_diagnosis' is not a diagnosis of "
        "latency (valid: instance_degraded, kv_cache_pressure, queueing, slow_decode, fleet_overload, "
        "unknown) (got 'no_such_diagnosis')"
    )


# Diagnoses the shipped playbooks let escalate to a human on purpose; every other diagnosis of each
# type must be handled by a fix.
ESCALATES: dict[AnomalyType, set[str]] = {
    AnomalyType.DATA_MISSING: {"none"},
    AnomalyType.DATA_FORMAT: {"none"},
    AnomalyType.DATA_QUALITY: {"none"},
    AnomalyType.ACCURACY_DROP: {"prompt_drift", "unexplained"},
    AnomalyType.LATENCY: {"unknown"},
    AnomalyType.MEMORY_LEAK: set(),
    AnomalyType.GPU_FAULT: {"healthy", "unknown"},
    AnomalyType.DEPENDENCY_CONFLICT: {"cuda_mismatch", "import_failure", "unknown"},
    AnomalyType.NETWORK_INTERRUPTION: {"orchestrator_path", "healthy"},
}


@pytest.mark.parametrize("anomaly", list(AnomalyType))
def test_every_diagnosis_is_handled_or_deliberately_escalates(anomaly: AnomalyType) -> None:
    book = load_playbook(anomaly)
    handled = {d for f in book.fixes for d in f.when}
    assert (handled | ESCALATES[anomaly], handled & ESCALATES[anomaly]) == (set(diagnoses_of(anomaly)), set())
    assert {d: book.fix_for(d) for d in ESCALATES[anomaly]} == dict.fromkeys(ESCALATES[anomaly])


# --- removed keys ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("anomaly", "old", "new", "message", "hint"),
    [
        pytest.param(
            "latency",
            "isolate: true",
            "evidence: [percentiles, queue]\nisolate: true",
            "latency.yaml:35: evidence: Extra inputs are not permitted",
            REMOVED_KEYS["evidence"],
            id="evidence",
        ),
        pytest.param(
            "accuracy_drop",
            "  prompt_sample: 500",
            "  change_window_hours: 168\n  prompt_sample: 500",
            "accuracy_drop.yaml:13: settings: change_window_hours: Extra inputs are not permitted "
            f"({REMOVED_KEYS['settings.change_window_hours']})",
            None,
            id="change_window_hours",
        ),
        pytest.param(
            "network_interruption",
            "  tries: 6",
            "  tries: 6\n  retry_attempts: 5\n  retry_backoff_seconds: 1.0",
            "network_interruption.yaml:12: settings: retry_attempts: Extra inputs are not permitted "
            f"({REMOVED_KEYS['settings.retry_attempts']}); retry_backoff_seconds: Extra inputs are not "
            f"permitted ({REMOVED_KEYS['settings.retry_backoff_seconds']})",
            None,
            id="retry_attempts",
        ),
    ],
)
def test_removed_keys_say_they_were_removed(
    tmp_path: Path, anomaly: str, old: str, new: str, message: str, hint: str | None
) -> None:
    text = (SHIPPED.parent / f"{anomaly}.yaml").read_text()
    assert old in text
    (tmp_path / f"{anomaly}.yaml").write_text(text.replace(old, new, 1))
    with pytest.raises(PlaybookError) as exc:
        load_playbook(anomaly, Settings(playbooks_dir=tmp_path))
    assert exc.value.message.splitlines()[1].strip() == f"{tmp_path}/{message}"
    if hint is not None:
        assert exc.value.hint == hint


@pytest.mark.parametrize(
    ("model", "field"),
    [
        (LatencySettings, "probe_prompt"),
        (MemoryLeakSettings, "probe_prompt"),
        (GpuSettings, "canary_prompt"),
        (DependencySettings, "canary_prompt"),
    ],
)
def test_probe_prompts_are_neutral_by_default(model: type[BaseModel], field: str) -> None:
    assert model.model_fields[field].default == DEFAULT_PROBE_PROMPT == "Reply with the single word: ok."
