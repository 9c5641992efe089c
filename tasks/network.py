"""The step tasks of the network_interruption playbook: probe the link hop by hop (DNS, TCP connect
loss and latency over N tries, HTTP), check the artifact it carries (present, whole, checksum), and
name the hop that fails."""

from __future__ import annotations

from typing import Any

from llmedic.adapters.netprobe import LinkProbe, probe_link
from llmedic.adapters.shell import make_shell, run_template
from llmedic.anomalies.network.diagnosis import HARD_FAILURES, ArtifactState, diagnose_link
from llmedic.config import NetworkLink
from llmedic.errors import ConfigError, LlmedicError
from llmedic.incident import Step, StepResult, VerificationCheck
from llmedic.network import active_url
from llmedic.playbook import NetworkSettings
from llmedic.transfer import partial_of, sha256_of
from tasks.runtime import Runtime, StepContext, StepTimer, step_task
from tasks.verify import verification_result

__all__ = [
    "assess_network",
    "confirm_network",
    "evidence_network",
    "no_isolation",
    "no_release",
    "reproduce_network",
    "verify_network",
]


def _link(rt: Runtime) -> NetworkLink:
    link = rt.env.network.links.get(rt.ctx.target)
    if link is None:
        raise ConfigError(
            f"{rt.ctx.target!r} is not declared under network.links",
            hint="declare the link (url, backup_url, consumers, artifact) in llmedic.yaml",
        )
    return link


def _probe(rt: Runtime, s: NetworkSettings, t: StepTimer, name: str) -> tuple[LinkProbe, str, str]:
    url = active_url(rt.ctx.settings().home, rt.ctx.target, _link(rt))
    p = probe_link(url, tries=s.tries, timeout=s.timeout_seconds)
    diagnosis, reason = p.diagnose(
        loss_threshold=s.loss_threshold, latency_threshold=s.latency_threshold_seconds
    )
    t.add(name, "probe", f"{url}: {reason}", {**p.as_dict(), "diagnosis": diagnosis})
    return p, diagnosis, reason


def _artifact(rt: Runtime) -> dict[str, Any] | None:
    a = _link(rt).artifact
    if a is None:
        return None
    part = partial_of(a.dest)
    state: dict[str, Any] = {
        "dest": str(a.dest),
        "exists": a.dest.exists(),
        "partial_bytes": part.stat().st_size if part.exists() else 0,
    }
    state["verified"] = bool(state["exists"]) and sha256_of(a.dest) == a.sha256
    return state


@step_task(Step.CONFIRM)
def confirm_network(ctx: StepContext) -> StepResult:
    """Probe the link's active endpoint N times; check its artifact. Confirmed when a hop fails,
    loss or latency is over threshold, or the artifact is missing, partial or corrupt."""
    rt = Runtime(ctx)
    s = rt.settings_as(NetworkSettings)
    t = StepTimer(Step.CONFIRM)
    _, diagnosis, reason = _probe(rt, s, t, "probe")
    art = _artifact(rt)
    if art is not None:
        t.add(
            "artifact",
            "filesystem",
            f"{art['dest']}: "
            + ("verified" if art["verified"] else f"not in place ({art['partial_bytes']} bytes received)"),
            art,
        )
    confirmed = diagnosis != "healthy" or (art is not None and not art["verified"])
    why = (
        reason
        if diagnosis != "healthy"
        else ("the artifact transfer is interrupted" if confirmed else reason)
    )
    t.decide("confirm", "confirmed" if confirmed else "not confirmed", why)
    return t.done(why, data={"confirmed": confirmed, "diagnosis": diagnosis, "artifact": art})


@step_task(Step.ASSESS)
def assess_network(ctx: StepContext, confirm: dict[str, Any] | None = None) -> StepResult:
    """Which services depend on the link."""
    rt = Runtime(ctx)
    t = StepTimer(Step.ASSESS)
    link = _link(rt)
    impact = f"link {ctx.target} ({link.url}); consumers: {link.consumers or 'none declared'}"
    t.decide("route", "ops team", "network links are the ops team's")
    return t.done(impact, data={"scope": "link", "impact": impact})


def _host_probes(rt: Runtime, t: StepTimer) -> dict[str, bool]:
    """Each ``probe_from`` host's view of the link (over SSH for remote hosts)."""
    link = _link(rt)
    url = active_url(rt.ctx.settings().home, rt.ctx.target, link)
    seen: dict[str, bool] = {}
    for name in link.probe_from:
        host = rt.env.host(name)
        try:
            out = run_template(make_shell(host), rt.env.commands, "net_probe", {"url": url}, check=False)
        except LlmedicError as exc:
            seen[name] = False
            t.add(f"probe_from_{name}", name, f"{name} could not probe: {exc.message}", gap=True)
            continue
        code, secs = [*out.stdout.split(), "000", "0"][:2]
        ok = out.ok and code.isdigit() and 200 <= int(code) < 500
        seen[name] = ok
        t.add(
            f"probe_from_{name}",
            name,
            f"{name} → {url}: HTTP {code} in {secs}s" + ("" if ok else " (failed)"),
            {"code": code, "seconds": secs, "ok": ok},
        )
    return seen


@step_task(Step.EVIDENCE)
def evidence_network(ctx: StepContext, confirm: dict[str, Any], assess: dict[str, Any]) -> StepResult:
    """The failing hop decides: a hard failure fails over, loss or slowness retries with backoff,
    an interrupted transfer resumes."""
    rt = Runtime(ctx)
    t = StepTimer(Step.EVIDENCE)
    link = _link(rt)
    hop = str(confirm.get("diagnosis"))  # the probe's verdict on the first failing hop
    art = confirm.get("artifact")
    hosts = _host_probes(rt, t) if hop in HARD_FAILURES else {}
    diagnosis, reason = diagnose_link(
        hop, ArtifactState.model_validate(art) if art else None, hosts, has_backup=bool(link.backup_url)
    )
    t.decide("diagnosis", diagnosis, reason)
    return t.done(f"{diagnosis}: {reason}", data={"diagnosis": diagnosis, "reason": reason})


@step_task(Step.ISOLATE)
def no_isolation(ctx: StepContext, evidence: dict[str, Any]) -> StepResult:
    """A link is not drained: its consumers move only through the fix (failover)."""
    t = StepTimer(Step.ISOLATE)
    t.decide("isolate", "no", "a link is not isolated; failover is the fix")
    return t.done("nothing to isolate for a link", status="skipped", data={"isolated": False})


@step_task(Step.REPRODUCE)
def reproduce_network(ctx: StepContext) -> StepResult:
    """Probe again: is it still failing?"""
    rt = Runtime(ctx)
    s = rt.settings_as(NetworkSettings)
    t = StepTimer(Step.REPRODUCE)
    _, diagnosis, reason = _probe(rt, s, t, "reprobe")
    return t.done(f"{diagnosis}: {reason}", data={"diagnosis": diagnosis})


@step_task(Step.VERIFY)
def verify_network(ctx: StepContext, confirm: dict[str, Any] | None = None) -> StepResult:
    """The active endpoint answers every try under the latency threshold, and the artifact (if any)
    is in place with its checksum."""
    rt = Runtime(ctx)
    s = rt.settings_as(NetworkSettings)
    t = StepTimer(Step.VERIFY)
    p, diagnosis, reason = _probe(rt, s, t, "probe_after")
    checks = [
        VerificationCheck(
            name="link_answers", passed=diagnosis == "healthy", observed=reason, expected="healthy"
        ),
        VerificationCheck(name="no_loss", passed=p.loss == 0.0, observed=f"{p.loss:.0%}", expected="0%"),
    ]
    art = _artifact(rt)
    if art is not None:
        checks.append(
            VerificationCheck(
                name="artifact_verified",
                passed=art["verified"],
                observed=str(art["verified"]),
                expected="True",
            )
        )
    return verification_result(t, checks)


@step_task(Step.RECOVER)
def no_release(ctx: StepContext, isolated: bool) -> StepResult:
    """Nothing was isolated."""
    return StepTimer(Step.RECOVER).done("nothing to release", status="skipped")
