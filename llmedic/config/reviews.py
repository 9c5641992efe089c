"""The scheduled reviews' settings: their schedules, the capacity review and the backups verified."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from llmedic.config._base import Name, _Strict

__all__ = ["BackupArtifact", "CapacityConfig", "ScheduleConfig", "ServiceCapacity"]


class ScheduleConfig(_Strict):
    """When the scheduled flows run (cron, in ``timezone``); ``null`` turns a schedule off."""

    data_audit: str | None = "0 3 1 * *"
    """The monthly data audit: 03:00 on the first of the month."""
    golden_sample: str | None = "0 6 * * *"
    """The daily golden-set sample of every service: 06:00 every day."""
    capacity_review: str | None = "0 4 1 * *"
    """The monthly capacity review: 04:00 on the first of the month."""
    backup_verify: str | None = "0 5 * * 0"
    """The weekly backup verification: 05:00 every Sunday."""
    timezone: str = "UTC"
    """Time zone the cron expressions are read in."""

    @field_validator("data_audit", "golden_sample", "capacity_review", "backup_verify")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            from prefect.client.schemas.schedules import CronSchedule

            try:
                CronSchedule(cron=value)
            except ValueError:
                raise ValueError(f"not a valid cron expression: {value!r} (e.g. '0 3 1 * *')") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. UTC, Europe/Berlin)") from None
        return value


class ServiceCapacity(_Strict):
    """What one service's capacity is, where the metrics cannot say it."""

    gpus: int | None = Field(None, ge=1)
    """GPUs serving it (default: counted from the DCGM series)."""
    max_qps_per_instance: float | None = Field(None, gt=0)
    """Requests per second one instance sustains within its SLO (from a load test)."""
    latency_slo_seconds: float | None = Field(None, gt=0)
    """End-to-end p99 the service promises (its latency capacity)."""
    dcgm_selector: str = ""
    """PromQL label matchers for this service's GPUs, e.g. ``{Hostname=~"gpu-0[12]"}``."""


class CapacityConfig(_Strict):
    """The monthly capacity review."""

    reserve: float = Field(0.25, ge=0.05, le=0.9)
    """Headroom to keep (the guide's 20–30 %)."""
    lookback_days: int = Field(30, ge=7, le=400)
    step_seconds: float = Field(3600, ge=60)
    """Resolution of the history read from Prometheus (rates use the same window)."""
    horizon_days: int = Field(90, ge=7)
    """Recommend now for what runs out within this many days."""
    services: dict[Name, ServiceCapacity] = Field(default_factory=dict)


class BackupArtifact(_Strict):
    """One thing that must be backed up, and where its backups are."""

    kind: Literal["model", "config", "dataset"]
    """What the artifact is: decides how a test restore is checked (a config parses, a dataset loads, model files hash)."""
    source: Path
    """The live copy (a directory for model weights, a file for configs and datasets)."""
    backups: Path
    """Directory holding one sub-directory per backup (sorted by name, newest last), each with a
    ``MANIFEST.sha256`` (``sha256sum`` format) next to the files."""
    max_age_hours: float = Field(26, gt=0)
    """The latest backup must be younger than this."""
    format: Literal["auto", "csv", "parquet", "jsonl", "yaml", "json", "safetensors", "any"] = "auto"
    """How a test restore is read back (auto: from the file names)."""
