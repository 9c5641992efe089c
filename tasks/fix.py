"""Step 6 — apply the fix, and its compensation when verification fails.

:func:`require_approval` is the single guard between a risky fix and production: ``apply_fix``
refuses to act on a fix whose risk the playbook gates unless it is handed a matching, positive
approval from an allowed approver.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmedic.actions import (
    ACTIONS,
    DrainNodeParams,
    FailoverParams,
    RepairParams,
    RepinParams,
    ResetGpuParams,
    RestartParams,
    ResumeSyncParams,
    RetryParams,
    RollbackDatasetParams,
    RollbackKnowledgeParams,
    RollbackModelParams,
    RollingRestartParams,
    ScaleParams,
    SetConcurrencyParams,
    SwitchModelParams,
)
from llmedic.adapters.gpu import host_snapshot
from llmedic.adapters.netprobe import probe_link
from llmedic.adapters.pyenv import install_pins, probe_env
from llmedic.adapters.shell import LocalShell, make_shell, run_template
from llmedic.analysis.deps import parse_lock
from llmedic.catalog import Risk
from llmedic.config import NetworkLink
from llmedic.errors import ApprovalRequired, ControlError
from llmedic.incident import ActionRecord, ApprovalRecord, Step, StepResult, utcnow
from llmedic.network import active_url, set_active_url
from llmedic.playbook import FixOption, Playbook
from llmedic.transfer import resume_download
from tasks.runtime import Runtime, StepContext, StepTimer, step_task

__all__ = ["EXECUTORS", "apply_fix", "compensate", "require_approval"]

Executor = Callable[[Runtime, dict[str, Any]], tuple[str, dict[str, Any]]]
"""(runtime, params) → (what happened, parameters of the compensating action)."""


def require_approval(playbook: Playbook, fix: FixOption, approval: ApprovalRecord | None) -> None:
    """Raise :class:`ApprovalRequired` unless ``fix`` may run under ``approval``."""
    policy = playbook.approval
    if not policy.needs_approval(fix.risk):
        return
    if approval is None:
        raise ApprovalRequired(
            f"fix {fix.name!r} is {fix.risk.value} risk and has no approval; it was not run"
        )
    if approval.action != fix.name:
        raise ApprovalRequired(
            f"the approval is for {approval.action!r}, not {fix.name!r}; the fix was not run"
        )
    if not approval.approved:
        raise ApprovalRequired(f"fix {fix.name!r} was rejected by {approval.by}; it was not run")
    if not policy.may_approve(approval.by):
        raise ApprovalRequired(
            f"{approval.by!r} may not approve {fix.name!r} (approvers: {policy.approvers}); it was not run"
        )
    if policy.approvers and (not approval.verified or approval.refused):
        # The gate verifies who decided; a record that says it did not is never enough.
        raise ApprovalRequired(
            f"the approval of {fix.name!r} by {approval.by!r} was not verified; it was not run"
        )


def _set_concurrency(rt: Runtime, raw: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    p = SetConcurrencyParams.model_validate(raw)
    before = rt.control.state(rt.instance).concurrency_limit
    if p.limit is not None:
        new = p.limit
    elif before is None:
        raise ControlError(f"{rt.instance.name}: current concurrency limit unknown; set an absolute `limit`")
    else:
        new = max(p.min_limit, int(before * p.factor))
    rt.control.set_concurrency(rt.instance, new)
    return f"concurrency limit {before} → {new}", ({"limit": before} if before else {})


def _restart(rt: Runtime, raw: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    p = RestartParams.model_validate(raw)
    rt.control.restart(rt.instance, ready_timeout=p.ready_timeout_seconds)
    return f"{rt.instance.name} restarted and healthy", {}


def _rolling_restart(rt: Runtime, raw: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    p = RollingRestartParams.model_validate(raw)
    done: list[str] = []
    for inst in rt.in_rotation():
        # One at a time, each out of rotation while it restarts; the incident's own instance may
        # already be drained by the isolation step and stays so until recovery.
        was_drained = rt.control.state(inst).drained
        if not was_drained:
            rt.control.drain(inst)
        rt.control.restart(inst, ready_timeout=p.ready_timeout_seconds)
        if not was_drained:
            rt.control.undrain(inst)
        done.append(inst.name)
        time.sleep(p.pause_seconds)
    return f"restarted {done} one at a time", {}


def _switch_model(rt: Runtime, raw: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    # The compensation passes {"variant": ..., "previous": {instance: version}} to switch each back.
    previous: dict[str, str] = dict(raw.get("previous") or {})
    p = SwitchModelParams.model_validate({k: v for k, v in raw.items() if k != "previous"})
    before: dict[str, str] = {}
    for inst in rt.in_rotation():
        was = rt.control.state(inst).model_version or ""
        target = previous.get(inst.name, p.variant) if previous else p.variant
        if was != target:
            rt.control.set_model(inst, target)
        before[inst.name] = was
    shown = sorted(set(before.values()))
    return (
        f"{sorted(before)} switched from {shown} to {p.variant if not previous else 'their previous versions'}",
        {
            "variant": p.variant,
            "previous": before,
        },
    )


def _scale_out(rt: Runtime, raw: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    p = ScaleParams.model_validate(raw)
    spare = [i for i in rt.service.standby if rt.control.state(i).drained]
    if not spare:
        raise ControlError(f"service {rt.service.name!r} has no drained standby instance to bring in")
    chosen = spare[: p.replicas]
    for inst in chosen:
        rt.control.undrain(inst)
    names = [i.name for i in chosen]
    return f"brought {names} into rotation", {"replicas": len(chosen), "instances": names}


def _scale_in(rt: Runtime, raw: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    names = raw.get("instances") or []
    for inst in rt.service.standby:
        if inst.name in names:
            rt.control.drain(inst)
    return f"took {names} out of rotation", {}


def _drain(rt: Runtime, raw: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    rt.control.drain(rt.instance)
    return f"{rt.instance.name} drained", {}


def _undrain(rt: Runtime, raw: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    rt.control.undrain(rt.instance)
    return f"{rt.instance.name} back in rotation", {}


def _repair_dataset(rt: Runtime, raw: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    p = RepairParams.model_validate(raw)
    name, cfg = rt.ctx.target, rt.dataset
    before = rt.store.current(name)
    source, frame = rt.store.read(name, cfg, rt.ctx.version or "current")
    focus = sorted({f.column for f in rt.audit(source.id).breaches(rt.ctx.anomaly) if f.column})
    from llmedic.adapters.datastore import Producer
    from llmedic.analysis.repair import apply_operations

    repaired, log = apply_operations(frame, cfg, list(p.operations), focus=focus)
    lost = 1 - log.rows_after / log.rows_before
    if lost > p.max_row_loss_share:
        raise ControlError(
            f"the repair would drop {log.rows_before - log.rows_after} of {log.rows_before} rows "
            f"({lost:.1%} > {p.max_row_loss_share:.0%}); nothing was written",
            hint="roll back to the last good version, or raise max_row_loss_share in the playbook",
        )
    new = rt.store.commit(
        name,
        repaired,
        cfg,
        by="llmedic",
        why=f"repair of {source.id} for incident {rt.ctx.incident_id}: " + "; ".join(log.steps)[:500],
        parent=source.id,
        producer=Producer(step="llmedic-repair", job=rt.ctx.incident_id, run=rt.ctx.flow_run_id),
    )
    what = "; ".join(log.steps) or "no change was needed"
    return (
        f"wrote {new.id} from {source.id} ({log.rows_before} → {log.rows_after} rows): {what}",
        {"to": before.id if before else source.id, "compensating": True},
    )


def _rollback_dataset(rt: Runtime, raw: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    p = RollbackDatasetParams.model_validate(raw)
    name = rt.ctx.target
    state = rt.store.state(name)
    if p.to is not None:
        target = rt.store.version(name, p.to)
    else:
        good = rt.store.last_good(name, before=rt.ctx.version or state.current)
        if good is None:
            raise ControlError(
                f"dataset {name!r} has no good version before {rt.ctx.version}",
                hint="repair the batch instead, or name a version with `to:`",
            )
        target = good
    if target.id in state.quarantined:
        if p.compensating:
            return f"stayed on {state.current}: {target.id} is quarantined", {}
        raise ControlError(f"{name}@{target.id} is quarantined and cannot become current")
    if state.current == target.id:
        return f"{name} already serves {target.id}", {"to": state.current, "compensating": True}
    rt.store.set_current(
        name, target.id, rt.dataset, by="llmedic", why=f"incident {rt.ctx.incident_id}: rollback"
    )
    return f"{name}: {state.current} → {target.id}", {"to": state.current, "compensating": True}


def _rollback_model(rt: Runtime, raw: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    # The compensation passes {"to": bad version, "previous": {instance: version}, "compensating"}.
    compensating = bool(raw.get("compensating"))
    p = RollbackModelParams.model_validate(
        {k: v for k, v in raw.items() if k not in ("previous", "compensating")}
    )
    svc, reg = rt.service.name, rt.registry
    current = reg.current(svc)
    if p.to is not None:
        target = reg.release_of(svc, p.to)
    else:
        good = reg.last_good(svc)
        if good is None:
            raise ControlError(
                f"service {svc!r} has no earlier good model version to roll back to",
                hint="record releases with `llmedic model release`, or name a version with `to:`",
            )
        target = good
    why, params = _switch_model(rt, {"variant": target.version, "previous": raw.get("previous") or {}})
    incident = rt.ctx.incident_id
    reg.record_release(
        svc,
        target.version,
        config=target.config,
        by="llmedic",
        note=f"{'rollback undone' if compensating else 'rollback'} by incident {incident}",
        incident=incident,
    )
    if current is not None and current.version != target.version:
        reg.mark(
            svc,
            current.version,
            good=compensating,
            by="llmedic",
            note=(
                f"rollback undone by incident {incident}: verdict withdrawn"
                if compensating
                else f"rolled back by incident {incident}"
            ),
            incident=incident,
        )
    was = current.version if current else "unknown"
    return (
        f"{svc}: {was} → {target.version} ({why})",
        {"to": was, "previous": params["previous"], "compensating": True},
    )


def _rollback_knowledge(rt: Runtime, raw: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    # The compensation passes {"targets": {dataset: version}} to put each dataset back.
    if "targets" in raw:
        targets: dict[str, str] = dict(raw["targets"] or {})
    else:
        p = RollbackKnowledgeParams.model_validate(raw)
        name, _ = rt.env.golden_for(rt.service.name)
        base = rt.registry.reference(rt.service.name, name)
        consumed = rt.dataset_versions()
        if p.dataset is not None and p.dataset not in consumed:
            raise ControlError(f"service {rt.service.name!r} does not consume dataset {p.dataset!r}")
        if p.to is not None:
            if p.dataset is None:
                raise ControlError("rollback_knowledge: `to` needs `dataset`")
            targets = {p.dataset: p.to}
        elif base is not None:
            targets = {
                ds: v
                for ds, v in base.datasets.items()
                if ds in consumed and consumed[ds] != v and (p.dataset in (None, ds))
            }
        if not targets and base is not None and p.to is None and base.datasets:
            # Diagnosed as a knowledge change, and since then put back by someone else — typically
            # the data incident this flow handed over, whose isolation moves consumers to the last
            # good version. Nothing left to do here; verification decides whether it is enough.
            restored = {ds: v for ds, v in base.datasets.items() if ds in consumed}
            if restored and all(consumed[ds] == v for ds, v in restored.items()):
                shown = ", ".join(f"{ds}@{v}" for ds, v in sorted(restored.items()))
                return f"already at the baseline's versions ({shown}) since the diagnosis; nothing changed", {
                    "targets": {}
                }
        if not targets:
            raise ControlError(
                "no consumed dataset changed since the baseline; nothing to roll back",
                hint="name the dataset and version with `dataset:` and `to:`",
            )
    done: dict[str, str] = {}
    for ds, version in sorted(targets.items()):
        cfg = rt.env.dataset(ds)
        before = rt.store.current(ds)
        target = rt.store.version(ds, version)
        if target.id in rt.store.state(ds).quarantined:
            raise ControlError(f"{ds}@{target.id} is quarantined and cannot become current")
        if before is None or before.id != target.id:
            rt.store.set_current(
                ds, target.id, cfg, by="llmedic", why=f"incident {rt.ctx.incident_id}: knowledge rollback"
            )
        done[ds] = before.id if before else target.id
    shown = ", ".join(f"{ds}: {done[ds]} → {targets[ds]}" for ds in sorted(targets))
    return shown, {"targets": done}


def _instance_gpus(rt: Runtime) -> list[int]:
    if rt.instance.gpus:
        return list(rt.instance.gpus)
    snap = host_snapshot(rt.env, rt.instance.host)
    return [d.index for d in snap.devices]


def _reset_gpu(rt: Runtime, raw: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    p = ResetGpuParams.model_validate(raw)
    if "reset_gpu" not in rt.env.commands:
        raise ControlError(
            "no reset_gpu command in the allowlist",
            hint="add commands.reset_gpu, e.g. `nvidia-smi -r -i {gpu}` with params: {gpu: {pattern: '^[0-9]{1,2}$'}}",
        )
    host = rt.env.host(rt.instance.host)
    shell = make_shell(host)
    gpus = _instance_gpus(rt)
    if not rt.control.state(rt.instance).drained:
        rt.control.drain(rt.instance)  # never reset a GPU under traffic
    done = []
    for g in gpus:
        res = run_template(shell, rt.env.commands, "reset_gpu", {"gpu": g})
        done.append(f"GPU {g}: {res.stdout.strip()[:80] or 'reset'}")
    rt.control.restart(rt.instance, ready_timeout=p.ready_timeout_seconds)
    return f"{host.name}: {'; '.join(done)}; {rt.instance.name} restarted and healthy", {}


def _drain_node(rt: Runtime, raw: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    p = DrainNodeParams.model_validate(raw)
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
    for inst in on_node:
        if not rt.control.state(inst).drained:
            rt.control.drain(inst)
    record = rt.ctx.settings().home / "nodes" / "replace.jsonl"
    record.parent.mkdir(parents=True, exist_ok=True)
    with record.open("a", encoding="utf-8") as fh:
        fh.write(
            json.dumps(
                {
                    "host": host,
                    "at": utcnow().isoformat(),
                    "incident": rt.ctx.incident_id,
                    "reason": p.reason,
                    "instances": [i.name for i in on_node],
                }
            )
            + "\n"
        )
    return f"host {host!r} drained ({[i.name for i in on_node]}) and marked for replacement in {record}", {}


def _repin(rt: Runtime, raw: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    # The compensation passes {"pins": {name: version}}: the versions the environment had.
    p = RepinParams.model_validate({k: v for k, v in raw.items() if k != "pins"})
    svc = rt.service
    if svc.python is None or svc.lock_file is None:
        raise ControlError(f"service {svc.name!r} declares no python/lock_file to re-pin")
    before = probe_env(svc.python, [], timeout=120)["distributions"]
    lock = parse_lock(svc.lock_file.read_text("utf-8"), str(svc.lock_file))
    pins: dict[str, str] = dict(raw.get("pins") or {})
    with tempfile.TemporaryDirectory(prefix="llmedic-pins-") as tmp:
        req = Path(tmp) / "requirements.txt"
        if pins:
            req.write_text("".join(f"{n}=={v}\n" for n, v in sorted(pins.items())))
        else:
            req.write_text(svc.lock_file.read_text("utf-8"))
        install_pins(svc.python, req, svc.wheelhouse, timeout=p.timeout_seconds)
    if not rt.control.state(rt.instance).drained:
        rt.control.drain(rt.instance)
    rt.control.restart(rt.instance, ready_timeout=p.ready_timeout_seconds)
    had = {n: before[n]["version"] for n in (pins or lock) if n in before}
    changed = sorted(n for n, v in (pins or lock).items() if had.get(n) != v)
    return (
        f"{'restored' if pins else 're-pinned to the lock'}: {changed or 'nothing changed'}; {rt.instance.name} restarted",
        {"pins": had},
    )


def _link(rt: Runtime) -> NetworkLink:
    link = rt.env.network.links.get(rt.ctx.target)
    if link is None:
        raise ControlError(f"{rt.ctx.target!r} is not a link under network.links")
    return link


def _retry(rt: Runtime, raw: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    p = RetryParams.model_validate(raw)
    url = active_url(rt.ctx.settings().home, rt.ctx.target, _link(rt))
    for attempt in range(1, p.attempts + 1):
        probe = probe_link(url, tries=3, timeout=2.0)
        if probe.tcp_ok == probe.tcp_tries and probe.http_ok == probe.http_tries:
            return f"{url} answered on attempt {attempt}", {}
        if attempt < p.attempts:
            time.sleep(p.backoff_seconds * 2 ** (attempt - 1))
    raise ControlError(f"{url} still fails after {p.attempts} attempts with backoff")


def _resume_sync(rt: Runtime, raw: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    p = ResumeSyncParams.model_validate(raw)
    link = _link(rt)
    if link.artifact is None:
        raise ControlError(f"link {rt.ctx.target!r} carries no artifact to resume")
    a = link.artifact
    res = resume_download(
        str(a.url), a.dest, a.sha256, attempts=p.attempts, backoff_seconds=p.backoff_seconds
    )
    return (
        f"{a.dest.name}: {res.bytes_total} bytes, resumed from byte {res.resumed_from}, "
        f"{res.attempts} attempt(s), SHA-256 verified",
        {},
    )


def _failover(rt: Runtime, raw: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    p = FailoverParams.model_validate(raw)
    link = _link(rt)
    if p.to == "backup" and link.backup_url is None:
        raise ControlError(f"link {rt.ctx.target!r} has no backup_url to fail over to")
    url = str(link.backup_url if p.to == "backup" else link.url)
    home = rt.ctx.settings().home
    before = active_url(home, rt.ctx.target, link)
    if link.failover_command is not None:
        declared = rt.env.commands[link.failover_command].params
        values = {"link": rt.ctx.target, "url": url}
        run_template(
            LocalShell(),
            rt.env.commands,
            link.failover_command,
            {k: v for k, v in values.items() if k in declared},
        )
    set_active_url(home, rt.ctx.target, url, by=f"incident {rt.ctx.incident_id}")
    back = "primary" if p.to == "backup" else "backup"
    return f"{rt.ctx.target}: {before} → {url}", {"to": back}


EXECUTORS: dict[str, Executor] = {
    "set_concurrency": _set_concurrency,
    "restart_instance": _restart,
    "rolling_restart": _rolling_restart,
    "switch_model": _switch_model,
    "scale_out": _scale_out,
    "scale_in": _scale_in,
    "drain_instance": _drain,
    "undrain_instance": _undrain,
    "repair_dataset": _repair_dataset,
    "rollback_dataset": _rollback_dataset,
    "rollback_model": _rollback_model,
    "rollback_knowledge": _rollback_knowledge,
    "reset_gpu": _reset_gpu,
    "drain_node": _drain_node,
    "repin_to_lock": _repin,
    "retry_with_backoff": _retry,
    "resume_sync": _resume_sync,
    "failover": _failover,
}


@step_task(Step.FIX)
def apply_fix(ctx: StepContext, fix: FixOption, approval: ApprovalRecord | None) -> StepResult:
    """Carry out ``fix`` (guarded by :func:`require_approval`); in a dry run only record it."""
    rt = Runtime(ctx)
    t = StepTimer(Step.FIX)
    if not ctx.dry_run:
        # The guard comes first: nothing about production is even read before it passes.
        require_approval(rt.playbook, fix, approval)
    spec = ACTIONS[fix.action]
    record = ActionRecord(
        name=fix.action,
        risk=fix.risk,
        params=fix.params,
        target=ctx.instance or ctx.target,
        compensation=spec.compensation,
        dry_run=ctx.dry_run,
    )
    if ctx.dry_run:
        t.decide("fix", f"would {fix.name}", spec.description)
        return t.done(f"dry run: would {fix.name} ({spec.description})", actions=[record])
    result, comp_params = EXECUTORS[fix.action](rt, fix.params)
    record = record.model_copy(
        update={"applied": True, "result": result, "compensation_params": comp_params, "at": utcnow()}
    )
    return t.done(f"{fix.name}: {result}", actions=[record], data={"action": record.model_dump(mode="json")})


@step_task(Step.ROLLBACK)
def compensate(ctx: StepContext, action: ActionRecord) -> StepResult:
    """Run the action that undoes ``action`` (idempotent: draining twice is still drained)."""
    rt = Runtime(ctx)
    t = StepTimer(Step.ROLLBACK)
    if not action.applied or action.compensation is None:
        return t.done(f"nothing to undo for {action.name}", status="skipped")
    result, _ = EXECUTORS[action.compensation](rt, action.compensation_params)
    undo = ActionRecord(
        name=action.compensation,
        risk=Risk.LOW,
        params=action.compensation_params,
        target=action.target,
        applied=True,
        result=result,
    )
    return t.done(f"compensated {action.name} with {action.compensation}: {result}", actions=[undo])
