"""Scoring a service on its golden set and keeping the result as a baseline: the glue between the
golden sets, the model registry and the dataset store, used by ``llmedic model baseline``, the
daily golden sample and the release gate."""

from __future__ import annotations

from dataclasses import dataclass

from llmedic.adapters.control import make_control
from llmedic.adapters.datastore import DataStore
from llmedic.config import EnvironmentFile, InstanceConfig, Settings
from llmedic.golden import GoldenItem, Scorecard, load_golden, score_service
from llmedic.playbook import AccuracySettings
from llmedic.registry import Baseline, ModelRegistry

__all__ = ["Evaluation", "in_rotation"]


def in_rotation(env: EnvironmentFile, service: str) -> list[InstanceConfig]:
    """The service's instances that take traffic now (as its control plane reports them)."""
    svc = env.service(service)
    control = make_control(svc, env)
    return [i for i in [*svc.instances, *svc.standby] if not control.state(i).drained]


@dataclass
class Evaluation:
    """One service's golden set, registry and datasets, ready to score."""

    env: EnvironmentFile
    settings: Settings
    service: str
    accuracy: AccuracySettings

    @property
    def registry(self) -> ModelRegistry:
        """The model registry, seeded from ``llmedic.yaml`` for this service."""
        reg = ModelRegistry.from_settings(self.settings)
        reg.ensure_seeded(self.service, self.env.service(self.service).model)
        return reg

    @property
    def golden(self) -> tuple[str, list[GoldenItem]]:
        """(name, items) of the service's golden set."""
        name, cfg = self.env.golden_for(self.service)
        return name, load_golden(cfg.path)

    def dataset_versions(self) -> dict[str, str]:
        """Current version of every dataset the service consumes."""
        store = DataStore(self.settings.datasets_dir)
        out: dict[str, str] = {}
        for name in self.env.datasets_of(self.service):
            store.ensure_seeded(name, self.env.dataset(name))
            cur = store.current(name)
            if cur is not None:
                out[name] = cur.id
        return out

    def score(
        self, items: list[GoldenItem] | None = None, instances: list[InstanceConfig] | None = None
    ) -> Scorecard:
        """Score ``items`` (default: the whole golden set) against ``instances`` (default: those in
        rotation)."""
        s = self.accuracy
        return score_service(
            self.env,
            self.service,
            items if items is not None else self.golden[1],
            instances if instances is not None else in_rotation(self.env, self.service),
            concurrency=s.concurrency,
            max_tokens=s.max_tokens,
            f1_threshold=s.f1_threshold,
            max_error_share=s.max_error_share,
            timeout=s.request_timeout_seconds,
        )

    def record_baseline(
        self, card: Scorecard, *, by: str, note: str = "", version: str | None = None
    ) -> Baseline:
        """Keep ``card`` as the baseline of ``version`` (default: the current release)."""
        reg = self.registry
        if version is None:
            cur = reg.current(self.service)
            version = cur.version if cur else next(iter(card.versions.values()), "unknown")
        return reg.record_baseline(
            self.service,
            version,
            self.golden[0],
            card.correctness(),
            by_tag=card.by_tag(),
            datasets=self.dataset_versions(),
            by=by,
            note=note,
        )
