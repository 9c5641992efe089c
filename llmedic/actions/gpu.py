"""GPU hardware actions: ``reset_gpu`` (reset the instance's GPUs, then restart it) and
``drain_node`` (take the host out of service and record it for replacement)."""

from __future__ import annotations

import json

from pydantic import Field

from llmedic.actions.catalogue import ActionOutcome, Params, action
from llmedic.actions.context import ActionContext
from llmedic.adapters.gpu import host_snapshot
from llmedic.adapters.shell import make_shell, run_template
from llmedic.catalog import AnomalyType
from llmedic.errors import ControlError
from llmedic.incident import utcnow
from llmedic.limits import limit_acts

__all__ = ["DrainNodeParams", "ResetGpuParams", "drain_node", "reset_gpu"]


class ResetGpuParams(Params):
    """Reset the instance's GPU(s) with the host's ``reset_gpu`` command, then restart the instance."""

    ready_timeout_seconds: float = Field(120, gt=0)


def _instance_gpus(rt: ActionContext) -> list[int]:
    if rt.instance.gpus:
        return list(rt.instance.gpus)
    snap = host_snapshot(rt.env, rt.instance.host)
    return [d.index for d in snap.devices]


@action(
    "reset_gpu",
    params=ResetGpuParams,
    compensation="drain_instance",
    anomalies={AnomalyType.GPU_FAULT},
    description="run the host's allowlisted reset_gpu command for the instance's GPU(s) (drained first), then "
    "restart the instance and wait for /health (rollback keeps it out of rotation)",
)
def reset_gpu(p: ResetGpuParams, rt: ActionContext) -> ActionOutcome:
    """Drain the instance, reset each of its GPUs, restart it."""
    if "reset_gpu" not in rt.env.commands:
        raise ControlError(
            "no reset_gpu command in the allowlist",
            hint="add commands.reset_gpu, e.g. `nvidia-smi -r -i {gpu}` with params: {gpu: {pattern: '^[0-9]{1,2}$'}}",
        )
    host = rt.env.host(rt.instance.host)
    shell = make_shell(host)
    gpus = _instance_gpus(rt)
    limit_acts(rt, [rt.instance], "reset_gpu")
    if not rt.control.state(rt.instance).drained:
        rt.control.drain(rt.instance)  # never reset a GPU under traffic
    done = []
    for g in gpus:
        res = run_template(shell, rt.env.commands, "reset_gpu", {"gpu": g})
        done.append(f"GPU {g}: {res.stdout.strip()[:80] or 'reset'}")
    rt.control.restart(rt.instance, ready_timeout=p.ready_timeout_seconds)
    return ActionOutcome(f"{host.name}: {'; '.join(done)}; {rt.instance.name} restarted and healthy")


class DrainNodeParams(Params):
    """Take every instance on the incident's host out of rotation and mark the node for replacement."""

    reason: str = "GPU hardware fault"


@action(
    "drain_node",
    params=DrainNodeParams,
    compensation=None,
    anomalies={AnomalyType.GPU_FAULT},
    description="take every instance on the host out of rotation (refused if that would leave the service "
    "without a healthy instance) and record the node for replacement",
)
def drain_node(p: DrainNodeParams, rt: ActionContext) -> ActionOutcome:
    """Drain every instance on the host (never the service's last healthy one) and record the node."""
    host = rt.instance.host
    on_node = [i for i in [*rt.service.instances, *rt.service.standby] if i.host == host]
    others = [
        i
        for i in rt.service.instances
        if i.host != host and rt.control.state(i).healthy and not rt.control.state(i).drained
    ]
    if not others:
        raise ControlError(
            f"draining host {host!r} would leave {rt.service.name!r} without a healthy instance; refused",
            hint="bring capacity in elsewhere first (scale_out), then drain",
        )
    limit_acts(rt, on_node, "drain_node")
    for inst in on_node:
        if not rt.control.state(inst).drained:
            rt.control.drain(inst)
    record = rt.ctx.settings().home / "nodes" / "replace.jsonl"
    record.parent.mkdir(parents=True, exist_ok=True)
    entry = {
        "host": host,
        "at": utcnow().isoformat(),
        "incident": rt.ctx.incident_id,
        "reason": p.reason,
        "instances": [i.name for i in on_node],
    }
    with record.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry) + "\n")
    return ActionOutcome(
        f"host {host!r} drained ({[i.name for i in on_node]}) and marked for replacement in {record}"
    )
