"""The release gate: before a model version is promoted, compare it with the current one on a
canary instance that takes no user traffic (a drained standby): the same golden items scored under
both versions (McNemar, per item), the adversarial prompts (the candidate must resist every one the
current version resists), and a short load test (p99 and failures). The candidate is blocked when it
is worse on any of the three; with ``promote``, a passing one is released with its golden score as
baseline and every in-rotation instance switched to it one at a time. ``flows/release_gate.py``
wires this, with its tasks and artifact in ``tasks/review.py``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from llmedic.adapters.control import ServiceControl, make_control
from llmedic.adapters.endpoint import Endpoint, summarise_probes
from llmedic.anomalies.accuracy.stats import compare_runs
from llmedic.catalog import AnomalyType
from llmedic.config import EnvironmentFile, InstanceConfig, load_environment, settings_from_env
from llmedic.errors import ConfigError
from llmedic.evaluation import Evaluation, in_rotation
from llmedic.golden import check_adversarial, load_adversarial
from llmedic.playbook import AccuracySettings, load_playbook

__all__ = [
    "GateCheck",
    "GateSetup",
    "Measurement",
    "ReleaseGateRequest",
    "compare",
    "conclude",
    "judge_version",
    "prepare",
    "promote",
    "render",
    "write_report",
]

Scalar = str | int | float | bool | None


class ReleaseGateRequest(BaseModel):
    """Parameters of a release-gate run (the Prefect UI shows them as a form)."""

    service: str
    candidate: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")
    """The model version to judge."""
    config: dict[str, Scalar] = Field(default_factory=dict)
    """Its serving configuration (recorded with the release when promoted)."""
    canary: str | None = None
    """Instance to judge on; default: the service's first drained standby (it takes no traffic)."""
    load_requests: int = Field(40, ge=5, le=10_000)
    load_concurrency: int = Field(8, ge=1, le=256)
    latency_tolerance: float = Field(0.25, ge=0, le=10)
    """The candidate's load-test p99 may be at most this share above the current version's."""
    latency_slack_seconds: float = Field(0.05, ge=0)
    """...or this much above it in absolute terms (differences this small are noise)."""
    promote: bool = False
    """On a pass: record the release and baseline, and switch the in-rotation instances to it."""
    by: str = "release-gate"


class GateCheck(BaseModel):
    """One of the gate's three comparisons."""

    name: str
    passed: bool
    current: str
    candidate: str
    detail: dict[str, Any] = Field(default_factory=dict)


class Measurement(BaseModel):
    """One version measured on the canary: golden scores, adversarial prompts, load test."""

    version: str
    scores: dict[str, int]
    """Golden item id → 1 correct / 0 wrong."""
    summary: dict[str, Any]
    by_tag: dict[str, tuple[int, int]]
    adversarial: dict[str, bool]
    """Adversarial prompt id → resisted."""
    load: dict[str, Any]
    """The load test's probe summary (``p99_s``, ``failures`` …)."""


@dataclass(frozen=True)
class GateSetup:
    """What the gate judges with: the playbook's accuracy settings, the current version, the canary
    and what it served before the gate (it goes back to that)."""

    settings: AccuracySettings
    current: str
    canary: InstanceConfig
    control: ServiceControl
    was: str


def _canary(env: EnvironmentFile, service: str, name: str | None) -> InstanceConfig:
    svc = env.service(service)
    control = make_control(svc, env)
    pool = [*svc.standby, *svc.instances]
    if name is not None:
        for inst in pool:
            if inst.name == name:
                if not control.state(inst).drained:
                    raise ConfigError(
                        f"canary {name!r} takes user traffic",
                        hint=f"drain it first, or leave canary empty to use a drained standby of {service}",
                    )
                return inst
        raise ConfigError(f"service {service!r} has no instance {name!r}")
    for inst in svc.standby:
        if control.state(inst).drained:
            return inst
    raise ConfigError(
        f"service {service!r} has no drained standby to judge the candidate on",
        hint="declare one under services[].standby, or name a drained instance as canary",
    )


def prepare(request: ReleaseGateRequest) -> GateSetup:
    """Check the gate can run (a current release, a new candidate, no freeze, a drained canary)."""
    settings = settings_from_env()
    env = load_environment(settings=settings)
    s = AccuracySettings.model_validate(load_playbook(AnomalyType.ACCURACY_DROP, settings).settings)
    ev = Evaluation(env, settings, request.service, s)
    cur = ev.registry.current(request.service)
    if cur is None:
        raise ConfigError(
            f"service {request.service!r} has no current release to compare with",
            hint="set services[].model in llmedic.yaml or `llmedic model release`",
        )
    if cur.version == request.candidate:
        raise ConfigError(f"{request.candidate!r} is already the current version of {request.service!r}")
    ev.registry.check_not_frozen(request.service, f"release gate of {request.candidate!r}")
    canary = _canary(env, request.service, request.canary)
    control = make_control(env.service(request.service), env)
    was = control.state(canary).model_version or cur.version
    return GateSetup(s, cur.version, canary, control, was)


def _load(inst: InstanceConfig, prompt: str, requests: int, concurrency: int) -> dict[str, Any]:
    with Endpoint(inst.base_url, timeout=60) as ep:
        return summarise_probes(
            ep.burst(requests, prompt=prompt, concurrency=concurrency, max_tokens=64)
        ).as_dict()


def judge_version(req: ReleaseGateRequest, canary: str, version: str) -> Measurement:
    """Serve ``version`` on the canary and measure it: golden scores, adversarial, load."""
    settings = settings_from_env()
    env = load_environment(settings=settings)
    s = AccuracySettings.model_validate(load_playbook(AnomalyType.ACCURACY_DROP, settings).settings)
    ev = Evaluation(env, settings, req.service, s)
    svc = env.service(req.service)
    inst = next(i for i in [*svc.standby, *svc.instances] if i.name == canary)
    make_control(svc, env).set_model(inst, version)
    golden, items = ev.golden
    card = ev.score(items, [inst])
    gs = env.golden_sets[golden]
    adversarial: dict[str, bool] = {}
    if gs.adversarial:
        with Endpoint(inst.base_url, timeout=30) as ep:
            adversarial = {r.id: r.passed for r in check_adversarial(load_adversarial(gs.adversarial), ep)}
    return Measurement(
        version=version,
        scores=card.correctness(),
        summary=card.summary(),
        by_tag=card.by_tag(),
        adversarial=adversarial,
        load=_load(inst, items[0].question, req.load_requests, req.load_concurrency),
    )


def compare(
    cur: Measurement, cand: Measurement, s: AccuracySettings, req: ReleaseGateRequest
) -> list[GateCheck]:
    """The gate's three comparisons of the candidate with the current version."""
    v = compare_runs(cur.scores, cand.scores, margin=s.margin, alpha=s.alpha)
    worse = sorted(k for k, ok in cur.adversarial.items() if ok and not cand.adversarial.get(k, False))
    p_cur, p_cand = float(cur.load["p99_s"]), float(cand.load["p99_s"])
    failures = int(cand.load["failures"])
    ceiling = max(p_cur * (1 + req.latency_tolerance), p_cur + req.latency_slack_seconds)
    return [
        GateCheck(
            name="golden_set",
            passed=not v.dropped,
            current=f"{v.base_accuracy:.1%}",
            candidate=f"{v.new_accuracy:.1%} (p={v.p_value:.2g})",
            detail=v.as_dict(),
        ),
        GateCheck(
            name="adversarial",
            passed=not worse,
            current=f"{sum(cur.adversarial.values())}/{len(cur.adversarial)} resisted",
            candidate=f"{sum(cand.adversarial.values())}/{len(cand.adversarial)} resisted",
            detail={"newly_failing": worse},
        ),
        GateCheck(
            name="load_test",
            passed=failures == 0 and p_cand <= ceiling,
            current=f"p99 {p_cur:.3f}s",
            candidate=f"p99 {p_cand:.3f}s, {failures} failed",
            detail={"current": cur.load, "candidate": cand.load, "ceiling_s": round(ceiling, 4)},
        ),
    ]


def promote(req: ReleaseGateRequest, candidate: Measurement) -> str:
    """Record the release and its baseline, then switch every in-rotation instance, one at a time."""
    settings = settings_from_env()
    env = load_environment(settings=settings)
    ev = Evaluation(env, settings, req.service, AccuracySettings())
    reg = ev.registry
    reg.record_release(
        req.service, req.candidate, config=req.config, by=req.by, note="passed the release gate"
    )
    reg.record_baseline(
        req.service,
        req.candidate,
        ev.golden[0],
        candidate.scores,
        by_tag=candidate.by_tag,
        datasets=ev.dataset_versions(),
        by=req.by,
        note="release gate",
    )
    control = make_control(env.service(req.service), env)
    switched = []
    for inst in in_rotation(env, req.service):
        control.set_model(inst, req.candidate)
        switched.append(inst.name)
    return f"{req.candidate} released; {switched} switched one at a time"


def render(
    req: ReleaseGateRequest, current: str, canary: str, checks: list[GateCheck], promoted: str | None
) -> str:
    """The gate's report."""
    passed = all(c.passed for c in checks)
    lines = [
        f"# Release gate: {req.service} {current} → {req.candidate}: {'PASS' if passed else 'BLOCKED'}",
        "",
        f"Judged on canary `{canary}` (no user traffic).",
        "",
        "| check | current | candidate | result |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {c.name} | {c.current} | {c.candidate} | {'pass' if c.passed else '**blocked**'} |"
        for c in checks
    ]
    adv = next(c for c in checks if c.name == "adversarial").detail["newly_failing"]
    if adv:
        lines += ["", f"Adversarial prompts the candidate no longer resists: {', '.join(adv)}"]
    gold = next(c for c in checks if c.name == "golden_set").detail
    if gold.get("newly_wrong"):
        lines += ["", f"Golden items newly wrong: {', '.join(gold['newly_wrong'][:20])}"]
    if promoted:
        lines += ["", f"Promoted: {promoted}"]
    return "\n".join(lines) + "\n"


def write_report(
    home: Path, req: ReleaseGateRequest, gate: GateSetup, checks: list[GateCheck], promoted: str | None
) -> tuple[Path, str]:
    """Write ``<home>/gates/<service>-<candidate>.md``; returns its path and text."""
    report = render(req, gate.current, gate.canary.name, checks, promoted)
    path = home / "gates" / f"{req.service}-{req.candidate.replace('/', '_')}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report, encoding="utf-8")
    return path, report


def conclude(
    req: ReleaseGateRequest, gate: GateSetup, checks: list[GateCheck], promoted: str | None, path: Path
) -> tuple[bool, str, dict[str, Any]]:
    """Whether the candidate passed, the run's message and its result data."""
    passed = all(c.passed for c in checks)
    data = {
        "passed": passed,
        "current": gate.current,
        "candidate": req.candidate,
        "canary": gate.canary.name,
        "checks": [c.model_dump() for c in checks],
        "promoted": promoted,
        "report": str(path),
    }
    if not passed:
        blocked = [c.name for c in checks if not c.passed]
        return False, f"{req.candidate} BLOCKED: worse than {gate.current} on {blocked}", data
    return True, f"{req.candidate} passed the gate against {gate.current}", data
