"""The model registry: which model version each service runs, with what configuration, how it scored.

One append-only log of events per service (the ``registry_events`` table of the state store); the
state is replayed from them, so nothing is ever overwritten:

* ``release`` — a version went into service, with its serving configuration (sampling,
  quantisation, batch/concurrency limits: whatever keys the release names);
* ``baseline`` — a golden-set score of a version (per-item correctness, per-tag figures, and the
  dataset versions the service read at the time): what later scores are compared against;
* ``verdict`` — a version judged good or bad (an incident's rollback marks it bad);
* ``freeze`` / ``unfreeze`` — an incident stops model releases and changes to the datasets the
  service consumes while it investigates.

Release pipelines call ``llmedic model release``; llmedic records its own rollbacks the same way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmedic.errors import ModelRegistryError, StoreError, UpdatesFrozen
from llmedic.incident import utcnow
from llmedic.store.base import Repository, utc
from llmedic.store.tables import registry_events

__all__ = ["Baseline", "Freeze", "ModelRegistry", "RegistryEvent", "Release", "config_diff"]

Scalar = str | int | float | bool | None


class RegistryEvent(BaseModel):
    """One event of a service's registry log."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event: Literal["release", "baseline", "verdict", "freeze", "unfreeze"]
    at: datetime
    by: str
    version: str | None = None
    note: str = ""
    config: dict[str, Scalar] = Field(default_factory=dict)
    """release: the serving configuration of the version."""
    golden: str | None = None
    """baseline: which golden set."""
    scores: dict[str, int] = Field(default_factory=dict)
    """baseline: item id → 1 correct / 0 wrong."""
    by_tag: dict[str, list[int]] = Field(default_factory=dict)
    """baseline: tag → [correct, answered]."""
    datasets: dict[str, str] = Field(default_factory=dict)
    """baseline: dataset → the version current while scored."""
    good: bool | None = None
    """verdict: the version is good (True) or bad (False)."""
    incident: str | None = None


class Release(BaseModel):
    """A version as it went into service."""

    version: str
    config: dict[str, Scalar]
    at: datetime
    by: str
    note: str
    bad: str | None = None
    """Why it was judged bad, if it was."""


class Baseline(BaseModel):
    """A recorded golden-set score of one version."""

    version: str
    golden: str
    at: datetime
    by: str
    scores: dict[str, int]
    by_tag: dict[str, list[int]]
    datasets: dict[str, str]

    @property
    def accuracy(self) -> float:
        """Share correct."""
        return sum(self.scores.values()) / len(self.scores) if self.scores else 0.0


class Freeze(BaseModel):
    """An active freeze."""

    at: datetime
    by: str
    note: str
    incident: str | None


def config_diff(old: dict[str, Scalar], new: dict[str, Scalar]) -> list[dict[str, Scalar]]:
    """Keys whose values differ, sorted: ``[{"key", "old", "new"}]`` (a missing key is None)."""
    return [
        {"key": k, "old": old.get(k), "new": new.get(k)}
        for k in sorted(set(old) | set(new))
        if old.get(k) != new.get(k)
    ]


class ModelRegistry(Repository):
    """Releases, baselines, verdicts and freezes per service."""

    @staticmethod
    def _check(service: str) -> str:
        if not service or "/" in service or service.startswith(".") or len(service) > 200:
            raise ModelRegistryError(f"invalid service name {service!r}")
        return service

    # reading
    def events(self, service: str) -> list[RegistryEvent]:
        """Every event, oldest first."""
        q = (
            sa.select(registry_events.c.seq, registry_events.c.doc)
            .where(registry_events.c.service == self._check(service))
            .order_by(registry_events.c.seq)
        )
        try:
            with self.store.read() as db:
                rows = db.execute(q).all()
        except StoreError as exc:
            raise ModelRegistryError(f"model registry: {exc.message}", hint=exc.hint) from None
        out = []
        for seq, doc in rows:
            try:
                out.append(RegistryEvent.model_validate(doc))
            except ValidationError as exc:
                raise ModelRegistryError(
                    f"{self.where}: registry event {seq} of {service!r} is damaged ({exc.errors()[0]['msg']})",
                    hint="the log is append-only; restore the event from a backup of the database",
                ) from None
        return out

    def releases(self, service: str) -> list[Release]:
        """Every release, oldest first (a version released twice appears twice)."""
        bad: dict[str, str] = {}
        out: list[Release] = []
        for e in self.events(service):
            if e.event == "release" and e.version:
                out.append(Release(version=e.version, config=e.config, at=e.at, by=e.by, note=e.note))
            elif e.event == "verdict" and e.version:
                if e.good is False:
                    bad[e.version] = e.note
                else:
                    bad.pop(e.version, None)
        return [r.model_copy(update={"bad": bad.get(r.version)}) for r in out]

    def current(self, service: str) -> Release | None:
        """The version released last."""
        rel = self.releases(service)
        return rel[-1] if rel else None

    def release_of(self, service: str, version: str) -> Release:
        """The latest release of ``version``."""
        for r in reversed(self.releases(service)):
            if r.version == version:
                return r
        raise ModelRegistryError(
            f"service {service!r} has no release of {version!r}",
            hint=f"`llmedic model list {service}` shows the releases",
        )

    def last_good(self, service: str, before: str | None = None) -> Release | None:
        """The newest release, older than the current one (or than ``before``), of another version
        that was never judged bad."""
        rel = self.releases(service)
        if not rel:
            return None
        skip = before or rel[-1].version
        cut = max((n for n, r in enumerate(rel) if r.version == skip), default=len(rel))
        for r in reversed(rel[:cut]):
            if r.version != skip and r.bad is None:
                return r
        return None

    def baseline(self, service: str, version: str, golden: str) -> Baseline | None:
        """The latest baseline of ``version`` on ``golden``."""
        for e in reversed(self.events(service)):
            if e.event == "baseline" and e.version == version and e.golden == golden:
                return Baseline(
                    version=version,
                    golden=golden,
                    at=e.at,
                    by=e.by,
                    scores=e.scores,
                    by_tag=e.by_tag,
                    datasets=e.datasets,
                )
        return None

    def reference(self, service: str, golden: str) -> Baseline | None:
        """What the current version is judged against: its own baseline, else that of the newest
        earlier good release that has one."""
        cur = self.current(service)
        if cur is None:
            return None
        own = self.baseline(service, cur.version, golden)
        if own is not None:
            return own
        for r in reversed(self.releases(service)):
            if r.version != cur.version and r.bad is None:
                b = self.baseline(service, r.version, golden)
                if b is not None:
                    return b
        return None

    def frozen(self, service: str) -> Freeze | None:
        """The active freeze, if any."""
        active: Freeze | None = None
        for e in self.events(service):
            if e.event == "freeze":
                active = Freeze(at=e.at, by=e.by, note=e.note, incident=e.incident)
            elif e.event == "unfreeze":
                active = None
        return active

    def check_not_frozen(self, service: str, what: str) -> None:
        """Raise :class:`UpdatesFrozen` while an incident froze ``service``."""
        f = self.frozen(service)
        if f is not None:
            raise UpdatesFrozen(
                f"{what} refused: updates to service {service!r} are frozen since "
                f"{f.at:%Y-%m-%d %H:%M} UTC by {f.by}"
                + (f" ({f.incident})" if f.incident else "")
                + (f": {f.note}" if f.note else ""),
                hint=f"wait for the incident to close, or `llmedic model unfreeze {service} --by NAME`",
            )

    # writing
    def _append(self, service: str, event: RegistryEvent) -> RegistryEvent:
        row = {
            "service": self._check(service),
            "event": event.event,
            "at": utc(event.at),
            "doc": event.model_dump(mode="json"),
        }
        try:
            with self.store.write() as db:
                db.execute(sa.insert(registry_events).values(**row))
        except StoreError as exc:
            raise ModelRegistryError(f"model registry: {exc.message}", hint=exc.hint) from None
        return event

    def record_release(
        self,
        service: str,
        version: str,
        *,
        config: dict[str, Scalar] | None = None,
        by: str,
        note: str = "",
        incident: str | None = None,
    ) -> Release:
        """Record that ``version`` went into service. Refused while frozen, unless an incident
        (the one that froze it) records its own rollback."""
        if not version.strip():
            raise ModelRegistryError("a release needs a version")
        if incident is None:
            self.check_not_frozen(service, f"release of {version!r}")
        e = self._append(
            service,
            RegistryEvent(
                event="release",
                at=utcnow(),
                by=by,
                version=version,
                note=note,
                config=dict(config or {}),
                incident=incident,
            ),
        )
        return Release(version=version, config=e.config, at=e.at, by=by, note=note)

    def record_baseline(
        self,
        service: str,
        version: str,
        golden: str,
        scores: dict[str, int],
        *,
        by_tag: dict[str, tuple[int, int]] | None = None,
        datasets: dict[str, str] | None = None,
        by: str,
        note: str = "",
    ) -> Baseline:
        """Store a golden-set score of ``version`` as its baseline."""
        if not scores:
            raise ModelRegistryError("a baseline needs at least one scored item")
        e = self._append(
            service,
            RegistryEvent(
                event="baseline",
                at=utcnow(),
                by=by,
                version=version,
                golden=golden,
                note=note,
                scores=scores,
                by_tag={k: [a, b] for k, (a, b) in (by_tag or {}).items()},
                datasets=dict(datasets or {}),
            ),
        )
        return Baseline(
            version=version,
            golden=golden,
            at=e.at,
            by=by,
            scores=e.scores,
            by_tag=e.by_tag,
            datasets=e.datasets,
        )

    def mark(
        self, service: str, version: str, *, good: bool, by: str, note: str, incident: str | None = None
    ) -> None:
        """Judge a version good or bad (a bad version is never a rollback target)."""
        self._append(
            service,
            RegistryEvent(
                event="verdict", at=utcnow(), by=by, version=version, good=good, note=note, incident=incident
            ),
        )

    def freeze(self, service: str, *, by: str, note: str, incident: str | None = None) -> None:
        """Stop releases and dataset changes for ``service``."""
        self._append(service, RegistryEvent(event="freeze", at=utcnow(), by=by, note=note, incident=incident))

    def unfreeze(self, service: str, *, by: str, note: str = "", incident: str | None = None) -> bool:
        """Lift the freeze; False when there was none."""
        if self.frozen(service) is None:
            return False
        self._append(
            service, RegistryEvent(event="unfreeze", at=utcnow(), by=by, note=note, incident=incident)
        )
        return True

    def ensure_seeded(self, service: str, model: str | None) -> Release | None:
        """A service with no release yet gets one for the model ``llmedic.yaml`` names."""
        if model is None or self.releases(service):
            return self.current(service)
        return self.record_release(
            service, model, by="llmedic", note="seeded from llmedic.yaml (services[].model)", incident="seed"
        )

    def describe(self, service: str) -> dict[str, Any]:
        """Everything the CLI shows."""
        cur = self.current(service)
        f = self.frozen(service)
        return {
            "service": service,
            "current": cur.version if cur else None,
            "frozen": f.model_dump(mode="json") if f else None,
            "releases": [r.model_dump(mode="json") for r in self.releases(service)],
            "baselines": [
                {
                    "version": e.version,
                    "golden": e.golden,
                    "at": e.at.isoformat(),
                    "accuracy": round(sum(e.scores.values()) / len(e.scores), 4) if e.scores else None,
                    "items": len(e.scores),
                }
                for e in self.events(service)
                if e.event == "baseline"
            ],
        }
