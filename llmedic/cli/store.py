"""``llmedic store``: the state store's database — bring a file-based home into it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from llmedic.config import settings_from_env

__all__ = ["app"]

app = typer.Typer(
    help="The state store (LLMEDIC_STORE_URL, default <home>/llmedic.db).", no_args_is_help=True
)
out = Console(soft_wrap=True)


@app.command("import")
def import_(
    home: Annotated[
        Path, typer.Argument(help="A file-based LLMEDIC_HOME (incidents/*.json, kb/, models/ …).")
    ],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Copy the records of a file-based home into this process's state store. Idempotent: records
    already there are kept as they are; the files are never changed or deleted."""
    from llmedic.store import Store
    from llmedic.store.importer import import_home

    store = Store.from_settings(settings_from_env())
    done = import_home(home, store)
    if as_json:
        out.print_json(json.dumps({"store": store.where, "found": done.found, "added": done.added}))
        return
    table = Table("records", "in the files", "added", title=f"{home} → {store.where}")
    for kind, found in done.found.items():
        table.add_row(kind, str(found), str(done.added[kind]))
    out.print(table)
