"""The GPU-fault home's steps: read the GPUs, the kernel log and a canary; decide by the XID table
and NVML's recovery hint; drain before a restart or a GPU reset; reproduce with a canary burst;
verify; put the instance back."""

from __future__ import annotations

from llmedic.anomalies.base import Home, Isolation, Reproduction
from llmedic.anomalies.common import contain_instance, drain_if, release_drain
from llmedic.anomalies.gpu.diagnosis import Diagnosis
from llmedic.anomalies.gpu.evidence import assess, canary, confirm, evidence
from llmedic.anomalies.gpu.results import GpuAssessment, GpuConfirmation, GpuFindings
from llmedic.anomalies.gpu.verify import verify
from llmedic.anomalies.runtime import Runtime, StepTimer
from llmedic.incident import Step
from llmedic.playbook import GpuSettings

__all__ = ["HOME", "contain", "isolate", "reproduce"]

_DRAIN_FOR = (Diagnosis.APP_ERROR, Diagnosis.GPU_RESET_NEEDED)


def isolate(rt: Runtime, found: GpuFindings) -> Isolation:
    """Drain the instance before a restart or a GPU reset when enough healthy instances remain; a
    node drain is the fix itself, and throttling sheds load instead."""
    return drain_if(
        rt,
        found.diagnosis,
        found.diagnosis if found.diagnosis in _DRAIN_FOR else "app_error|gpu_reset_needed",
        found.healthy_others,
        rt.settings_as(GpuSettings).min_healthy_instances,
        "the fix drains the node itself, or the GPU only throttles (load is shed instead)",
    )


def contain(rt: Runtime, found: GpuFindings, scope: str) -> Isolation:
    """A fix refused (a node drain that would empty the service), failed or rejected: the broken
    instance still leaves rotation when the other serving instances carry the traffic (a node-wide
    fault is contained instance by instance: the node's other instances may still serve)."""
    return contain_instance(
        rt, found.healthy_others, rt.settings_as(GpuSettings).min_healthy_instances, scope
    )


def reproduce(rt: Runtime) -> Reproduction:
    """A canary burst against the (drained) instance: does it still fail?"""
    t = StepTimer(Step.REPRODUCE)
    can = canary(rt, rt.settings_as(GpuSettings), "reproduce")
    t.add("reproduce", "endpoint", f"{can.ok}/{can.asked} completions answered", can.model_dump())
    return Reproduction(
        **t.stamp(f"{'reproduced' if can.failing else 'not reproduced'}: {can.errors or 'answers'}"),
        reproduced=can.failing,
    )


HOME: Home[GpuConfirmation, GpuAssessment, GpuFindings] = Home(
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
