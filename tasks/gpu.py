"""The step tasks of the gpu_fault playbook.

Every step reads the same three things: the instance's GPUs (NVML, the host's ``gpu_snapshot``
command, or the fake scenario), the host's kernel log for XIDs (matched to a GPU by PCI bus id), and
a canary completion against the instance. ``llmedic/analysis/gpu_health.py`` turns them into a
diagnosis and the action the XID table and NVML's recovery hint call for.
"""

from __future__ import annotations

from typing import Any

from llmedic.adapters.endpoint import Endpoint
from llmedic.adapters.gpu import GpuSnapshot, dcgm_gpus, host_snapshot, kernel_log
from llmedic.analysis.gpu_health import (
    GpuAction,
    GpuVerdict,
    XidEvent,
    diagnose_gpu,
    parse_kernel_log,
    same_pci,
)
from llmedic.diagnoses import GpuDiagnosis
from llmedic.errors import LlmedicError
from llmedic.incident import Step, StepResult, VerificationCheck
from llmedic.playbook import GpuSettings
from tasks.evidence import system_evidence
from tasks.isolate import drain_if
from tasks.runtime import Runtime, StepContext, StepTimer, step_task
from tasks.verify import verification_result

__all__ = ["assess_gpu", "confirm_gpu", "evidence_gpu", "isolate_gpu", "reproduce_gpu", "verify_gpu"]


def _dcgm(rt: Runtime, t: StepTimer, mine: list[Any]) -> list[XidEvent]:
    """The host's DCGM exporter, when declared: its gauges as evidence, its last-XID gauges as events."""
    url = rt.env.host(rt.instance.host).dcgm_url
    if url is None:
        return []
    try:
        gpus = dcgm_gpus(str(url))
    except LlmedicError as exc:
        t.add("dcgm", "dcgm-exporter", f"DCGM exporter unreadable: {exc.message}", gap=True)
        return []
    ours = {k: v for k, v in gpus.items() if not mine or any(same_pci(k, d.pci_bus_id) for d in mine)}
    t.add(
        "dcgm",
        "dcgm-exporter",
        "; ".join(
            f"GPU {int(v.get('gpu', -1))}: {v.get('DCGM_FI_DEV_GPU_TEMP', float('nan')):g} °C, "
            f"util {v.get('DCGM_FI_DEV_GPU_UTIL', float('nan')):g}%, last XID {int(v.get('DCGM_FI_DEV_XID_ERRORS', 0))}"
            for v in ours.values()
        )
        or "no GPU of this instance in the exporter",
        {"gpus": ours},
    )
    return [
        XidEvent(pci, int(v["DCGM_FI_DEV_XID_ERRORS"]), "DCGM_FI_DEV_XID_ERRORS (last XID)")
        for pci, v in ours.items()
        if v.get("DCGM_FI_DEV_XID_ERRORS")
    ]


def _read(rt: Runtime, t: StepTimer, *, dcgm: bool = False) -> tuple[GpuSnapshot, list[XidEvent]]:
    host = rt.instance.host
    try:
        snap = host_snapshot(rt.env, host)
    except LlmedicError as exc:
        snap = GpuSnapshot(False, f"{exc.code}: {exc.message}")
    mine = [d for d in snap.devices if not rt.instance.gpus or d.index in rt.instance.gpus]
    snap.devices = mine
    t.add(
        "gpu_snapshot",
        "nvml",
        (
            f"{host}: driver {snap.driver}, CUDA {snap.cuda_driver}; "
            + "; ".join(
                f"GPU {d.index} {d.temperature_c} °C, util {d.utilisation_pct}%, ECC unc {d.ecc_uncorrected_volatile}, "
                f"remap {d.remapped_rows}, throttle {d.throttle_reasons or 'none'}, recovery {d.recovery_action}"
                + (" LOST" if d.lost else "")
                for d in mine
            )
        )
        if snap.available
        else f"{host}: no GPU reading: {snap.reason}",
        snap.as_dict(),
        gap=not snap.available,
    )
    try:
        text = kernel_log(rt.env, host)
    except LlmedicError as exc:
        text = None
        t.add("kernel_log_xids", "shell", f"kernel log unreadable: {exc.message}", gap=True)
    xids: list[XidEvent] = []
    if text is not None:
        xids = [
            x for x in parse_kernel_log(text) if not mine or any(same_pci(x.pci, d.pci_bus_id) for d in mine)
        ]
        t.add(
            "kernel_log_xids",
            "shell",
            f"{len(xids)} XID line(s) for this instance's GPUs: "
            + (", ".join(f"XID {x.xid} on {x.pci}" for x in xids) or "none"),
            {"xids": [x.__dict__ for x in xids]},
        )
    elif not any(e.name == "kernel_log_xids" for e in t.evidence):
        t.add("kernel_log_xids", "shell", f"host {host!r} names no kernel_log command", gap=True)
    if dcgm:
        # The exporter's gauge holds the *last* XID: counted once, and only when the kernel log
        # did not already show that XID for that GPU.
        for ev in _dcgm(rt, t, mine):
            if not any(x.xid == ev.xid and same_pci(x.pci, ev.pci) for x in xids):
                xids.append(ev)
    return snap, xids


def _canary(rt: Runtime, s: GpuSettings, name: str = "canary") -> dict[str, Any]:
    with Endpoint(rt.instance.base_url, timeout=s.request_timeout_seconds) as ep:
        results = ep.burst(s.canary_requests, prompt=s.canary_prompt, concurrency=1, max_tokens=16)
        health = ep.health()
    errors = sorted({r.error for r in results if not r.ok})
    return {
        "name": name,
        "ok": sum(1 for r in results if r.ok),
        "asked": len(results),
        "errors": errors,
        "health": health,
    }


def _cuda_errors(rt: Runtime, s: GpuSettings) -> str | None:
    """The error message the service answers with, when it names CUDA (read from one failing reply)."""
    import httpx

    body = {"model": "default", "messages": [{"role": "user", "content": s.canary_prompt}], "max_tokens": 8}
    try:
        resp = httpx.post(
            f"{rt.instance.base_url}/v1/chat/completions", json=body, timeout=s.request_timeout_seconds
        )
        msg = str(resp.json().get("error", {}).get("message", "")) if resp.status_code >= 500 else ""
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    return msg if "CUDA" in msg else None


def _diagnoses(snap: GpuSnapshot, xids: list[XidEvent]) -> list[GpuVerdict]:
    return [
        diagnose_gpu(d.as_dict(), [x for x in xids if same_pci(x.pci, d.pci_bus_id)]) for d in snap.devices
    ]


_RANK = list(GpuAction)


@step_task(Step.CONFIRM)
def confirm_gpu(ctx: StepContext) -> StepResult:
    """Read the instance's GPUs, the kernel log's XIDs and a canary: confirmed when a GPU calls for
    an action or the service answers with CUDA errors."""
    rt = Runtime(ctx)
    s = rt.settings_as(GpuSettings)
    t = StepTimer(Step.CONFIRM)
    snap, xids = _read(rt, t, dcgm=True)
    canary = _canary(rt, s)
    cuda = _cuda_errors(rt, s) if canary["ok"] < canary["asked"] else None
    t.add(
        "canary",
        "endpoint",
        f"{canary['ok']}/{canary['asked']} completions answered"
        + (f"; the service says {cuda!r}" if cuda else ""),
        {**canary, "cuda_error": cuda},
    )
    diags = _diagnoses(snap, xids)
    sick = [d for d in diags if not d.healthy]
    confirmed = bool(sick) or cuda is not None
    why = (
        "; ".join(f"GPU {d.index}: {d.diagnosis} ({'; '.join(d.reasons)})" for d in sick)
        or (f"no GPU reading explains it, but the service answers {cuda!r}" if cuda else "")
        or "the instance's GPUs are healthy and the canary answers"
    )
    t.decide("confirm", "confirmed" if confirmed else "not confirmed", why)
    return t.done(
        why,
        data={
            "confirmed": confirmed,
            "diagnoses": [d.__dict__ for d in diags],
            "xid_lines": [x.line for x in xids],
            "cuda_error": cuda,
            "snapshot_available": snap.available,
        },
    )


@step_task(Step.ASSESS)
def assess_gpu(ctx: StepContext, confirm: dict[str, Any] | None = None) -> StepResult:
    """Which GPUs, which instances share the host, and what is still serving."""
    rt = Runtime(ctx)
    t = StepTimer(Step.ASSESS)
    host = rt.instance.host
    same_host = [i.name for i in rt.service.instances if i.host == host]
    up = [i for i in rt.service.instances if i.name != rt.instance.name]
    up = [i for i in up if (st := rt.control.state(i)).healthy and not st.drained]
    serving = [i.name for i in up]
    elsewhere = [i.name for i in up if i.host != host]
    worst = max(
        ((confirm or {}).get("diagnoses") or [{"action": "none"}]),
        key=lambda d: _RANK.index(GpuAction(d["action"])),
    )
    scope = "node" if worst["action"] == GpuAction.DRAIN_NODE else "instance"
    impact = (
        f"{rt.instance.name} on {host} ({worst.get('diagnosis', 'cuda errors')}); instances on the host: "
        f"{same_host}; other instances serving: {serving or 'none'} ({len(elsewhere)} on other hosts)"
    )
    t.decide("route", "ops team", "GPU and host faults are the ops team's")
    return t.done(
        impact,
        data={
            "scope": scope,
            "impact": impact,
            "same_host": same_host,
            "serving": serving,
            "elsewhere": elsewhere,
        },
    )


@step_task(Step.EVIDENCE)
def evidence_gpu(ctx: StepContext, confirm: dict[str, Any], assess: dict[str, Any]) -> StepResult:
    """The worst GPU finding decides the diagnosis; CUDA errors with healthy GPUs are the application's."""
    rt = Runtime(ctx)
    t = StepTimer(Step.EVIDENCE)
    diags = confirm.get("diagnoses") or []
    sick = [d for d in diags if d["action"] != GpuAction.NONE]
    state = rt.control.state(rt.instance)
    t.add(
        "instance_state",
        "control",
        f"{rt.instance.name}: healthy={state.healthy} drained={state.drained}",
        state.as_dict(),
    )
    if sick:
        worst = max(sick, key=lambda d: _RANK.index(GpuAction(d["action"])))
        diagnosis = GpuDiagnosis(worst["diagnosis"])
        reason = f"GPU {worst['index']}: " + "; ".join(worst["reasons"])
    elif confirm.get("cuda_error"):
        diagnosis = GpuDiagnosis.APP_ERROR
        reason = f"the GPUs read healthy but the worker answers {confirm['cuda_error']!r}: restart it"
    else:
        diagnosis, reason = GpuDiagnosis.UNKNOWN, "nothing on the GPUs or in the service explains the alert"
    system_evidence(rt, t)
    t.decide("diagnosis", diagnosis, reason)
    healthy_others = len(assess.get("serving") or [])
    return t.done(
        f"{diagnosis}: {reason}",
        data={"diagnosis": diagnosis, "reason": reason, "healthy_others": healthy_others},
    )


@step_task(Step.ISOLATE)
def isolate_gpu(ctx: StepContext, evidence: dict[str, Any]) -> StepResult:
    """Drain the instance before a restart or a GPU reset when enough healthy instances remain; a
    node drain is the fix itself, and throttling sheds load instead."""
    s = Runtime(ctx).settings_as(GpuSettings)
    diagnosis = str(evidence.get("diagnosis"))
    return drain_if(
        ctx,
        diagnosis,
        diagnosis
        if diagnosis in (GpuDiagnosis.APP_ERROR, GpuDiagnosis.GPU_RESET_NEEDED)
        else "app_error|gpu_reset_needed",
        int(evidence.get("healthy_others", 0)),
        s.min_healthy_instances,
        "the fix drains the node itself, or the GPU only throttles (load is shed instead)",
    )


@step_task(Step.REPRODUCE)
def reproduce_gpu(ctx: StepContext) -> StepResult:
    """A canary burst against the (drained) instance: does it still fail?"""
    rt = Runtime(ctx)
    s = rt.settings_as(GpuSettings)
    t = StepTimer(Step.REPRODUCE)
    canary = _canary(rt, s, "reproduce")
    t.add("reproduce", "endpoint", f"{canary['ok']}/{canary['asked']} completions answered", canary)
    failing = canary["ok"] < canary["asked"]
    return t.done(
        f"{'reproduced' if failing else 'not reproduced'}: {canary['errors'] or 'answers'}",
        data={"reproduced": failing},
    )


@step_task(Step.VERIFY)
def verify_gpu(ctx: StepContext, confirm: dict[str, Any] | None = None) -> StepResult:
    """After the fix. A drained node: its instances are out of rotation and the service answers
    through the others. Load shed: the instance answers (the GPU is still held back: cooling or power
    comes next). Otherwise: the instance's GPUs need no action, no new XID, and the canary answers."""
    rt = Runtime(ctx)
    s = rt.settings_as(GpuSettings)
    t = StepTimer(Step.VERIFY)
    before = confirm or {}
    worst = max(
        (GpuAction(d["action"]) for d in before.get("diagnoses") or []),
        key=_RANK.index,
        default=GpuAction.NONE,
    )
    checks: list[VerificationCheck] = []
    if worst in (GpuAction.DRAIN_NODE,):
        host = rt.instance.host
        on_node = [i for i in [*rt.service.instances, *rt.service.standby] if i.host == host]
        drained = all(rt.control.state(i).drained for i in on_node)
        checks.append(
            VerificationCheck(name="node_drained", passed=drained, observed=str(drained), expected="True")
        )
        others = [i for i in rt.service.instances if i.host != host and not rt.control.state(i).drained]
        answered = 0
        for inst in others[:1]:
            with Endpoint(inst.base_url, timeout=s.request_timeout_seconds) as ep:
                answered = sum(
                    1 for r in ep.burst(s.canary_requests, prompt=s.canary_prompt, concurrency=1) if r.ok
                )
        checks.append(
            VerificationCheck(
                name="service_answers_elsewhere",
                passed=answered == s.canary_requests,
                observed=f"{answered}/{s.canary_requests}",
                expected="all",
            )
        )
        return verification_result(t, checks)
    snap, xids = _read(rt, t)
    canary = _canary(rt, s, "verify")
    checks.append(
        VerificationCheck(
            name="health", passed=canary["health"], observed=str(canary["health"]), expected="True"
        )
    )
    checks.append(
        VerificationCheck(
            name="canary_completions",
            passed=canary["ok"] == canary["asked"],
            observed=f"{canary['ok']}/{canary['asked']}",
            expected="all",
        )
    )
    if worst != GpuAction.REDUCE_LOAD:
        new = [x for x in xids if x.line not in set(before.get("xid_lines") or [])]
        still = [d for d in _diagnoses(snap, []) if d.action not in (GpuAction.NONE, GpuAction.REDUCE_LOAD)]
        checks.append(
            VerificationCheck(
                name="gpus_need_no_action",
                passed=not still,
                observed="; ".join(f"GPU {d.index}: {d.diagnosis}" for d in still) or "none",
                expected="none",
            )
        )
        checks.append(
            VerificationCheck(
                name="no_new_xids",
                passed=not new,
                observed=", ".join(str(x.xid) for x in new) or "none",
                expected="none",
            )
        )
    return verification_result(t, checks)
