"""What the GPU-fault steps read: the instance's GPUs (NVML, the host's ``gpu_snapshot`` command,
or a backend the host names), the host's kernel log for XIDs (matched to a GPU by PCI bus id), the
DCGM exporter when declared, and a canary completion against the instance. ``diagnosis.py`` turns
them into a diagnosis and the action the XID table and NVML's recovery hint call for.
"""

from __future__ import annotations

from typing import Any

from llmedic.adapters.endpoint import Endpoint
from llmedic.adapters.gpu import GpuSnapshot, dcgm_gpus, host_snapshot, kernel_log
from llmedic.anomalies.common import system_evidence
from llmedic.anomalies.gpu.diagnosis import (
    Diagnosis,
    GpuAction,
    GpuVerdict,
    XidEvent,
    diagnose_gpu,
    diagnose_instance,
    parse_kernel_log,
    same_pci,
    worst_verdict,
)
from llmedic.anomalies.gpu.results import Canary, GpuAssessment, GpuConfirmation, GpuFindings
from llmedic.anomalies.runtime import Runtime, StepTimer
from llmedic.catalog import anomaly_info
from llmedic.errors import LlmedicError
from llmedic.incident import Step
from llmedic.playbook import GpuSettings

__all__ = ["assess", "canary", "confirm", "evidence", "human_action", "read_gpus", "verdicts"]


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


def read_gpus(rt: Runtime, t: StepTimer, *, dcgm: bool = False) -> tuple[GpuSnapshot, list[XidEvent]]:
    """The instance's GPUs and the XIDs seen for them (kernel log; the DCGM exporter's last-XID
    gauges too with ``dcgm``), each recorded as evidence."""
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


def canary(rt: Runtime, s: GpuSettings, name: str = "canary") -> Canary:
    """A burst of ``canary_requests`` completions against the instance, and its health."""
    with Endpoint(rt.instance.base_url, timeout=s.request_timeout_seconds) as ep:
        results = ep.burst(s.canary_requests, prompt=s.canary_prompt, concurrency=1, max_tokens=16)
        health = ep.health()
    return Canary(
        name=name,
        ok=sum(1 for r in results if r.ok),
        asked=len(results),
        errors=sorted({r.error for r in results if not r.ok}),
        health=health,
    )


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


def verdicts(snap: GpuSnapshot, xids: list[XidEvent]) -> list[GpuVerdict]:
    """Each GPU of the snapshot judged with the XIDs seen for it."""
    return [
        diagnose_gpu(d.as_dict(), [x for x in xids if same_pci(x.pci, d.pci_bus_id)]) for d in snap.devices
    ]


def confirm(rt: Runtime) -> GpuConfirmation:
    """Read the instance's GPUs, the kernel log's XIDs and a canary: confirmed when a GPU calls for
    an action or the service answers with CUDA errors."""
    s = rt.settings_as(GpuSettings)
    t = StepTimer(Step.CONFIRM)
    snap, xids = read_gpus(rt, t, dcgm=True)
    can = canary(rt, s)
    cuda = _cuda_errors(rt, s) if can.failing else None
    t.add(
        "canary",
        "endpoint",
        f"{can.ok}/{can.asked} completions answered" + (f"; the service says {cuda!r}" if cuda else ""),
        {**can.model_dump(), "cuda_error": cuda},
    )
    diags = verdicts(snap, xids)
    sick = [d for d in diags if not d.healthy]
    confirmed = bool(sick) or cuda is not None
    why = (
        "; ".join(f"GPU {d.index}: {d.diagnosis} ({'; '.join(d.reasons)})" for d in sick)
        or (f"no GPU reading explains it, but the service answers {cuda!r}" if cuda else "")
        or "the instance's GPUs are healthy and the canary answers"
    )
    t.decide("confirm", "confirmed" if confirmed else "not confirmed", why)
    return GpuConfirmation(
        **t.stamp(why),
        confirmed=confirmed,
        verdicts=diags,
        xid_lines=[x.line for x in xids],
        cuda_error=cuda,
        snapshot_available=snap.available,
    )


def assess(rt: Runtime, confirmed: GpuConfirmation) -> GpuAssessment:
    """Which GPUs, which instances share the host, and what is still serving."""
    t = StepTimer(Step.ASSESS)
    host = rt.instance.host
    same_host = [i.name for i in rt.service.instances if i.host == host]
    up = [i for i in rt.service.instances if i.name != rt.instance.name]
    up = [i for i in up if (st := rt.control.state(i)).healthy and not st.drained]
    serving = [i.name for i in up]
    elsewhere = [i.name for i in up if i.host != host]
    worst = worst_verdict(confirmed.verdicts)
    scope = "node" if worst is not None and worst.action == GpuAction.DRAIN_NODE else "instance"
    impact = (
        f"{rt.instance.name} on {host} ({worst.diagnosis if worst else 'cuda errors'}); instances on the "
        f"host: {same_host}; other instances serving: {serving or 'none'} ({len(elsewhere)} on other hosts)"
    )
    t.decide("route", "ops team", "GPU and host faults are the ops team's")
    return GpuAssessment(
        **t.stamp(impact),
        scope=scope,
        impact=impact,
        team=anomaly_info(rt.ctx.anomaly).team.value,
        same_host=same_host,
        serving=serving,
        elsewhere=elsewhere,
    )


def evidence(rt: Runtime, confirmed: GpuConfirmation, assessed: GpuAssessment) -> GpuFindings:
    """The worst GPU finding decides the diagnosis; CUDA errors with healthy GPUs are the application's."""
    t = StepTimer(Step.EVIDENCE)
    state = rt.control.state(rt.instance)
    t.add(
        "instance_state",
        "control",
        f"{rt.instance.name}: healthy={state.healthy} drained={state.drained}",
        state.as_dict(),
    )
    diagnosis, reason = diagnose_instance(confirmed.verdicts, confirmed.cuda_error)
    system_evidence(rt, t)
    t.decide("diagnosis", diagnosis, reason)
    return GpuFindings(
        **t.stamp(f"{diagnosis}: {reason}"),
        diagnosis=diagnosis,
        reason=reason,
        healthy_others=len(assessed.serving),
        human_action=human_action(diagnosis, rt.instance.host, rt.instance.name),
    )


def human_action(diagnosis: Diagnosis, host: str, instance: str) -> str:
    """What a human must do when llmedic cannot fix ``diagnosis`` (said in the escalation)."""
    if diagnosis in (Diagnosis.GPU_LOST, Diagnosis.NODE_FAILURE):
        return f"reboot or replace node {host}"
    if diagnosis == Diagnosis.GPU_RESET_NEEDED:
        return f"reset the GPU of {instance} on {host} (nvidia-smi -r), or replace node {host}"
    if diagnosis in (Diagnosis.THERMAL_THROTTLE, Diagnosis.POWER_THROTTLE, Diagnosis.THROTTLE):
        return f"check the cooling and power of node {host}"
    return f"read the XIDs and the service log of {instance} on {host}"
