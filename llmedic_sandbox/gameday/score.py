"""The game day's scorecard: what happened to each expected incident."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from llmedic.incident import Incident, Outcome, Step
from llmedic_sandbox.gameday.scenario import Expect, Scenario

__all__ = ["ScoreRow", "score", "scorecard"]


@dataclass
class ScoreRow:
    """What happened to one expected incident."""

    scenario: str
    anomaly: str
    target: str
    confirmed: bool = False
    diagnosed: bool = False
    fixed: bool = False
    verified: bool = False
    outcome: str = "none"
    expected_outcome: str = ""
    seconds_to_recover: float | None = None
    flow_run_id: str = ""
    alert_path: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Everything the scenario expected happened."""
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {**self.__dict__, "passed": self.passed}


def scorecard(rows: list[ScoreRow]) -> str:
    """The scorecard as plain fixed-width text (readable in a terminal and in CI logs alike),
    each failed expectation's problems under the table."""
    head = (
        "scenario",
        "anomaly",
        "target",
        "confirmed",
        "diagnosed",
        "fixed",
        "verified",
        "outcome",
        "recover",
        "result",
    )
    body = [
        (
            r.scenario,
            r.anomaly,
            r.target,
            *("yes" if v else "-" for v in (r.confirmed, r.diagnosed, r.fixed, r.verified)),
            r.outcome,
            f"{r.seconds_to_recover:.0f} s" if r.seconds_to_recover is not None else "-",
            "pass" if r.passed else "FAIL",
        )
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=True)]
    lines = [
        "  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip()
        for line in (head, *body)
    ]
    for r in rows:
        lines.extend(f"{r.scenario} {r.anomaly} {r.target}: {p}" for p in r.problems)
    met = sum(r.passed for r in rows)
    lines.append(f"{met}/{len(rows)} expectations met over {len({r.scenario for r in rows})} scenario(s)")
    return "\n".join(lines)


InstanceActions = Callable[[], dict[str, list[str]]]
"""Each sandbox instance's actions since the last reset, the injections left out."""


def score(
    scenario: Scenario,
    rows: list[ScoreRow],
    new: list[Incident],
    injected: datetime,
    paths: list[str],
    instance_actions: InstanceActions,
) -> None:
    """Fill ``rows`` (one per expected incident) from the incidents the scenario produced."""
    unmatched = list(new)
    for exp, row in zip(scenario.expect, rows, strict=True):
        row.alert_path = "; ".join(sorted(set(paths)))
        inc = next(
            (i for i in unmatched if i.anomaly == exp.anomaly and exp.target in (i.target, i.service)),
            None,
        )
        if inc is None:
            row.problems.append(f"no {exp.anomaly.value} incident on {exp.target}")
            continue
        unmatched.remove(inc)
        _score_one(exp, row, inc, injected)
        if exp.touches_nothing:
            applied = [a.name for a in inc.actions if a.applied]
            touched = {n: a for n, a in instance_actions().items() if a}
            if inc.actions or touched:
                row.problems.append(f"touched: incident actions {applied}, instances {touched}")
    for extra in unmatched:
        rows[0].problems.append(
            f"unexpected {extra.anomaly.value} incident on {extra.target} ({extra.outcome.value})"
        )


def _score_one(exp: Expect, row: ScoreRow, inc: Incident, injected: datetime) -> None:
    """One expected incident against the one that matched it."""
    row.flow_run_id = inc.flow_run_id
    row.outcome = inc.outcome.value
    row.confirmed = inc.outcome not in (Outcome.FALSE_POSITIVE, Outcome.OPEN)
    row.diagnosed = bool(exp.diagnosis and inc.diagnosis.startswith(exp.diagnosis))
    applied = [a.name for a in inc.actions if a.applied]
    chosen = [d.choice for d in inc.decisions if d.topic == "fix"]
    fix_ran = any(r.step == Step.FIX and r.status == "ok" for r in inc.timeline)
    row.fixed = bool(exp.fix and exp.fix in chosen and fix_ran)
    row.verified = bool(inc.verification and inc.verification.passed)
    if inc.outcome == Outcome.RESOLVED and inc.closed_at is not None:
        row.seconds_to_recover = round((inc.closed_at - injected).total_seconds(), 1)
    if inc.outcome != exp.outcome:
        row.problems.append(
            f"outcome {inc.outcome.value}, expected {exp.outcome.value}"
            + (f" ({inc.escalation_reason})" if inc.escalation_reason else "")
        )
    if exp.diagnosis and not row.diagnosed:
        row.problems.append(f"diagnosis {inc.diagnosis!r}, expected {exp.diagnosis!r}…")
    if exp.fix and not row.fixed:
        row.problems.append(
            f"fix {exp.fix} not applied (chosen: {chosen or 'none'}; actions applied: {applied or 'none'})"
        )
    if exp.outcome == Outcome.RESOLVED and not row.verified:
        row.problems.append("not verified")
    if exp.escalation and exp.escalation not in inc.escalation_reason:
        row.problems.append(f"escalation {inc.escalation_reason!r} does not say {exp.escalation!r}")
    if exp.joined is not None and len(inc.joined_alerts) != exp.joined:
        row.problems.append(
            f"{len(inc.joined_alerts)} alerts joined the incident "
            f"({', '.join(j.target for j in inc.joined_alerts) or 'none'}), expected {exp.joined}"
        )
    gates = [a for a in inc.approvals if not a.refused]
    if exp.joined and len(gates) > 1:
        row.problems.append(f"{len(gates)} approval decisions on one incident, expected at most one")
    missing = sorted(set(exp.evidence) - {e.name for e in inc.evidence})
    if missing:
        row.problems.append(f"evidence missing: {', '.join(missing)}")
