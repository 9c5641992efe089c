"""Which declared things a review run covers: what it was asked for, or everything declared."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["choose"]


def choose(
    requested: list[str], declared: Iterable[str], unknown_is: str = "unknown {kind}(s)", *, kind: str
) -> tuple[list[str], str | None]:
    """``requested`` (or every declared name when empty), or an empty list and why the run cannot go
    on: the names that are not declared, beside the ones that are."""
    known = sorted(set(declared))
    names = requested or known
    unknown = [n for n in names if n not in known]
    if unknown:
        return [], f"{unknown_is.format(kind=kind)} {unknown}; declared: {known}"
    return names, None
