"""What the network-interruption steps read: the link's active endpoint probed hop by hop (DNS,
TCP connect loss and latency over N tries, HTTP), the artifact it carries (present, whole,
checksum), and on a hard failure each ``probe_from`` host's own view of the link."""

from __future__ import annotations

from llmedic.adapters.netprobe import LinkProbe, probe_link
from llmedic.adapters.shell import make_shell, run_template
from llmedic.anomalies.base import Assessment
from llmedic.anomalies.network.active import active_url
from llmedic.anomalies.network.diagnosis import HARD_FAILURES, ArtifactState, diagnose_link
from llmedic.anomalies.network.results import LinkConfirmation, LinkFindings
from llmedic.anomalies.runtime import Runtime, StepTimer
from llmedic.catalog import anomaly_info
from llmedic.config import NetworkLink
from llmedic.errors import ConfigError, LlmedicError
from llmedic.incident import Step
from llmedic.playbook import NetworkSettings
from llmedic.transfer import partial_of, sha256_of

__all__ = ["artifact_state", "assess", "confirm", "evidence", "link_of", "probe"]


def link_of(rt: Runtime) -> NetworkLink:
    """The declared link the incident is about."""
    link = rt.env.network.links.get(rt.ctx.target)
    if link is None:
        raise ConfigError(
            f"{rt.ctx.target!r} is not declared under network.links",
            hint="declare the link (url, backup_url, consumers, artifact) in llmedic.yaml",
        )
    return link


def probe(rt: Runtime, s: NetworkSettings, t: StepTimer, name: str) -> tuple[LinkProbe, str, str]:
    """Probe the link's active endpoint ``tries`` times: (probe, verdict, reason), as evidence."""
    url = active_url(rt.ctx.settings().home, rt.ctx.target, link_of(rt))
    p = probe_link(url, tries=s.tries, timeout=s.timeout_seconds)
    diagnosis, reason = p.diagnose(
        loss_threshold=s.loss_threshold, latency_threshold=s.latency_threshold_seconds
    )
    t.add(name, "probe", f"{url}: {reason}", {**p.as_dict(), "diagnosis": diagnosis})
    return p, diagnosis, reason


def artifact_state(rt: Runtime) -> ArtifactState | None:
    """Where the link's artifact stands (None: the link carries none)."""
    a = link_of(rt).artifact
    if a is None:
        return None
    part = partial_of(a.dest)
    exists = a.dest.exists()
    return ArtifactState(
        dest=str(a.dest),
        exists=exists,
        partial_bytes=part.stat().st_size if part.exists() else 0,
        verified=exists and sha256_of(a.dest) == a.sha256,
    )


def confirm(rt: Runtime) -> LinkConfirmation:
    """Probe the link's active endpoint N times; check its artifact. Confirmed when a hop fails,
    loss or latency is over threshold, or the artifact is missing, partial or corrupt."""
    s = rt.settings_as(NetworkSettings)
    t = StepTimer(Step.CONFIRM)
    _, hop, reason = probe(rt, s, t, "probe")
    art = artifact_state(rt)
    if art is not None:
        t.add(
            "artifact",
            "filesystem",
            f"{art.dest}: "
            + ("verified" if art.verified else f"not in place ({art.partial_bytes} bytes received)"),
            art.model_dump(),
        )
    confirmed = hop != "healthy" or (art is not None and not art.verified)
    why = reason if hop != "healthy" else ("the artifact transfer is interrupted" if confirmed else reason)
    t.decide("confirm", "confirmed" if confirmed else "not confirmed", why)
    return LinkConfirmation(**t.stamp(why), confirmed=confirmed, hop=hop, artifact=art)


def assess(rt: Runtime, confirmed: LinkConfirmation) -> Assessment:
    """Which services depend on the link."""
    t = StepTimer(Step.ASSESS)
    link = link_of(rt)
    impact = f"link {rt.ctx.target} ({link.url}); consumers: {link.consumers or 'none declared'}"
    t.decide("route", "ops team", "network links are the ops team's")
    return Assessment(
        **t.stamp(impact), scope="link", impact=impact, team=anomaly_info(rt.ctx.anomaly).team.value
    )


def _host_probes(rt: Runtime, t: StepTimer) -> dict[str, bool]:
    """Each ``probe_from`` host's view of the link (over SSH for remote hosts)."""
    link = link_of(rt)
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


def evidence(rt: Runtime, confirmed: LinkConfirmation, assessed: Assessment) -> LinkFindings:
    """The failing hop decides: a hard failure fails over, loss or slowness retries with backoff,
    an interrupted transfer resumes."""
    t = StepTimer(Step.EVIDENCE)
    link = link_of(rt)
    hop = confirmed.hop
    hosts = _host_probes(rt, t) if hop in HARD_FAILURES else {}
    diagnosis, reason = diagnose_link(hop, confirmed.artifact, hosts, has_backup=bool(link.backup_url))
    t.decide("diagnosis", diagnosis, reason)
    return LinkFindings(**t.stamp(f"{diagnosis}: {reason}"), diagnosis=diagnosis, reason=reason)
