"""Playbooks: the policy of each anomaly flow, as YAML operators edit without touching code.

A playbook sets the thresholds, the retries and timeouts of each step, the fix options with their
risk, which risks need an approval and who may give it, and the verification criteria. Files are
validated strictly (``extra="forbid"``): a typo is an error naming the file, the line and the fix,
never a silently ignored key.

Shipped playbooks live in the ``playbooks`` package; ``LLMEDIC_PLAYBOOKS_DIR`` may hold files with
the same names that replace them.
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from llmedic.actions import actions_for
from llmedic.anomalies import diagnoses_of
from llmedic.catalog import AnomalyType, Risk, parse_anomaly
from llmedic.config import Settings
from llmedic.errors import PlaybookError
from llmedic.incident import Step
from llmedic.remediation import RemediationPolicy
from llmedic.yamlfile import format_loc, load_model, validate_model

__all__ = [
    "DEFAULT_PROBE_PROMPT",
    "NEVER_RETRIED",
    "REMOVED_KEYS",
    "AccuracySettings",
    "ApprovalPolicy",
    "DataSettings",
    "DependencySettings",
    "FixOption",
    "GpuSettings",
    "LatencySettings",
    "MemoryLeakSettings",
    "NetworkSettings",
    "Playbook",
    "RemediationPolicy",
    "StepPolicy",
    "load_all_playbooks",
    "load_playbook",
    "playbook_files",
]


NEVER_RETRIED: frozenset[Step] = frozenset({Step.FIX, Step.ROLLBACK})
"""Steps that change production. A retry after a half-applied change could apply it twice (and
Prefect's retries cannot know what the first attempt did), so these run once whatever a playbook
says: a playbook asking for retries is refused, and ``tasks/runtime.py::run_step`` forces 0."""

DEFAULT_PROBE_PROMPT = "Reply with the single word: ok."
"""The synthetic request every probe and canary sends unless the playbook names another: neutral,
so that no service-specific content is built into llmedic (set ``probe_prompt`` / ``canary_prompt``
to a short request typical of your domain)."""

REMOVED_KEYS: dict[str, str] = {
    "evidence": "the top-level `evidence:` list was removed (nothing read it: each flow collects "
    "the evidence its steps need); delete the key",
    "settings.change_window_hours": "accuracy_drop `change_window_hours` was removed (nothing read "
    "it: suspects are the releases and dataset versions since the baseline); delete the key",
    "settings.retry_attempts": "network_interruption `retry_attempts` was removed (nothing read it); "
    "delete it and set `attempts` in the params of the retry_with_backoff / resume_sync fix",
    "settings.retry_backoff_seconds": "network_interruption `retry_backoff_seconds` was removed "
    "(nothing read it); delete it and set `backoff_seconds` in the params of the "
    "retry_with_backoff / resume_sync fix",
}
"""Keys earlier playbook versions had, with what to do instead (shown when a file still has one)."""


def _nested_error(kind: str, message: str, loc: tuple[int | str, ...], value: Any) -> ValidationError:
    # A ValidationError raised inside a field validator keeps its locations under the field's, so
    # the file:line of the error points at the offending entry, not at the top of the section.
    return ValidationError.from_exception_data(
        "Playbook",
        [InitErrorDetails(type=PydanticCustomError(kind, message), loc=loc, input=value)],
    )


class _Strict(BaseModel):
    # Field docstrings become descriptions: error messages, JSON schema and the generated reference.
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class StepPolicy(_Strict):
    """Retries and timeout of one step's task."""

    retries: int = Field(1, ge=0, le=10)
    """Retries after a failed attempt (default 1; ``fix`` and ``rollback`` are never retried and
    refuse any value but 0)."""
    retry_delay_seconds: float = Field(2.0, ge=0, le=3600)
    timeout_seconds: float = Field(120.0, gt=0, le=86400)


class FixOption(_Strict):
    """One way to fix the anomaly."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    action: str
    """The action the fix performs (an action known to the anomaly type)."""
    risk: Risk
    """Risk of the change; the approval policy decides which risks need a human."""
    when: list[str] = Field(min_length=1)
    """Diagnoses this fix applies to (first matching fix in file order wins)."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Parameters for the action (e.g. a target concurrency)."""
    description: str = ""
    """What the fix does, shown at the approval gate."""


class ApprovalPolicy(_Strict):
    """Who must approve what, and for how long a gate waits."""

    required_for: list[Risk] = Field(default_factory=lambda: [Risk.MEDIUM, Risk.HIGH])
    """Risks that need an approval before the fix runs."""
    timeout_minutes: float = Field(30.0, gt=0, le=7 * 24 * 60)
    """A gate without a decision by then is rejected and escalated."""
    approvers: list[str] = Field(default_factory=list)
    """Names allowed to decide, each verified: a token proof (CLI, HTTP) or the one-time code sent to
    their own route (Prefect UI). Empty: any name counts, recorded unverified."""
    max_attempts: int = Field(10, ge=1, le=100)
    """Refused decisions (wrong, reused or expired code or proof, a name outside ``approvers``) a gate
    takes before it rejects the fix and escalates (fail-safe: junk typed into the form can force a
    human to look, never apply a fix); below the bound a refused attempt changes nothing."""

    def needs_approval(self, risk: Risk) -> bool:
        """Does a fix of this risk need a human decision?"""
        return risk in self.required_for

    def may_approve(self, who: str) -> bool:
        """Is ``who`` allowed to approve?"""
        return not self.approvers or who in self.approvers


class LatencySettings(_Strict):
    """Thresholds of the latency playbook."""

    slo_p99_seconds: float = Field(gt=0)
    """End-to-end p99 the service must stay under."""
    slo_ttft_p99_seconds: float | None = Field(None, gt=0)
    confirm_probes: int = Field(8, ge=1, le=500)
    reproduce_probes: int = Field(12, ge=1, le=500)
    verify_probes: int = Field(20, ge=3, le=1000)
    probe_concurrency: int = Field(4, ge=1, le=64)
    probe_prompt: str = DEFAULT_PROBE_PROMPT
    """The synthetic request used to probe the service (short; a request typical of your domain
    measures what users see)."""
    probe_max_tokens: int = Field(16, ge=1, le=4096)
    probe_timeout_seconds: float = Field(30.0, gt=0)
    queue_threshold: float = Field(2.0, ge=0)
    """Mean waiting requests above which the instance is queueing."""
    kv_cache_threshold: float = Field(0.9, gt=0, le=1)
    fleet_share_threshold: float = Field(0.5, gt=0, le=1)
    """Share of instances over the SLO at which the problem is fleet-wide."""
    min_healthy_instances: int = Field(1, ge=0)
    """Never drain if fewer healthy instances than this would remain."""
    itl_p99_threshold_seconds: float = Field(0.05, gt=0)
    """Inter-token p99 above which a fleet-wide slowdown without queueing is slow decoding (compute),
    cured by a faster (quantised) model variant rather than by more instances."""


class DataSettings(_Strict):
    """Thresholds of the three data playbooks (the audit thresholds themselves are per dataset, in
    ``llmedic.yaml``)."""

    drop_max_share: float = Field(0.05, gt=0, le=1)
    """Missing values in at most this share of rows: diagnosed ``sparse_missing`` (drop the rows)."""
    rollback_row_share: float = Field(0.3, gt=0, le=1)
    """Problems in more than this share of rows, or a column missing in more than this share:
    the batch is broken (``batch_broken``) and is rolled back rather than repaired."""
    sample_rows: int = Field(5, ge=0, le=100)
    """Affected rows shown in the evidence (secret columns masked)."""
    bisect: bool = True
    """Find the first version in the lineage with the defect."""
    bisect_max_versions: int = Field(64, ge=1, le=10_000)


class MemoryLeakSettings(_Strict):
    """Thresholds of the memory-leak playbook (see llmedic/anomalies/memory_leak/detector.py for the tests)."""

    window_seconds: float = Field(3600, gt=0)
    """Prometheus: the range judged (ending now). Direct scrape: how long to sample."""
    memory_source: Literal["metrics", "process"] = "metrics"
    """``metrics``: ``process_resident_memory_bytes`` from the metrics source; ``process``: the
    serving process read on its host through the control plane (the ``rss`` command: ``ps``/``/proc``)."""
    sample_interval_seconds: float = Field(15, gt=0)
    warmup_seconds: float = Field(0, ge=0)
    """Cut off the start of the window (model load, KV-cache pre-allocation)."""
    min_samples: int = Field(30, ge=10)
    p_value: float = Field(0.01, gt=0, lt=1)
    horizon_hours: float = Field(24, gt=0)
    min_growth_share: float = Field(0.05, gt=0, le=1)
    """Growth within the horizon that matters, as a share of the limit (or of the current level)."""
    limit_bytes: float | None = Field(None, gt=0)
    """The instance's memory limit (container or host); without one, growth is judged against the level."""
    fleet_share_threshold: float = Field(0.5, gt=0, le=1)
    """Share of in-rotation instances leaking at which the leak is the release's, not one process's."""
    min_healthy_instances: int = Field(1, ge=0)
    reproduce_requests: int = Field(20, ge=1, le=10_000)
    """Requests sent to the drained instance while its memory is sampled."""
    probe_prompt: str = DEFAULT_PROBE_PROMPT
    """The request sent to reproduce the leak and exercise the instance during verification."""
    verify_seconds: float = Field(30, gt=0)
    baseline_tolerance: float = Field(0.1, ge=0, le=1)
    """After the fix, memory must be within this share above the baseline fitted before the leak."""


class AccuracySettings(_Strict):
    """Thresholds of the accuracy-drop playbook (llmedic/anomalies/accuracy/stats.py has the tests)."""

    sample_size: int | None = Field(None, ge=10)
    """Golden items re-scored to confirm (stratified by first tag); null: the whole set."""
    margin: float = Field(0.05, gt=0, lt=1)
    """A drop matters from this much (absolute share correct); smaller ones are noise to us."""
    alpha: float = Field(0.05, gt=0, lt=1)
    """Significance of the one-sided test (McNemar when the same items are re-scored)."""
    min_accuracy: float | None = Field(None, gt=0, le=1)
    """Without any baseline: confirm when the Wilson upper bound falls below this accuracy."""
    f1_threshold: float = Field(0.8, gt=0, le=1)
    """An answer counts as correct when it matches exactly or its token F1 reaches this."""
    concurrency: int = Field(8, ge=1, le=256)
    max_tokens: int = Field(64, ge=1, le=4096)
    request_timeout_seconds: float = Field(30, gt=0)
    max_error_share: float = Field(0.2, ge=0, le=1)
    """More failed requests than this share: the score is refused (an availability problem)."""
    worst_items: int = Field(10, ge=0, le=200)
    """Newly wrong items shown in the evidence, with the question, expected and given answers."""
    prompt_sample: int = Field(500, ge=0, le=2000)
    """Recent user prompts compared with the golden questions for drift (0: skip)."""
    reproduce_repeats: int = Field(2, ge=1, le=10)
    """Each newly wrong item is asked this many more times on the incident's instance."""


class GpuSettings(_Strict):
    """Thresholds of the GPU-fault playbook (the XID table is in llmedic/anomalies/gpu/diagnosis.py)."""

    canary_prompt: str = DEFAULT_PROBE_PROMPT
    """The completion asked of the canary after the fix: it must answer, and answer in time."""
    canary_requests: int = Field(3, ge=1, le=100)
    """Completions sent to the instance to see whether it still serves."""
    min_healthy_instances: int = Field(1, ge=0)
    """Never drain if fewer healthy instances than this would remain."""
    request_timeout_seconds: float = Field(30, gt=0)


class DependencySettings(_Strict):
    """Thresholds of the dependency-conflict playbook."""

    probe_timeout_seconds: float = Field(120, gt=0)
    lock_env_timeout_seconds: float = Field(900, gt=0)
    """Building and import-testing a scratch environment from the lock."""
    check_torch_cuda: bool = False
    """Compare ``torch.version.cuda`` with the driver's CUDA (imports torch: slow)."""
    min_healthy_instances: int = Field(1, ge=0)
    canary_prompt: str = DEFAULT_PROBE_PROMPT
    """The completion asked of the canary after the fix: it must answer, and answer in time."""


class NetworkSettings(_Strict):
    """Thresholds of the network-interruption playbook."""

    tries: int = Field(6, ge=1, le=100)
    """TCP connects and HTTP requests per probe."""
    timeout_seconds: float = Field(2.0, gt=0, le=60)
    loss_threshold: float = Field(0.2, ge=0, lt=1)
    """This share of failed tries (or more) is an interruption."""
    latency_threshold_seconds: float = Field(1.0, gt=0)


# Anomaly-specific settings models; an anomaly without one takes a free-form mapping.
SETTINGS_MODELS: dict[AnomalyType, type[BaseModel]] = {
    AnomalyType.LATENCY: LatencySettings,
    AnomalyType.MEMORY_LEAK: MemoryLeakSettings,
    AnomalyType.ACCURACY_DROP: AccuracySettings,
    AnomalyType.GPU_FAULT: GpuSettings,
    AnomalyType.DEPENDENCY_CONFLICT: DependencySettings,
    AnomalyType.NETWORK_INTERRUPTION: NetworkSettings,
    AnomalyType.DATA_MISSING: DataSettings,
    AnomalyType.DATA_FORMAT: DataSettings,
    AnomalyType.DATA_QUALITY: DataSettings,
}


class Playbook(_Strict):
    """One playbook file."""

    anomaly: AnomalyType
    """The anomaly type this playbook handles (one file per type)."""
    version: int = Field(1, ge=1)
    """Bump on every change: archived incidents record the version they ran with."""
    description: str = ""
    """What the playbook does, for operators."""
    settings: dict[str, Any] = Field(default_factory=dict)
    """Thresholds and knobs of the anomaly type; checked against its settings model (below)."""
    steps: dict[Step, StepPolicy] = Field(default_factory=dict)
    """Retries and timeout per step; a step left out gets the defaults (``fix`` and ``rollback``:
    never retried)."""
    fixes: list[FixOption] = Field(min_length=1)
    approval: ApprovalPolicy = ApprovalPolicy()
    remediation: RemediationPolicy = RemediationPolicy()
    """Fixes tried per incident and the watch after recovery (``llmedic/remediation.py``)."""
    isolate: bool = True
    """Isolate (drain / quarantine) before reproducing, when it is safe to."""

    @field_validator("fixes")
    @classmethod
    def _unique_fix_names(cls, fixes: list[FixOption]) -> list[FixOption]:
        names = [f.name for f in fixes]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"fix names must be unique; repeated: {sorted(dup)}")
        return fixes

    @field_validator("steps")
    @classmethod
    def _changes_are_not_retried(cls, steps: dict[Step, StepPolicy]) -> dict[Step, StepPolicy]:
        for step in sorted(NEVER_RETRIED):
            policy = steps.get(step)
            if policy is not None and policy.retries:
                raise _nested_error(
                    "never_retried",
                    f"{step.value} is never retried (a retry could apply a change twice); set "
                    "retries: 0 or leave it out",
                    (step.value, "retries"),
                    policy.retries,
                )
        return steps

    @field_validator("settings")
    @classmethod
    def _typed_settings(cls, settings: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        model = SETTINGS_MODELS.get(info.data.get("anomaly"))  # type: ignore[arg-type]
        problems = _sub_errors(model, settings, "") if model is not None else []
        if problems:
            raise ValueError("; ".join(problems))
        return settings

    @field_validator("fixes")
    @classmethod
    def _known_actions(cls, fixes: list[FixOption], info: ValidationInfo) -> list[FixOption]:
        anomaly = info.data.get("anomaly")
        if anomaly is None:
            return fixes
        allowed = actions_for(anomaly)
        problems: list[str] = []
        for i, fix in enumerate(fixes):
            spec = allowed.get(fix.action)
            if spec is None:
                problems.append(
                    f"[{i}] ({fix.name}): action {fix.action!r} is not available to "
                    f"{anomaly.value} playbooks (available: {sorted(allowed)})"
                )
                continue
            problems += _sub_errors(spec.params, fix.params, f"[{i}].params.")
        if problems:
            raise ValueError("; ".join(problems))
        return fixes

    @field_validator("fixes")
    @classmethod
    def _known_diagnoses(cls, fixes: list[FixOption], info: ValidationInfo) -> list[FixOption]:
        anomaly = info.data.get("anomaly")
        if anomaly is None:
            return fixes
        valid = diagnoses_of(anomaly)
        for i, fix in enumerate(fixes):
            for j, name in enumerate(fix.when):
                if name not in valid:
                    # A name the flow cannot produce would leave the fix unreachable: refuse it.
                    raise _nested_error(
                        "unknown_diagnosis",
                        f"{name!r} is not a diagnosis of {anomaly.value} (valid: {', '.join(valid)})",
                        (i, "when", j),
                        name,
                    )
        return fixes

    def step_policy(self, step: Step) -> StepPolicy:
        """Retries/timeout for a step (defaults when the playbook says nothing; no retries for the
        steps that change production)."""
        default = StepPolicy(retries=0) if step in NEVER_RETRIED else StepPolicy()
        return self.steps.get(step, default)

    def typed_settings(self, model: type[Any]) -> Any:
        """The settings as their anomaly's model."""
        return model.model_validate(self.settings)

    def fix_for(self, diagnosis: str, tried: frozenset[str] = frozenset()) -> FixOption | None:
        """The first fix whose ``when`` lists the diagnosis (leaving out the names in ``tried``)."""
        return next((f for f in self.fixes if diagnosis in f.when and f.name not in tried), None)


def _sub_errors(model: type[BaseModel], data: Any, where: str) -> list[str]:
    try:
        model.model_validate(data)
    except ValidationError as exc:
        out: list[str] = []
        for e in exc.errors(include_url=False):
            loc = format_loc(e["loc"])
            removed = REMOVED_KEYS.get(f"settings.{loc}") if e["type"] == "extra_forbidden" else None
            msg = f"{e['msg']} ({removed})" if removed else e["msg"]
            got = "" if e["type"] in ("missing", "extra_forbidden") else f" (got {e.get('input')!r})"
            out.append(f"{where}{loc}: {msg}{got}")
        return out
    return []


def _hints(path: str, kind: str) -> str | None:
    if kind == "extra_forbidden" and path in REMOVED_KEYS:
        return REMOVED_KEYS[path]
    if kind == "unknown_diagnosis":
        return "list only diagnoses the anomaly type produces (docs/playbooks.md, Diagnoses)"
    if kind == "never_retried":
        return "fixes and rollbacks run once; verification decides whether they worked"
    if path.startswith("fixes") and kind == "value_error":
        return "see docs/playbooks.md for the actions each anomaly type may use"
    if path.startswith("steps"):
        return f"step names are: {', '.join(s.value for s in Step)}"
    return None


def _shipped_dir() -> Path:
    return Path(str(resources.files("playbooks")))


def playbook_files(settings: Settings | None = None) -> dict[AnomalyType, Path]:
    """Which file is used for each anomaly type (overrides first, then shipped)."""
    out: dict[AnomalyType, Path] = {}
    dirs = [_shipped_dir()]
    if settings and settings.playbooks_dir:
        if not settings.playbooks_dir.is_dir():
            raise PlaybookError(
                f"LLMEDIC_PLAYBOOKS_DIR={settings.playbooks_dir} is not a directory",
                hint="point it at a directory of <anomaly>.yaml files, or unset it",
            )
        dirs.append(settings.playbooks_dir)
    for directory in dirs:
        for path in sorted(directory.glob("*.yaml")):
            try:
                kind = parse_anomaly(path.stem)
            except Exception:
                raise PlaybookError(
                    f"{path}: file name {path.stem!r} is not an anomaly type",
                    hint="name playbook files <anomaly>.yaml, e.g. latency.yaml",
                ) from None
            out[kind] = path
    return out


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_playbook(
    anomaly: AnomalyType | str,
    settings: Settings | None = None,
    overrides: dict[str, Any] | None = None,
) -> Playbook:
    """Load, validate and (optionally) override the playbook of one anomaly type."""
    kind = anomaly if isinstance(anomaly, AnomalyType) else parse_anomaly(anomaly)
    files = playbook_files(settings)
    if kind not in files:
        raise PlaybookError(
            f"no playbook for anomaly type {kind.value!r}",
            hint=f"add {kind.value}.yaml to the playbooks directory",
        )
    path = files[kind]
    book = load_model(Playbook, path, error=PlaybookError, hints=_hints)
    if book.anomaly != kind:
        raise PlaybookError(
            f"{path}: declares anomaly {book.anomaly.value!r} but is named {path.name}",
            hint=f"set `anomaly: {kind.value}` or rename the file",
        )
    if overrides:
        merged = _merge(book.model_dump(mode="json"), overrides)
        book = validate_model(
            Playbook, merged, source=f"{path.name} + overrides", error=PlaybookError, hints=_hints
        )
    return book


def load_all_playbooks(settings: Settings | None = None) -> dict[AnomalyType, Playbook]:
    """Every playbook, validated (used by ``llmedic playbooks check`` and CI)."""
    return {kind: load_playbook(kind, settings) for kind in playbook_files(settings)}
