"""The one seam where httpx errors become llmedic errors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx

from llmedic.errors import OperationalError

__all__ = ["translate_http_errors"]


@contextlib.contextmanager
def translate_http_errors(
    error: type[OperationalError], what: str, hint: str | None = None
) -> Iterator[None]:
    """Re-raise httpx transport and status errors as ``error`` with a message naming ``what``."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise error(f"{what}: timed out ({type(exc).__name__})", hint=hint) from exc
    except httpx.ConnectError as exc:
        raise error(f"{what}: cannot connect ({exc})", hint=hint) from exc
    except httpx.HTTPStatusError as exc:
        body = exc.response.text[:200].strip()
        raise error(
            f"{what}: HTTP {exc.response.status_code}" + (f": {body}" if body else ""), hint=hint
        ) from exc
    except httpx.HTTPError as exc:
        raise error(f"{what}: {type(exc).__name__}: {exc}", hint=hint) from exc
