"""The ``llmedic`` command: the root app, one module per command group, and the plugin commands.

``alerts`` (alerts, alert send), ``approvals`` (approve, reject, approvers, approvals),
``incidents``, ``data``, ``audit``, ``models`` (model, golden), ``reviews`` (review, backup),
``system`` (up, receiver, config, playbooks, host, gpu), ``store`` (store import HOME).
Commands from other packages (the sandbox's demo, gameday, sandbox …) are loaded from the
entry-point group :data:`PLUGIN_GROUP`.
"""

from __future__ import annotations

import sys

import typer

from llmedic.cli import alerts, approvals, audit, data, incidents, models, reviews, store, system
from llmedic.config import settings_from_env
from llmedic.errors import AuthoringError, LlmedicError

__all__ = ["PLUGIN_GROUP", "app", "load_plugins", "main"]

app = typer.Typer(help="Remediation playbooks for vertical LLM services, on Prefect.", no_args_is_help=True)
for _name, _group in (
    ("approvals", approvals.approvals_app),
    ("approvers", approvals.approvers_app),
    ("incidents", incidents.incidents_app),
    ("alert", alerts.alert_app),
    ("playbooks", system.playbooks_app),
    ("config", system.config_app),
    ("data", data.data_app),
    ("audit", audit.audit_app),
    ("model", models.model_app),
    ("golden", models.golden_app),
    ("review", reviews.review_app),
    ("backup", reviews.backup_app),
    ("gpu", system.gpu_app),
    ("host", system.host_app),
    ("alerts", alerts.alerts_app),
    ("store", store.app),
):
    app.add_typer(_group, name=_name)
for _command in (system.up, system.receiver, approvals.approve, approvals.reject):
    app.command()(_command)


PLUGIN_GROUP = "llmedic.commands"
"""Entry-point group of commands other packages add to ``llmedic`` (the sandbox's: demo, gameday …).

An entry point's name is the command's (``gameday``) or ``GROUP.COMMAND`` for a command of an
existing group (``data.inject``); its value a typer app (added as a group) or a command function."""


def load_plugins(root: typer.Typer) -> list[str]:
    """Add every command registered under :data:`PLUGIN_GROUP` to ``root``; the names added.

    A plugin that cannot be loaded is reported on stderr and left out: the rest of ``llmedic``
    keeps working."""
    from importlib.metadata import entry_points

    groups = {g.name: g.typer_instance for g in root.registered_groups if g.name and g.typer_instance}
    added: list[str] = []
    for ep in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        group, _, name = ep.name.rpartition(".")
        try:
            target = groups[group] if group else root
            obj = ep.load()
        except Exception as exc:  # a broken plugin must not take the whole command down
            sys.stderr.write(f"llmedic: command plugin {ep.name} ({ep.value}) not loaded: {exc!r}\n")
            continue
        if isinstance(obj, typer.Typer):
            target.add_typer(obj, name=name)
        else:
            target.command(name)(obj)
        added.append(ep.name)
    return added


load_plugins(app)


def main() -> None:
    """Entry point: run the app; print llmedic errors without a traceback."""
    import contextlib

    from llmedic.prefect_auth import adopt_api_auth

    try:
        # `llmedic approve` & co. send the installation's Prefect API auth string (if any); a bad
        # LLMEDIC_* value is reported by the command that reads the settings.
        with contextlib.suppress(LlmedicError):
            adopt_api_auth(settings_from_env().home)
        # Without standalone mode click hands back the code of a `typer.Exit` instead of exiting.
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except LlmedicError as exc:
        # Plain text: error lines must not be wrapped or styled when stderr is a file or a pipe.
        sys.stderr.write(f"error [{exc.code}]: {exc.message}\n")
        if exc.hint:
            sys.stderr.write(f"  fix: {exc.hint}\n")
        sys.exit(2 if isinstance(exc, AuthoringError) else 1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
