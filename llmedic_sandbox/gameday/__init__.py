"""Game days: inject a fault, let the alert arrive, and score what llmedic did about it.

``scenario`` holds the scenario files' models (what to break, which alert follows, what a good
response looks like; the shipped ones are in ``scenarios/``), ``runner`` the :class:`GameDay` that
runs them through the whole stack, ``score`` the scorecard.
"""

from llmedic_sandbox.gameday.runner import GameDay
from llmedic_sandbox.gameday.scenario import Scenario, load_scenarios, shipped_scenarios
from llmedic_sandbox.gameday.score import ScoreRow, scorecard

__all__ = ["GameDay", "Scenario", "ScoreRow", "load_scenarios", "scorecard", "shipped_scenarios"]
