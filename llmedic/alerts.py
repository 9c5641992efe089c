"""Alert payloads (Alertmanager v4, Grafana unified alerting v1, a generic JSON form) → :class:`Alert`.

Every alert of a group becomes one normalised :class:`Alert`. Its anomaly type comes from the
``anomaly`` label, else from the first matching ``alert_rules`` entry of ``llmedic.yaml``; an alert
that matches nothing keeps ``anomaly=None`` (it is *unrouted*, never dropped). Labels are untrusted
input: they are validated here and never spliced into commands anywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from llmedic.catalog import AnomalyType, parse_anomaly
from llmedic.config import AlertRule
from llmedic.errors import AlertPayloadError, UnknownAnomalyType
from llmedic.yamlfile import validate_model

__all__ = [
    "Alert",
    "AlertmanagerAlert",
    "AlertmanagerPayload",
    "GenericAlert",
    "GrafanaAlert",
    "GrafanaPayload",
    "labels_fingerprint",
    "parse_alertmanager",
    "parse_generic",
    "parse_grafana",
]

Status = Literal["firing", "resolved"]
_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)
_TARGET_LABELS = ("target", "instance", "service", "dataset", "hostname", "host", "job")
_SAFE_TARGET = r"^[A-Za-z0-9._:/@\[\]%+=-]{1,256}$"


def labels_fingerprint(labels: Mapping[str, str]) -> str:
    """Prometheus' label-set fingerprint: FNV-1a 64 over sorted ``name 0xff value 0xff``, ``%016x``."""
    h = 14695981039346656037
    for name in sorted(labels):
        for chunk in (name.encode(), b"\xff", labels[name].encode(), b"\xff"):
            for byte in chunk:
                h ^= byte
                h = (h * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def _check_labels(value: dict[str, str]) -> dict[str, str]:
    for key, val in value.items():
        if not key or len(key) > 128:
            raise ValueError(f"label name {key[:40]!r} must be 1-128 characters")
        if len(val) > 4096:
            raise ValueError(f"label {key!r} is longer than 4096 characters")
    return value


class Alert(BaseModel):
    """One normalised alert, whatever sent it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Literal["alertmanager", "grafana", "generic", "manual", "audit", "schedule", "incident"] = (
        "manual"
    )
    status: Status = "firing"
    anomaly: AnomalyType | None = None
    alertname: str = "manual"
    target: str = Field(pattern=_SAFE_TARGET)
    """Instance, service, dataset or host the alert is about."""
    severity: str = "warning"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    fingerprint: str = Field("", pattern=r"^[0-9a-f]{0,16}$")
    group_key: str = ""
    generator_url: str = ""

    _v_labels = field_validator("labels")(_check_labels)

    @property
    def summary(self) -> str:
        """Human summary from the annotations."""
        return self.annotations.get("summary") or self.annotations.get("description") or self.alertname

    @property
    def identity(self) -> str:
        """Fingerprint, computed from the labels when the sender gave none."""
        return self.fingerprint or labels_fingerprint(self.labels)

    @property
    def dedup_key(self) -> str:
        """One open incident per (anomaly type, target, fingerprint)."""
        kind = self.anomaly.value if self.anomaly else "unrouted"
        return f"{kind}:{self.target}:{self.identity}"

    @property
    def idempotency_key(self) -> str:
        """Prefect idempotency key: repeats of the same firing never start a second run."""
        start = self.starts_at.isoformat() if self.starts_at else ""
        return f"{self.dedup_key}:{start}"


class AlertmanagerAlert(BaseModel):
    """One entry of ``alerts[]`` in an Alertmanager webhook body."""

    model_config = ConfigDict(extra="ignore")

    status: Status
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = Field("", pattern=r"^[0-9a-f]{0,16}$")

    _v_labels = field_validator("labels")(_check_labels)


class AlertmanagerPayload(BaseModel):
    """Alertmanager webhook body, payload version 4 (fields of v0.34 tolerated)."""

    model_config = ConfigDict(extra="ignore")

    version: Literal["4"]
    groupKey: str = ""
    truncatedAlerts: int = 0
    status: Status
    receiver: str = ""
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    notification_reason: str | None = None
    routeLabels: dict[str, str] | None = None
    alerts: list[AlertmanagerAlert] = Field(min_length=1)


class GrafanaAlert(AlertmanagerAlert):
    """One alert of a Grafana webhook body (Alertmanager's fields plus Grafana's)."""

    silenceURL: str = ""
    dashboardURL: str = ""
    panelURL: str = ""
    values: dict[str, float | None] | None = None
    valueString: str = ""
    imageURL: str = ""
    ruleUID: str = ""
    orgId: int | None = None


class GrafanaPayload(BaseModel):
    """Grafana unified-alerting webhook body (``version: "1"``)."""

    model_config = ConfigDict(extra="ignore")

    version: Literal["1"]
    groupKey: str = ""
    truncatedAlerts: int = 0
    status: Status
    receiver: str = ""
    orgId: int | None = None
    state: str = ""
    title: str = ""
    message: str = ""
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    alerts: list[GrafanaAlert] = Field(min_length=1)


class GenericAlert(BaseModel):
    """The generic JSON form for senders that are neither Alertmanager nor Grafana."""

    model_config = ConfigDict(extra="forbid")

    anomaly: str | None = None
    target: str
    severity: str = "warning"
    status: Status = "firing"
    alertname: str = "generic"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime | None = None
    fingerprint: str = Field("", pattern=r"^[0-9a-f]{0,16}$")

    _v_labels = field_validator("labels")(_check_labels)


def route_anomaly(labels: Mapping[str, str], rules: Sequence[AlertRule]) -> AnomalyType | None:
    """Anomaly type from the ``anomaly`` label, else the first rule whose labels all match."""
    if "anomaly" in labels:
        return parse_anomaly(labels["anomaly"])
    for rule in rules:
        if all(labels.get(k) == v for k, v in rule.match.items()):
            return rule.anomaly
    return None


def _target(labels: Mapping[str, str], where: str) -> str:
    for key in _TARGET_LABELS:
        if labels.get(key):
            return labels[key]
    raise AlertPayloadError(
        f"{where}: no target label",
        hint=f"add one of the labels {list(_TARGET_LABELS)} naming the instance, service or dataset",
    )


def _normalise(
    raw: AlertmanagerAlert,
    *,
    source: Literal["alertmanager", "grafana"],
    common: Mapping[str, str],
    group_key: str,
    rules: Sequence[AlertRule],
    where: str,
) -> Alert:
    labels = {**common, **raw.labels}
    try:
        anomaly = route_anomaly(labels, rules)
    except UnknownAnomalyType as exc:
        raise AlertPayloadError(f"{where}.labels.anomaly: {exc.message}", hint=exc.hint) from None
    ends = raw.endsAt if raw.endsAt and raw.endsAt > _ZERO_TIME else None
    data = {
        "source": source,
        "status": raw.status,
        "anomaly": anomaly,
        "alertname": labels.get("alertname", "unnamed"),
        "target": _target(labels, where),
        "severity": labels.get("severity", "warning"),
        "labels": labels,
        "annotations": raw.annotations,
        "starts_at": raw.startsAt,
        "ends_at": ends,
        "fingerprint": raw.fingerprint or labels_fingerprint(raw.labels),
        "group_key": group_key,
        "generator_url": raw.generatorURL,
    }
    return validate_model(Alert, data, source=where, error=AlertPayloadError)


def parse_alertmanager(body: Any, rules: Sequence[AlertRule] = ()) -> list[Alert]:
    """Validate an Alertmanager v4 body and return one :class:`Alert` per alert of the group."""
    if isinstance(body, dict) and body.get("version") not in (None, "4"):
        raise AlertPayloadError(
            f"alertmanager payload version {body.get('version')!r} is not supported",
            hint='only webhook payload version "4" is understood (a custom `payload:` template '
            "replaces it; send such bodies to POST /alerts instead)",
        )
    return _parse_group(AlertmanagerPayload, "alertmanager", body, rules)


def parse_grafana(body: Any, rules: Sequence[AlertRule] = ()) -> list[Alert]:
    """Validate a Grafana v1 body and return one :class:`Alert` per alert."""
    return _parse_group(GrafanaPayload, "grafana", body, rules)


def _parse_group(
    model: type[AlertmanagerPayload] | type[GrafanaPayload],
    source: Literal["alertmanager", "grafana"],
    body: Any,
    rules: Sequence[AlertRule],
) -> list[Alert]:
    payload = validate_model(model, body, source=f"{source} payload", error=AlertPayloadError)
    return [
        _normalise(
            a,
            source=source,
            common=payload.commonLabels,
            group_key=payload.groupKey,
            rules=rules,
            where=f"alerts[{i}]",
        )
        for i, a in enumerate(payload.alerts)
    ]


def parse_generic(body: Any, rules: Sequence[AlertRule] = ()) -> list[Alert]:
    """Validate the generic JSON form (one object or a list of them)."""
    items = body if isinstance(body, list) else [body]
    out: list[Alert] = []
    for i, item in enumerate(items):
        where = f"alert[{i}]" if isinstance(body, list) else "alert"
        g = validate_model(GenericAlert, item, source=where, error=AlertPayloadError)
        labels = {"alertname": g.alertname, **g.labels, "target": g.target}
        if g.anomaly:
            labels["anomaly"] = g.anomaly
        try:
            anomaly = route_anomaly(labels, rules)
        except UnknownAnomalyType as exc:
            raise AlertPayloadError(f"{where}.anomaly: {exc.message}", hint=exc.hint) from None
        data = {
            "source": "generic",
            "status": g.status,
            "anomaly": anomaly,
            "alertname": g.alertname,
            "target": g.target,
            "severity": g.severity,
            "labels": labels,
            "annotations": g.annotations,
            "starts_at": g.starts_at or datetime.now(UTC),
            "fingerprint": g.fingerprint or labels_fingerprint(labels),
        }
        out.append(validate_model(Alert, data, source=where, error=AlertPayloadError))
    return out
