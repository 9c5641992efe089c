"""``llmedic model`` and ``llmedic golden``: the model registry and the golden sets from the shell."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

from llmedic.config import load_environment, settings_from_env
from llmedic.errors import ConfigError

__all__ = ["golden_app", "model_app"]

model_app = typer.Typer(
    help="The model registry: releases, baselines, verdicts, freezes.", no_args_is_help=True
)
golden_app = typer.Typer(help="Golden sets: check the files, score a service now.", no_args_is_help=True)
out = Console(soft_wrap=True)


def _evaluation(service: str) -> Any:
    from llmedic.catalog import AnomalyType
    from llmedic.evaluation import Evaluation
    from llmedic.playbook import AccuracySettings, load_playbook

    settings = settings_from_env()
    env = load_environment(settings=settings)
    env.service(service)
    pb = load_playbook(AnomalyType.ACCURACY_DROP, settings)
    return Evaluation(env, settings, service, AccuracySettings.model_validate(pb.settings))


def _config(pairs: list[str]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {pair!r} is not KEY=VALUE", hint="e.g. --set quantization=awq")
        value = yaml.safe_load(raw) if raw else None
        if isinstance(value, (dict, list)):
            raise ConfigError(f"--set {key}: values are scalars (text, number, true/false), not {raw!r}")
        config[key.strip()] = value
    return config


@model_app.command("list")
def model_list(service: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Releases (current, bad), baselines and the freeze of a service."""
    info = _evaluation(service).registry.describe(service)
    if as_json:
        out.print_json(json.dumps(info))
        return
    table = Table("version", "", "released", "by", "config", "note")
    for r in info["releases"]:
        mark = "bad" if r["bad"] else ""
        table.add_row(
            r["version"],
            mark,
            r["at"][:19],
            r["by"],
            ", ".join(f"{k}={v}" for k, v in r["config"].items()),
            (r["note"] or "")[:60],
        )
    out.print(table)
    out.print(f"current: {info['current']}")
    for b in info["baselines"]:
        out.print(
            f"baseline {b['version']} on {b['golden']}: {b['accuracy']:.1%} of {b['items']} items ({b['at'][:19]})"
        )
    if info["frozen"]:
        f = info["frozen"]
        out.print(f"FROZEN since {f['at'][:19]} by {f['by']} ({f['incident'] or 'manual'}): {f['note']}")


@model_app.command("release")
def model_release(
    service: str,
    version: str,
    by: Annotated[str, typer.Option(help="Who releases it.")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Serving configuration KEY=VALUE (sampling, quantisation, limits)."),
    ] = None,
    note: Annotated[str, typer.Option(help="Why (kept in the history).")] = "",
) -> None:
    """Record that VERSION went into service (refused while an incident froze updates)."""
    ev = _evaluation(service)
    rel = ev.registry.record_release(service, version, config=_config(set_ or []), by=by, note=note)
    out.print(f"{service}: {rel.version} recorded as released by {by}")


@model_app.command("baseline")
def model_baseline(
    service: str,
    by: Annotated[str, typer.Option(help="Who vouches that the service is healthy now.")],
    version: Annotated[str | None, typer.Option(help="Version to file it under (default: current).")] = None,
    note: Annotated[str, typer.Option(help="Why (kept in the history).")] = "",
) -> None:
    """Score the whole golden set against the in-rotation instances and keep it as the baseline."""
    ev = _evaluation(service)
    card = ev.score()
    base = ev.record_baseline(card, by=by, note=note, version=version)
    s = card.summary()
    out.print(
        f"baseline of {service} {base.version} on {base.golden}: {s['correct']}/{s['answered']} "
        f"({card.accuracy:.1%}), {s['errors']} failed, {s['items_per_second']} items/s; datasets {base.datasets}"
    )
    for tag, (k, n) in card.by_tag().items():
        out.print(f"  {tag}: {k}/{n}")


@model_app.command("diff")
def model_diff(service: str, old: str, new: str) -> None:
    """Configuration difference between two released versions."""
    from llmedic.registry import config_diff

    reg = _evaluation(service).registry
    diff = config_diff(reg.release_of(service, old).config, reg.release_of(service, new).config)
    for d in diff:
        out.print(f"{d['key']}: {d['old']!r} → {d['new']!r}")
    if not diff:
        out.print("same configuration")


@model_app.command("unfreeze")
def model_unfreeze(
    service: str,
    by: Annotated[str, typer.Option(help="Who lifts it (kept in the history).")],
    note: Annotated[str, typer.Option(help="Why.")] = "lifted by hand",
) -> None:
    """Lift an incident's freeze on releases and dataset changes."""
    lifted = _evaluation(service).registry.unfreeze(service, by=by, note=note)
    out.print(f"{service}: " + ("unfrozen" if lifted else "was not frozen"))


@golden_app.command("check")
def golden_check(name: str) -> None:
    """Validate a golden set (and its adversarial set) without calling the service."""
    from llmedic.golden import load_adversarial, load_golden

    env = load_environment(settings=settings_from_env())
    if name not in env.golden_sets:
        raise ConfigError(f"no golden set {name!r}", hint=f"declared: {sorted(env.golden_sets)}")
    gs = env.golden_sets[name]
    items = load_golden(gs.path)
    tags = sorted({t for i in items for t in i.tags})
    out.print(f"{name}: {len(items)} items, {len(tags)} tags ({', '.join(tags[:12])})")
    if gs.adversarial:
        adv = load_adversarial(gs.adversarial)
        out.print(f"{name} adversarial: {len(adv)} prompts")


@golden_app.command("score")
def golden_score(
    service: str,
    sample: Annotated[int | None, typer.Option(help="Score a stratified sample of this many.")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Requests in flight.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Score the golden set against the service now (nothing is recorded)."""
    from llmedic.golden import sample_items

    ev = _evaluation(service)
    if concurrency is not None:
        ev.accuracy = ev.accuracy.model_copy(update={"concurrency": concurrency})
    card = ev.score(sample_items(ev.golden[1], sample, seed="cli"))
    if as_json:
        out.print_json(json.dumps({**card.summary(), "by_tag": card.by_tag()}))
        return
    s = card.summary()
    out.print(
        f"{service}: {s['correct']}/{s['answered']} correct ({card.accuracy:.1%}), {s['errors']} failed, "
        f"{s['seconds']} s at concurrency {card.concurrency}"
    )
