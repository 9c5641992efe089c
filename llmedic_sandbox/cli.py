"""``llmedic gameday``: run game-day scenarios through the whole stack and print the scorecard."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from llmedic.config import Settings

__all__ = ["gameday"]
out = Console(soft_wrap=True)


def gameday(
    scenarios: Annotated[list[str] | None, typer.Argument(help="Scenario names (default: all).")] = None,
    path: Annotated[
        list[Path] | None,
        typer.Option("--path", help="Scenario file or directory (repeatable; default: the shipped ones)."),
    ] = None,
    home: Annotated[
        Path | None, typer.Option(help="State directory of the game day (default: a new temporary one).")
    ] = None,
    list_only: Annotated[bool, typer.Option("--list", help="List the scenarios and exit.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the scorecard as JSON.")] = False,
) -> None:
    """Inject each scenario's fault into a sandbox, send its alert, and score the response:
    confirmed, diagnosed, fixed, verified, time to recover. Exit 1 when any scenario fails."""
    from llmedic_sandbox.gameday import GameDay, load_scenarios, scorecard

    chosen = load_scenarios(path, scenarios)
    if list_only:
        for s in chosen:
            out.print(f"{s.name:32} {escape(' '.join(s.description.split()))}")
        return
    state = home or Path(tempfile.mkdtemp(prefix="llmedic-gameday-"))
    day = GameDay(
        Settings(home=state),
        chosen,
        log=(lambda _m: None) if as_json else (lambda m: out.print(m, markup=False, highlight=False)),
    )
    rows = day.run()
    if as_json:
        out.print_json(json.dumps([r.as_dict() for r in rows]))
    else:
        out.print(scorecard(rows), markup=False, highlight=False)
        out.print(f"state in {state}")
    if not all(r.passed for r in rows):
        raise typer.Exit(1)
