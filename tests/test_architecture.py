"""The shape of the tree the architecture promises (docs/architecture.md): no module over 500 lines,
no function over 80 (declarative tables excepted, each named here with why), and the layer
contracts of pyproject.toml kept (import-linter, run as a test so `make test` and `make check` agree)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("llmedic", "llmedic_sandbox", "tasks", "flows")
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 80

# Functions that are a declarative table written as code (one entry per line); splitting them
# would scatter one table over several functions.
DECLARATIVE: dict[str, str] = {}


def _sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_no_module_is_over_500_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n for p in _sources() if (n := p.read_text().count("\n")) > MAX_FILE_LINES
    }
    assert long == {}


def test_no_function_is_over_80_lines() -> None:
    long: dict[str, int] = {}
    for p in _sources():
        rel = p.relative_to(ROOT)
        for node in ast.walk(ast.parse(p.read_text(), str(rel))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                where = f"{rel}:{node.name}"
                if size > MAX_FUNCTION_LINES and where not in DECLARATIVE:
                    long[f"{where} (line {node.lineno})"] = size
    assert long == {}


def test_the_layer_contracts_hold() -> None:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint, "import-linter is a dev dependency: run `make .venv/.installed`"
    done = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_public_api_is_what_llmedic_exports() -> None:
    import llmedic

    assert set(llmedic.__all__) == {"__version__", *llmedic._PUBLIC}
    missing = [name for name in llmedic._PUBLIC if getattr(llmedic, name, None) is None]
    assert missing == []
