"""The sandbox's ``llmedic`` commands: ``demo``, ``sandbox``, ``sandbox-history``, ``gameday`` and
``data inject``.

They reach the ``llmedic`` command as a plugin: ``pyproject.toml`` registers each under the
entry-point group ``llmedic.commands`` (``data.inject`` = the ``inject`` command of the ``data``
group), and ``llmedic.cli`` adds what it finds there. Production code never imports this module.
Every import that does real work stays inside its command, so ``llmedic --help`` stays fast.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

__all__ = ["data_inject", "demo", "gameday", "sandbox", "sandbox_history"]
out = Console(soft_wrap=True)  # long lines stay whole in logs and pipes


def demo(
    keep: Annotated[
        bool, typer.Option(help="Keep everything running afterwards to browse the Prefect UI.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.")] = 300.0,
) -> None:
    """Run one latency incident end to end on the embedded defaults."""
    from llmedic.config import settings_from_env
    from llmedic_sandbox.demo import Demo

    raise typer.Exit(Demo(settings_from_env(), timeout=timeout, keep=keep).run())


def sandbox(
    instances: Annotated[int, typer.Option(min=1, max=32)] = 3,
    standby: Annotated[int, typer.Option(min=0, max=8)] = 1,
    port: Annotated[int, typer.Option(help="First port (0: free ports).")] = 8100,
    host: str = "127.0.0.1",
    load_qps: Annotated[float, typer.Option(help="Background requests per second across the fleet.")] = 0.0,
    admin_token: Annotated[str | None, typer.Option(help="Require this bearer token on /admin.")] = None,
    write_config: Annotated[
        Path | None, typer.Option(help="Write the llmedic.yaml describing the fleet here.")
    ] = None,
    knowledge: Annotated[
        Path | None,
        typer.Option(
            help="Serve the knowledge base from this file, re-read on change; declared as the dataset drug-interactions."
        ),
    ] = None,
    trace_memory: Annotated[
        bool, typer.Option(help="Trace allocations (tracemalloc) so /admin/heap can show leak sites.")
    ] = False,
) -> None:
    """Run a simulated vertical LLM service fleet (clinical drug interactions)."""
    from llmedic_sandbox.fleet import FleetSpec, run_fleet

    if trace_memory:
        import tracemalloc

        tracemalloc.start()

    spec = FleetSpec(
        instances=instances,
        standby=standby,
        host=host,
        port=port,
        load_qps=load_qps,
        admin_token=admin_token,
        knowledge=knowledge.resolve() if knowledge else None,
    )
    run_fleet(spec, write_config)


def sandbox_history(
    config: Annotated[Path, typer.Option(help="The sandbox fleet's llmedic.yaml (instances to name).")],
    tsdb: Annotated[
        Path, typer.Option(help="Prometheus data directory to backfill (start Prometheus on it).")
    ],
    days: Annotated[int, typer.Option(min=7, max=120)] = 30,
    imbalance: Annotated[float, typer.Option(help="Load of the first instance vs each other one.")] = 1.0,
) -> None:
    """Backfill a month of synthetic fleet and GPU metrics into a Prometheus data directory."""
    from urllib.parse import urlsplit

    from llmedic.config import load_environment
    from llmedic.errors import ConfigError
    from llmedic_sandbox.history import HistorySpec, backfill, write_openmetrics

    env = load_environment(config)
    if not env.services:
        raise ConfigError(f"{config} declares no service")
    svc = env.services[0]
    spec = HistorySpec(
        instances=tuple(urlsplit(i.metrics_endpoint).netloc for i in svc.instances),
        end=time.time() // 900 * 900,
        days=days,
        model=svc.model or "model",
        imbalance=imbalance,
    )
    om = tsdb.parent / "history.om"
    n = write_openmetrics(spec, om)
    backfill(om, tsdb)
    out.print(
        f"{n} samples over {days} days backfilled into {tsdb} (start Prometheus with --storage.tsdb.retention.time=400d)"
    )


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
    from llmedic.config import Settings
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


def data_inject(
    dataset: str,
    fault: Annotated[
        str,
        typer.Option(
            help="blank, null_token, wrong_type, shuffle, duplicate, mojibake, date_format, shift, outliers"
        ),
    ],
    column: Annotated[str | None, typer.Option(help="Column to corrupt (all faults but duplicate).")] = None,
    share: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of rows hit.")] = 0.1,
    seed: int = 0,
    by: Annotated[str, typer.Option(help="Who injects (kept in the history).")] = "upstream-etl",
) -> None:
    """Game days and tests: commit a corrupted copy of the current version as the new current one."""
    from llmedic.cli.data import open_dataset
    from llmedic.errors import DatasetError
    from llmedic_sandbox.data_faults import FAULTS, inject

    if fault not in FAULTS:
        raise DatasetError(f"unknown fault {fault!r}", hint="; ".join(f"{k}: {v}" for k, v in FAULTS.items()))
    store, cfg = open_dataset(dataset)
    v = inject(store, dataset, cfg, fault, column=column, share=share, seed=seed, by=by)  # type: ignore[arg-type]
    out.print(f"{dataset}: {v.id} is current ({fault} on {column or 'rows'}, share {share:g})")
