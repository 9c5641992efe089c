"""``llmedic gameday``: run game-day scenarios through the whole stack and print the scorecard."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

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
    from llmedic.gameday import GameDay, load_scenarios

    chosen = load_scenarios(path, scenarios)
    if list_only:
        for s in chosen:
            out.print(f"{s.name:32} {escape(' '.join(s.description.split()))}")
        return
    state = home or Path(tempfile.mkdtemp(prefix="llmedic-gameday-"))
    day = GameDay(Settings(home=state), chosen, log=(lambda _m: None) if as_json else out.print)
    rows = day.run()
    if as_json:
        out.print_json(json.dumps([r.as_dict() for r in rows]))
    else:
        table = Table(
            "scenario",
            "anomaly",
            "target",
            "confirmed",
            "diagnosed",
            "fixed",
            "verified",
            "outcome",
            "recover s",
            "result",
        )
        for r in rows:
            table.add_row(
                r.scenario,
                r.anomaly,
                r.target,
                *("yes" if v else "-" for v in (r.confirmed, r.diagnosed, r.fixed, r.verified)),
                r.outcome,
                f"{r.seconds_to_recover:.0f}" if r.seconds_to_recover is not None else "-",
                "[green]pass[/]" if r.passed else "[red]FAIL[/]",
            )
        out.print(table)
        for r in rows:
            for p in r.problems:
                out.print(f"[red]{r.scenario}[/] {r.anomaly} {r.target}: {escape(p)}")
        passed = sum(r.passed for r in rows)
        out.print(f"{passed}/{len(rows)} expectations met over {len(chosen)} scenario(s); state in {state}")
    if not all(r.passed for r in rows):
        raise typer.Exit(1)
