"""The GPU-fault verification criteria. A drained node: its instances are out of rotation and the
service answers through the others. Load shed: the instance answers (the GPU is still held back:
cooling or power comes next). Otherwise: the instance's GPUs need no action, no new XID appeared,
and the canary answers."""

from __future__ import annotations

from llmedic.adapters.endpoint import Endpoint
from llmedic.anomalies.base import VerificationResult
from llmedic.anomalies.common import verification_result
from llmedic.anomalies.gpu.diagnosis import GpuAction, worst_verdict
from llmedic.anomalies.gpu.evidence import canary, read_gpus, verdicts
from llmedic.anomalies.gpu.results import GpuConfirmation
from llmedic.anomalies.runtime import Runtime, StepTimer
from llmedic.incident import Step, VerificationCheck
from llmedic.playbook import GpuSettings

__all__ = ["verify"]


def _node_drained(rt: Runtime, s: GpuSettings) -> list[VerificationCheck]:
    host = rt.instance.host
    on_node = [i for i in [*rt.service.instances, *rt.service.standby] if i.host == host]
    drained = all(rt.control.state(i).drained for i in on_node)
    others = [i for i in rt.service.instances if i.host != host and not rt.control.state(i).drained]
    answered = 0
    for inst in others[:1]:
        with Endpoint(inst.base_url, timeout=s.request_timeout_seconds) as ep:
            answered = sum(
                1 for r in ep.burst(s.canary_requests, prompt=s.canary_prompt, concurrency=1) if r.ok
            )
    return [
        VerificationCheck(name="node_drained", passed=drained, observed=str(drained), expected="True"),
        VerificationCheck(
            name="service_answers_elsewhere",
            passed=answered == s.canary_requests,
            observed=f"{answered}/{s.canary_requests}",
            expected="all",
        ),
    ]


def verify(rt: Runtime, confirmed: GpuConfirmation) -> VerificationResult:
    """After the fix: the criteria the worst finding before it calls for (see the module)."""
    s = rt.settings_as(GpuSettings)
    t = StepTimer(Step.VERIFY)
    worst_before = worst_verdict(confirmed.verdicts)
    worst = worst_before.action if worst_before else GpuAction.NONE
    if worst == GpuAction.DRAIN_NODE:
        return verification_result(t, _node_drained(rt, s))
    snap, xids = read_gpus(rt, t)
    can = canary(rt, s, "verify")
    checks = [
        VerificationCheck(name="health", passed=can.health, observed=str(can.health), expected="True"),
        VerificationCheck(
            name="canary_completions",
            passed=not can.failing,
            observed=f"{can.ok}/{can.asked}",
            expected="all",
        ),
    ]
    if worst != GpuAction.REDUCE_LOAD:
        seen = set(confirmed.xid_lines)
        new = [x for x in xids if x.line not in seen]
        still = [d for d in verdicts(snap, []) if d.action not in (GpuAction.NONE, GpuAction.REDUCE_LOAD)]
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
