"""What the memory-leak steps read: every in-rotation instance's resident-memory series judged by
the detector (confirm), memory now (assess), the fitted trends and instance states (evidence)."""

from __future__ import annotations

from typing import Any

import numpy as np

from llmedic.anomalies.common import release_evidence, system_evidence
from llmedic.anomalies.memory_leak.detector import LeakVerdict, detect_leak
from llmedic.anomalies.memory_leak.diagnosis import diagnose_leak
from llmedic.anomalies.memory_leak.results import LeakAssessment, LeakConfirmation, LeakFindings
from llmedic.anomalies.runtime import Runtime, StepTimer
from llmedic.catalog import anomaly_info
from llmedic.errors import MetricsSourceError
from llmedic.incident import Step
from llmedic.playbook import MemoryLeakSettings

__all__ = ["assess", "confirm", "evidence", "leak_verdict"]


def leak_verdict(s: MemoryLeakSettings, series: dict[str, Any]) -> LeakVerdict:
    """The detector on one instance's series, with the playbook's thresholds."""
    return detect_leak(
        np.asarray(series["t"], dtype=float),
        np.asarray(series["y"], dtype=float),
        limit=s.limit_bytes,
        warmup_seconds=s.warmup_seconds,
        min_samples=s.min_samples,
        p_value=s.p_value,
        horizon_hours=s.horizon_hours,
        min_growth_share=s.min_growth_share,
    )


def confirm(rt: Runtime) -> LeakConfirmation:
    """Read the resident memory of every instance of the service over the window — drained ones too:
    their processes still run, and an instance drained for another incident must not make one leak
    look like half the fleet's — and judge each series (Theil–Sen + Hamed–Rao Mann–Kendall + projected time to the limit).

    Confirmed when the incident's instance leaks. A series too short to judge is not a verdict of
    health: that raises (``metrics-unavailable``) and the incident is escalated, not closed."""
    s = rt.settings_as(MemoryLeakSettings)
    t = StepTimer(Step.CONFIRM)
    fleet = [*rt.service.instances]
    if rt.instance not in fleet:
        fleet.append(rt.instance)  # a standby instance's own incident
    series = rt.memory(fleet, s.window_seconds, s.sample_interval_seconds)
    verdicts = {name: leak_verdict(s, ser) for name, ser in series.items()}
    mine = verdicts[rt.instance.name]
    source = series[rt.instance.name]["source"]
    t.add(
        "memory_series",
        str(source),
        f"{rt.instance.name}: {mine.samples} samples over {s.window_seconds:g}s; {mine.reason}",
        {"verdict": mine.as_dict(), "t": series[rt.instance.name]["t"], "y": series[rt.instance.name]["y"]},
    )
    if not mine.judged:
        raise MetricsSourceError(
            f"{rt.instance.name}: cannot judge memory growth: {mine.reason}",
            hint="lengthen window_seconds or shorten sample_interval_seconds in the memory_leak playbook",
        )
    t.decide("confirmed", "yes" if mine.leaking else "no", mine.reason)
    return LeakConfirmation(
        **t.stamp(f"{'confirmed' if mine.leaking else 'not confirmed'}: {mine.reason}"),
        confirmed=mine.leaking,
        fleet=verdicts,
    )


def assess(rt: Runtime, confirmed: LeakConfirmation) -> LeakAssessment:
    """Where memory stands now on every in-rotation instance, and who responds."""
    t = StepTimer(Step.ASSESS)
    fleet = rt.in_rotation()
    now = rt.memory(fleet, 0, 1)
    rss = {name: (ser["y"][-1] if ser["y"] else None) for name, ser in now.items()}
    info = anomaly_info(rt.ctx.anomaly)
    known = {n: v for n, v in rss.items() if v is not None}
    impact = (
        f"{rt.instance.name} holds {known.get(rt.instance.name, float('nan')) / 2**20:.0f} MiB; "
        f"{len(fleet)} instance(s) of {rt.service.name} in rotation"
    )
    t.add(
        "memory_now",
        str(next(iter(now.values()))["source"]) if now else "metrics",
        impact,
        {"rss_bytes": rss},
    )
    t.decide("route", info.team.value, f"{info.category.value} anomalies go to the {info.team.value} team")
    return LeakAssessment(
        **t.stamp(f"{impact}; routed to {info.team.value}"),
        scope="instance",
        impact=impact,
        team=info.team.value,
        rss=rss,
    )


def evidence(rt: Runtime, confirmed: LeakConfirmation, assessed: LeakAssessment) -> LeakFindings:
    """The fitted trend of each instance and their state → one leaking process, or the release."""
    s = rt.settings_as(MemoryLeakSettings)
    t = StepTimer(Step.EVIDENCE)
    fleet = confirmed.fleet
    leaking = sorted(n for n, v in fleet.items() if v.leaking)
    states = {i.name: rt.control.state(i) for i in rt.in_rotation()}
    for name, v in fleet.items():
        st = states.get(name)
        t.add(
            f"trend_{name}",
            "leak-detector",
            f"{name}: {v.reason}",
            {**v.as_dict(), "state": st.as_dict() if st else None},
        )
    healthy_others = sum(
        1 for n, st in states.items() if n != rt.instance.name and st.healthy and n not in leaking
    )
    versions = sorted({st.model_version or "?" for st in states.values()})
    release_evidence(rt, t, served={n: st.model_version or "unknown" for n, st in states.items()})
    diagnosis, reason = diagnose_leak(rt.instance.name, fleet, versions, s.fleet_share_threshold)
    system_evidence(rt, t)
    t.decide("diagnosis", diagnosis, reason)
    return LeakFindings(
        **t.stamp(f"diagnosis {diagnosis}: {reason}"),
        diagnosis=diagnosis,
        reason=reason,
        leaking=leaking,
        healthy_others=healthy_others,
    )
