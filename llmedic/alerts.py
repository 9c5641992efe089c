"""Alert payloads (Alertmanager v4, Grafana unified alerting v1, a generic JSON form) → :class:`Alert`.

A body is judged in two layers. The *body* must be the endpoint's shape (an object of the right
``version`` with a non-empty ``alerts`` list; for the generic endpoint an alert object or a non-empty
list of them), else it is refused whole. Inside a well-formed group every alert is judged **alone**
(:func:`read_alertmanager`, :func:`read_grafana`, :func:`read_generic`): one bad alert never costs
its neighbours, it becomes a :class:`Received` with the problem and its JSON as received.

Every usable alert becomes one normalised :class:`Alert`. Its anomaly type comes from the
``anomaly`` label, else from the first matching ``alert_rules`` entry of ``llmedic.yaml``; an alert
that matches nothing keeps ``anomaly=None`` (it is *unrouted*, never dropped). Labels are untrusted
data, in any script: stored and shown as sent, never spliced into commands anywhere. The target is
only ever a lookup key (:func:`target_matcher`) and a display string.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from llmedic.catalog import AnomalyType, parse_anomaly
from llmedic.config import AlertRule, EnvironmentFile
from llmedic.errors import AlertPayloadError, UnknownAnomalyType
from llmedic.yamlfile import format_loc, validate_model

__all__ = [
    "Alert",
    "AlertmanagerAlert",
    "AlertmanagerPayload",
    "GenericAlert",
    "GrafanaAlert",
    "GrafanaPayload",
    "Received",
    "labels_fingerprint",
    "parse_alertmanager",
    "parse_generic",
    "parse_grafana",
    "read_alertmanager",
    "read_generic",
    "read_grafana",
    "target_matcher",
]

Status = Literal["firing", "resolved"]
Source = Literal["alertmanager", "grafana", "generic"]
_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)
_TARGET_LABELS = ("target", "instance", "service", "dataset", "hostname", "host", "job")
M = TypeVar("M", bound=BaseModel)
_NO_TARGET_HINT = f"add one of the labels {list(_TARGET_LABELS)} naming the instance, service or dataset"


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


def _check_target(value: str) -> str:
    # Any script is a name (``gpu-节点-1:8000``); shell metacharacters are just characters that no
    # configured name contains. Control and invisible characters (NUL, bidi overrides, zero-width
    # joiners) are refused: they would make the stored target display as something it is not.
    if not value.isprintable():
        raise ValueError("target has a control or invisible character")
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
    target: str = Field(min_length=1, max_length=256)
    """Instance, service, dataset or network link the alert is about, as the sender wrote it
    (printable, at most 256 characters); matched against ``llmedic.yaml`` before anything acts on it."""
    severity: str = "warning"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    fingerprint: str = Field("", pattern=r"^[0-9a-f]{0,16}$")
    group_key: str = ""
    generator_url: str = ""

    _v_labels = field_validator("labels")(_check_labels)
    _v_target = field_validator("target")(_check_target)

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


class Received(BaseModel):
    """One alert of a well-formed body, judged on its own: usable (``alert``) or not (``problem``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Source
    where: str
    """Its place in the body: ``alerts[1]`` (Alertmanager, Grafana), ``alert[1]`` or ``alert`` (generic)."""
    raw: str
    """The alert's JSON as received (the entry of ``alerts[]``; the object of the generic form)."""
    alert: Alert | None = None
    """The normalised alert, when it can be used."""
    problem: str | None = None
    """Why it cannot be used, naming the field (``startsAt: Field required``); ``None`` when usable."""
    hint: str | None = None
    """How the sender can fix the problem, where that can be said."""
    target: str = ""
    """The target label as sent (best effort when the alert is unusable; for listing only)."""
    status: str = ""
    """``firing`` or ``resolved`` as sent (empty when the alert did not say either)."""


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


class AlertmanagerGroup(BaseModel):
    """The envelope of an Alertmanager webhook body; its ``alerts`` are judged one by one."""

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
    alerts: list[Any] = Field(min_length=1)


class AlertmanagerPayload(AlertmanagerGroup):
    """Alertmanager webhook body, payload version 4 (fields of v0.34 tolerated)."""

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


class GrafanaGroup(BaseModel):
    """The envelope of a Grafana webhook body; its ``alerts`` are judged one by one."""

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
    alerts: list[Any] = Field(min_length=1)


class GrafanaPayload(GrafanaGroup):
    """Grafana unified-alerting webhook body (``version: "1"``)."""

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


def target_matcher(env: EnvironmentFile) -> Callable[[str], bool]:
    """Does an alert's target name something ``llmedic.yaml`` declares?

    An instance (by name, ``host:port`` or URL, an internationalised host in either form), a
    service, a dataset or a network link. Exact string comparison only: the target is a lookup key,
    so a label holding shell metacharacters is just a name that matches nothing.
    """
    names = {s.name for s in env.services} | set(env.datasets) | set(env.network.links)

    def known(target: str) -> bool:
        return target in names or env.find_instance(target) is not None

    return known


class _Unusable(Exception):
    """One alert of a group cannot be used (internal: becomes :attr:`Received.problem`)."""

    def __init__(self, problem: str, hint: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.hint = hint


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _problems(exc: ValidationError) -> str:
    """Pydantic's errors as one line: ``startsAt: Field required; status: Input should be ...``."""
    parts = []
    for item in exc.errors(include_url=False):
        loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and "[" in p))
        got = ""
        if item["type"] not in ("missing", "extra_forbidden") and not isinstance(
            item.get("input"), dict | list
        ):
            got = f" (got {_short(item.get('input'))})"
        parts.append(f"{format_loc(loc)}: {item['msg'].removeprefix('Value error, ')}{got}")
    return "; ".join(parts)


def _validate(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _Unusable(_problems(exc)) from None


def _target(labels: Mapping[str, Any]) -> str:
    for key in _TARGET_LABELS:
        value = labels.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def _anomaly(labels: Mapping[str, str], rules: Sequence[AlertRule], field: str) -> AnomalyType | None:
    try:
        return route_anomaly(labels, rules)
    except UnknownAnomalyType as exc:
        raise _Unusable(f"{field}: {exc.message}", exc.hint) from None


def _printable(text: str) -> str:
    # An unusable alert's target is listed, not used: control characters are shown escaped (a NUL
    # could not even be stored in PostgreSQL), everything else as sent.
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _raw(item: Any) -> str:
    # As received: key order and every character kept (no \\u escapes for non-Latin scripts).
    return json.dumps(item, ensure_ascii=False, separators=(",", ":"))


def _judge(source: Source, where: str, item: Any, build: Callable[[Any], Alert]) -> Received:
    labels = item.get("labels") if isinstance(item, dict) else None
    hints = {**labels} if isinstance(labels, dict) else {}
    if isinstance(item, dict) and isinstance(item.get("target"), str):
        hints.setdefault("target", item["target"])
    status = item.get("status") if isinstance(item, dict) else None
    seen = {"source": source, "where": where, "raw": _raw(item), "target": _printable(_target(hints))[:256]}
    try:
        alert = build(item)
    except _Unusable as exc:
        return Received(
            **seen,
            status=status if status in ("firing", "resolved") else "",
            problem=exc.problem,
            hint=exc.hint,
        )
    return Received(**seen, status=alert.status, alert=alert)


def _group_alert(
    model: type[AlertmanagerAlert],
    source: Literal["alertmanager", "grafana"],
    common: Mapping[str, str],
    group_key: str,
    rules: Sequence[AlertRule],
) -> Callable[[Any], Alert]:
    def build(item: Any) -> Alert:
        raw = _validate(model, item)
        labels = {**common, **raw.labels}
        anomaly = _anomaly(labels, rules, "labels.anomaly")
        target = _target(labels)
        if not target:
            raise _Unusable("no target label", _NO_TARGET_HINT)
        ends = raw.endsAt if raw.endsAt and raw.endsAt > _ZERO_TIME else None
        data = {
            "source": source,
            "status": raw.status,
            "anomaly": anomaly,
            "alertname": labels.get("alertname", "unnamed"),
            "target": target,
            "severity": labels.get("severity", "warning"),
            "labels": labels,
            "annotations": raw.annotations,
            "starts_at": raw.startsAt,
            "ends_at": ends,
            "fingerprint": raw.fingerprint or labels_fingerprint(raw.labels),
            "group_key": group_key,
            "generator_url": raw.generatorURL,
        }
        return _validate(Alert, data)

    return build


def read_alertmanager(body: Any, rules: Sequence[AlertRule] = ()) -> list[Received]:
    """Judge every alert of an Alertmanager v4 body on its own.

    Raises :class:`AlertPayloadError` only when the body is not a v4 webhook body at all."""
    if isinstance(body, dict) and body.get("version") not in (None, "4"):
        raise AlertPayloadError(
            f"alertmanager payload version {body.get('version')!r} is not supported",
            hint='only webhook payload version "4" is understood (a custom `payload:` template '
            "replaces it; send such bodies to POST /alerts instead)",
        )
    group = validate_model(AlertmanagerGroup, body, source="alertmanager payload", error=AlertPayloadError)
    build = _group_alert(AlertmanagerAlert, "alertmanager", group.commonLabels, group.groupKey, rules)
    return [_judge("alertmanager", f"alerts[{i}]", a, build) for i, a in enumerate(group.alerts)]


def read_grafana(body: Any, rules: Sequence[AlertRule] = ()) -> list[Received]:
    """Judge every alert of a Grafana v1 body on its own (the body itself must be v1)."""
    group = validate_model(GrafanaGroup, body, source="grafana payload", error=AlertPayloadError)
    build = _group_alert(GrafanaAlert, "grafana", group.commonLabels, group.groupKey, rules)
    return [_judge("grafana", f"alerts[{i}]", a, build) for i, a in enumerate(group.alerts)]


def _generic_alert(rules: Sequence[AlertRule]) -> Callable[[Any], Alert]:
    def build(item: Any) -> Alert:
        g = _validate(GenericAlert, item)
        labels = {"alertname": g.alertname, **g.labels, "target": g.target}
        if g.anomaly:
            labels["anomaly"] = g.anomaly
        data = {
            "source": "generic",
            "status": g.status,
            "anomaly": _anomaly(labels, rules, "anomaly"),
            "alertname": g.alertname,
            "target": g.target,
            "severity": g.severity,
            "labels": labels,
            "annotations": g.annotations,
            "starts_at": g.starts_at or datetime.now(UTC),
            "fingerprint": g.fingerprint or labels_fingerprint(labels),
        }
        return _validate(Alert, data)

    return build


def read_generic(body: Any, rules: Sequence[AlertRule] = ()) -> list[Received]:
    """Judge the generic form: one alert object (refused whole if unusable: it *is* the body), or a
    non-empty list of them, each judged on its own."""
    build = _generic_alert(rules)
    if isinstance(body, dict):
        one = _judge("generic", "alert", body, build)
        if one.problem is not None:
            raise AlertPayloadError(f"alert: {one.problem}", hint=one.hint)
        return [one]
    if not isinstance(body, list) or not body:
        raise AlertPayloadError(
            f"a generic alert body must be an alert object or a non-empty list of them, not {_short(body)}",
            hint='send {"anomaly": ..., "target": ...} or a list of such objects',
        )
    return [_judge("generic", f"alert[{i}]", item, build) for i, item in enumerate(body)]


def _all_usable(received: list[Received]) -> list[Alert]:
    for r in received:
        if r.alert is None:
            raise AlertPayloadError(f"{r.where}: {r.problem}", hint=r.hint)
    return [r.alert for r in received if r.alert is not None]


def parse_alertmanager(body: Any, rules: Sequence[AlertRule] = ()) -> list[Alert]:
    """Every alert of an Alertmanager v4 body, or :class:`AlertPayloadError` naming the first
    unusable one (for callers that act on a body as a whole, like ``llmedic alert send``)."""
    return _all_usable(read_alertmanager(body, rules))


def parse_grafana(body: Any, rules: Sequence[AlertRule] = ()) -> list[Alert]:
    """Every alert of a Grafana v1 body, or :class:`AlertPayloadError` naming the first unusable one."""
    return _all_usable(read_grafana(body, rules))


def parse_generic(body: Any, rules: Sequence[AlertRule] = ()) -> list[Alert]:
    """Every alert of the generic form, or :class:`AlertPayloadError` naming the first unusable one."""
    return _all_usable(read_generic(body, rules))
