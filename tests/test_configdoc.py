"""The configuration reference is generated from the validating models and kept identical to them."""

from pathlib import Path

from typer.testing import CliRunner

from llmedic.cli import app
from llmedic.config import EnvironmentFile, Settings
from llmedic.configdoc import render_reference
from llmedic.playbook import SETTINGS_MODELS, Playbook

REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "reference" / "configuration.md"


def test_the_committed_reference_is_what_the_models_generate() -> None:
    printed = CliRunner().invoke(app, ["config", "reference"])
    assert printed.exit_code == 0
    assert REFERENCE.read_text(encoding="utf-8") == printed.output == render_reference(), (
        "docs/reference/configuration.md is stale: run "
        "`llmedic config reference > docs/reference/configuration.md`"
    )


def test_every_key_is_listed_with_a_description() -> None:
    text = render_reference()
    for model in (EnvironmentFile, Playbook, *set(SETTINGS_MODELS.values())):
        for name in model.model_fields:
            assert f"| `{name}` |" in text, (model.__name__, name)
    for name in Settings.model_fields:
        assert f"| `LLMEDIC_{name.upper()}` |" in text
    undocumented = [line for line in text.splitlines() if line.startswith("| `") and line.endswith("|  |")]
    assert undocumented == []
