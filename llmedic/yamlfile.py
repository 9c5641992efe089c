"""Load a YAML file into a pydantic model with errors that name the file, the line, the path and the fix.

Both ``llmedic.yaml`` and the playbooks go through :func:`load_model`, so an operator gets the same
kind of message for every file they edit::

    llmedic.yaml:14: services[0].instances[1].url: Input should be a valid URL (got 'localhost:8101')
      fix: write a full URL such as http://127.0.0.1:8101
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from llmedic.errors import AuthoringError

__all__ = ["format_loc", "load_model", "load_yaml", "validate_model"]

M = TypeVar("M", bound=BaseModel)

# Hints for the commonest pydantic error types; a model can add its own per field.
_TYPE_HINTS: dict[str, str] = {
    "extra_forbidden": "remove the key, or check its spelling against the documented fields",
    "missing": "add the key",
    "url_parsing": "write a full URL such as http://127.0.0.1:8000",
    "enum": "use one of the listed values",
    "literal_error": "use one of the listed values",
}


def format_loc(loc: Sequence[int | str]) -> str:
    """``("services", 0, "url")`` → ``services[0].url``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def load_yaml(path: Path, error: type[AuthoringError]) -> tuple[Any, yaml.Node | None]:
    """Read and parse ``path``; return the data and the node tree (for line numbers)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: file not found", hint="check the path") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text ({exc.reason})", hint="save it as UTF-8") from None
    except OSError as exc:
        raise error(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise error(
            f"{where}: YAML syntax error: {exc.problem}",
            hint="check indentation and quoting near that line",
        ) from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: YAML error: {exc}") from None
    return data, node


def _line_of(node: yaml.Node | None, loc: Sequence[int | str]) -> int | None:
    """1-based line of the deepest node along ``loc`` that exists in the YAML tree."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    node = value
                    line = key.start_mark.line + 1
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def validate_model(
    model: type[M],
    data: Any,
    *,
    source: str,
    error: type[AuthoringError],
    node: yaml.Node | None = None,
    hints: Callable[[str, str], str | None] | None = None,
    context: Mapping[str, Any] | None = None,
) -> M:
    """Validate ``data`` into ``model``; raise ``error`` listing every problem with its location."""
    if data is None:
        data = {}
    try:
        return model.model_validate(data, context=dict(context or {}))
    except ValidationError as exc:
        lines: list[str] = []
        fixes: list[str] = []
        for item in exc.errors(include_url=False):
            loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and "[" in p))
            path = format_loc(loc)
            line = _line_of(node, loc)
            where = f"{source}:{line}" if line else source
            got = ""
            if item["type"] not in ("missing", "extra_forbidden") and not isinstance(
                item.get("input"), dict | list
            ):
                got = f" (got {item.get('input')!r})"
            msg = item["msg"].removeprefix("Value error, ")
            lines.append(f"{where}: {path}: {msg}{got}")
            hint = (hints(path, item["type"]) if hints else None) or _TYPE_HINTS.get(item["type"])
            if hint and hint not in fixes:
                fixes.append(hint)
        count = len(lines)
        head = f"{source}: {count} problem{'s' if count > 1 else ''}\n  " + "\n  ".join(lines)
        raise error(head, hint="; ".join(fixes) if fixes else None) from None


def load_model(
    model: type[M],
    path: Path,
    *,
    error: type[AuthoringError],
    hints: Callable[[str, str], str | None] | None = None,
    context: Mapping[str, Any] | None = None,
) -> M:
    """Read ``path`` (YAML) and validate it into ``model``."""
    data, node = load_yaml(path, error)
    if data is not None and not isinstance(data, dict):
        raise error(
            f"{path}: the top level must be a mapping (key: value), not {type(data).__name__}",
            hint="start the file with keys such as `services:`",
        )
    return validate_model(model, data, source=str(path), error=error, node=node, hints=hints, context=context)
