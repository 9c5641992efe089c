"""What every repository of the state store shares: how it is given its database."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Self

from llmedic.store.db import Store

if TYPE_CHECKING:
    from llmedic.config import Settings

__all__ = ["Repository", "utc"]


def utc(at: datetime) -> datetime:
    """``at`` in UTC (an index column compares like with like; naive times are taken as UTC)."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


class Repository:
    """A view of one kind of record in a :class:`Store`.

    ``Repo(store)`` uses that store; ``Repo(home)`` the store of an ``LLMEDIC_HOME`` directory
    (``LLMEDIC_STORE_URL`` if set, else ``<home>/llmedic.db``); :meth:`from_settings` the one the
    settings name.
    """

    def __init__(self, where: Store | Path) -> None:
        self.home: Path | None = None if isinstance(where, Store) else Path(where)
        self.store = where if isinstance(where, Store) else Store.at(Path(where))

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        """The repository in the store ``settings`` name, for their home."""
        repo = cls(Store.from_settings(settings))
        repo.home = settings.home
        return repo

    @property
    def where(self) -> str:
        """Where the records are (no credentials)."""
        return self.store.where
