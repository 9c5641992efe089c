"""``llmedic data``: versioned datasets (validate, ingest, history, rollback, quarantine)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from llmedic.config import load_environment, settings_from_env

__all__ = ["data_app", "open_dataset", "print_findings"]

data_app = typer.Typer(help="Versioned datasets: validate, ingest, history, rollback.", no_args_is_help=True)
out = Console(soft_wrap=True)  # long lines stay whole in logs and pipes


def open_dataset(name: str) -> tuple[Any, Any]:
    """The dataset store (seeded) and the declaration of dataset ``name`` in llmedic.yaml."""
    from llmedic.adapters.datastore import DataStore

    settings = settings_from_env()
    cfg = load_environment(settings=settings).dataset(name)
    store = DataStore(settings.datasets_dir)
    store.ensure_seeded(name, cfg)
    return store, cfg


def print_findings(audit: Any) -> None:
    """One plain line per finding (readable in CI logs, where tables get squeezed)."""
    if not audit.findings:
        out.print("no findings")
    for f in audit.findings:
        mark = "BREACH" if f.breach else "note  "
        patterns = f" [{'; '.join(f.patterns[:4])}]" if f.patterns else ""
        out.print(
            f"{mark} {f.anomaly.value:12} {f.kind:14} {f.share:7.2%} (limit {f.threshold:.2%})  {f.message}{patterns}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


@data_app.command("list")
def data_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Declared datasets and their current versions."""
    from llmedic.adapters.datastore import DataStore

    settings = settings_from_env()
    env = load_environment(settings=settings)
    store = DataStore(settings.datasets_dir)
    rows: list[dict[str, Any]] = []
    for name, cfg in sorted(env.datasets.items()):
        state = store.state(name)
        rows.append(
            {
                "dataset": name,
                "format": cfg.format,
                "versions": len(store.versions(name)),
                "current": state.current,
                "reference": state.reference,
                "quarantined": sorted(state.quarantined),
            }
        )
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table("dataset", "format", "versions", "current", "reference", "quarantined")
    for r in rows:
        table.add_row(
            r["dataset"],
            r["format"],
            str(r["versions"]),
            r["current"] or "—",
            r["reference"] or "—",
            ", ".join(r["quarantined"]),
        )
    out.print(table if rows else "no datasets declared in llmedic.yaml")


@data_app.command("versions")
def data_versions(dataset: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every version of a dataset with its lineage (who, why, which pipeline step)."""
    store, _ = open_dataset(dataset)
    info = store.describe(dataset)
    if as_json:
        out.print_json(json.dumps(info))
        return
    table = Table("version", "", "rows", "created", "by", "producer", "parent", "why")
    for v in info["versions"]:
        mark = "current" if v["id"] == info["current"] else ""
        if v["id"] in info["quarantined"]:
            mark = "quarantined"
        if v["id"] == info["reference"]:
            mark = (mark + " reference").strip()
        prod = v["producer"]
        table.add_row(
            v["id"],
            mark,
            str(v["rows"]),
            v["created_at"][:19],
            v["by"],
            prod["step"] + (f"/{prod['job']}" if prod["job"] else ""),
            v["parent"] or "",
            v["why"][:60],
        )
    out.print(table)


@data_app.command("validate")
def data_validate(
    dataset: str,
    file: Path,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable report.")] = False,
) -> None:
    """ETL gate: validate a candidate batch against the declared schema and the reference version.

    Exit 0 when nothing breaches, 1 when something does or the file cannot be used as the dataset.
    """
    from llmedic.adapters.datastore import check_columns, read_table
    from llmedic.anomalies.data.audit import audit_frame
    from llmedic.errors import DatasetError

    store, cfg = open_dataset(dataset)
    try:
        frame = read_table(file, cfg.format, cfg.encoding)
        check_columns(frame, cfg, str(file))
    except DatasetError as exc:
        if as_json:
            out.print_json(
                json.dumps(
                    {
                        "dataset": dataset,
                        "file": str(file),
                        "passed": False,
                        "error": {"code": exc.code, "message": exc.message, "hint": exc.hint},
                    }
                )
            )
        else:
            sys.stderr.write(
                f"FAIL {file}: [{exc.code}] {exc.message}\n" + (f"  fix: {exc.hint}\n" if exc.hint else "")
            )
        raise typer.Exit(1) from None
    state = store.state(dataset)
    reference = store.read(dataset, cfg, state.reference)[1] if state.reference else None
    audit = audit_frame(
        frame, cfg, dataset=dataset, version=str(file), reference=reference, reference_version=state.reference
    )
    passed = not audit.breaches()
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "dataset": dataset,
                    "file": str(file),
                    "passed": passed,
                    "audit": json.loads(audit.model_dump_json()),
                }
            )
        )
    else:
        out.print(
            f"{'PASS' if passed else 'FAIL'} {file} as {dataset}: {audit.rows} rows, {len(audit.breaches())} breach(es)"
            + (f", reference {state.reference}" if state.reference else "")
        )
        print_findings(audit)
    raise typer.Exit(0 if passed else 1)


@data_app.command("ingest")
def data_ingest(
    dataset: str,
    file: Path,
    by: Annotated[str, typer.Option(help="Who delivers the batch.")],
    why: Annotated[str, typer.Option(help="Why (shown in the version history).")] = "batch",
    step: Annotated[str, typer.Option(help="Pipeline step that produced it (lineage).")] = "manual",
    job: Annotated[str, typer.Option(help="Job / run id of that step.")] = "",
    force: Annotated[bool, typer.Option(help="Make it current even if it breaches.")] = False,
) -> None:
    """Add a batch as a new version. A batch that breaches is kept but quarantined (exit 1)."""
    from llmedic.adapters.datastore import Producer
    from llmedic.auditing import audit_version
    from llmedic.registry import ModelRegistry

    store, cfg = open_dataset(dataset)
    registry = ModelRegistry.from_settings(settings_from_env())
    for service in cfg.consumers:
        registry.check_not_frozen(service, f"ingest into {dataset}")
    v = store.commit(
        dataset, file, cfg, by=by, why=why, producer=Producer(step=step, job=job), make_current=False
    )
    audit = audit_version(store, dataset, cfg, v.id)
    breaches = audit.breaches()
    if breaches and not force:
        store.quarantine(
            dataset, v.id, cfg, by=by, why=f"failed validation on ingest: {len(breaches)} breach(es)"
        )
        out.print(
            f"{v.id} stored but QUARANTINED ({len(breaches)} breach(es)); consumers stay on {store.state(dataset).current}"
        )
        print_findings(audit)
        raise typer.Exit(1)
    store.set_current(dataset, v.id, cfg, by=by, why=why)
    out.print(
        f"{v.id} is current ({v.rows} rows)"
        + (f"; forced past {len(breaches)} breach(es)" if breaches else "")
    )


@data_app.command("rollback")
def data_rollback(
    dataset: str,
    version: str,
    by: Annotated[str, typer.Option(help="Who decides.")],
    why: Annotated[str, typer.Option(help="Why (kept in the history).")] = "manual rollback",
) -> None:
    """Point consumers at an earlier version (nothing is deleted)."""
    store, cfg = open_dataset(dataset)
    before = store.state(dataset).current
    v = store.set_current(dataset, version, cfg, by=by, why=why)
    out.print(f"{dataset}: {before} → {v.id}")


@data_app.command("quarantine")
def data_quarantine(
    dataset: str,
    version: str,
    by: Annotated[str, typer.Option()],
    why: Annotated[str, typer.Option()] = "manual",
) -> None:
    """Hold a version back from consumers."""
    store, cfg = open_dataset(dataset)
    moved = store.quarantine(dataset, version, cfg, by=by, why=why)
    out.print(f"quarantined {version}" + (f"; consumers moved to {moved.id}" if moved else ""))


@data_app.command("release")
def data_release(
    dataset: str,
    version: str,
    by: Annotated[str, typer.Option()],
    why: Annotated[str, typer.Option()] = "manual",
) -> None:
    """Lift a quarantine (the version does not become current by itself)."""
    store, _ = open_dataset(dataset)
    v = store.release(dataset, version, by=by, why=why)
    out.print(f"released {v.id}")


@data_app.command("reference")
def data_reference(
    dataset: str,
    version: str,
    by: Annotated[str, typer.Option()],
    why: Annotated[str, typer.Option()] = "new baseline",
) -> None:
    """Make a version the reference drift is measured against."""
    store, _ = open_dataset(dataset)
    v = store.set_reference(dataset, version, by=by, why=why)
    out.print(f"{dataset}: reference is now {v.id}")
