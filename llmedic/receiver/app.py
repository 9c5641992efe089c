"""The receiver's HTTP face (Starlette/ASGI).

``POST /alerts/alertmanager`` (payload v4), ``POST /alerts/grafana`` (v1, optional HMAC),
``POST /alerts`` (generic), ``GET /healthz``, ``GET /metrics``, ``GET /openapi.json``.

Answers: **202** once every alert of the body is in the outbox — an alert that cannot be used is
stored too (``invalid`` with its reason, or ``unknown-target``), so one bad alert never costs its
neighbours; **400** only when the body is not JSON or not the endpoint's shape at all (the message
names the field); **401** bad credentials or signature; **413** body too large; **415** not JSON;
**503** only when the outbox cannot be written (transient: Alertmanager retries 5xx).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from llmedic.alerts import (
    AlertmanagerPayload,
    GenericAlert,
    GrafanaPayload,
    Received,
    read_alertmanager,
    read_generic,
    read_grafana,
)
from llmedic.config import AlertRule
from llmedic.errors import AlertPayloadError, OutboxError
from llmedic.exporter import IncidentCollector
from llmedic.receiver.outbox import Intake, Outbox
from llmedic.store.incidents import IncidentStore

__all__ = ["ReceiverAuth", "ReceiverMetrics", "create_receiver_app", "openapi"]


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


@dataclass(frozen=True)
class ReceiverAuth:
    """Accepted credentials; ``insecure`` (local demos only) accepts requests without any."""

    bearer: str | None = None
    basic_user: str | None = None
    basic_password: str | None = None
    insecure: bool = False
    grafana_hmac_secret: str | None = None
    grafana_timestamp_header: str = "X-Grafana-Alerting-Signature-Timestamp"

    def check(self, header: str) -> bool:
        """Constant-time comparison of the ``Authorization`` header with every accepted credential."""
        if self.insecure and self.bearer is None and self.basic_user is None:
            return True
        ok = False
        if self.bearer is not None:
            ok |= hmac.compare_digest(_digest(header), _digest(f"Bearer {self.bearer}"))
        if self.basic_user is not None and self.basic_password is not None:
            raw = base64.b64encode(f"{self.basic_user}:{self.basic_password}".encode()).decode()
            ok |= hmac.compare_digest(_digest(header), _digest(f"Basic {raw}"))
        return ok

    def grafana_signature_ok(self, body: bytes, signature: str, timestamp: str) -> bool:
        """``hex(HMAC-SHA256(secret, [timestamp ":"] body))``, compared in constant time."""
        if self.grafana_hmac_secret is None:
            return True
        message = (timestamp.encode() + b":" + body) if timestamp else body
        expected = hmac.new(self.grafana_hmac_secret.encode(), message, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected.encode(), signature.strip().lower().encode())


class ReceiverMetrics:
    """The receiver's own Prometheus metrics."""

    def __init__(self, outbox: Outbox, incidents: IncidentStore | None = None) -> None:
        r = self.registry = CollectorRegistry()
        if incidents is not None:
            r.register(IncidentCollector(incidents))
        self.received = Counter("llmedic_receiver_received", "Alerts received.", ["endpoint"], registry=r)
        self.accepted = Counter(
            "llmedic_receiver_accepted", "Alerts written to the outbox.", ["endpoint"], registry=r
        )
        self.rejected = Counter(
            "llmedic_receiver_rejected",
            "Requests refused (reason: unauthorized, json, schema, ...) and stored alerts that cannot be "
            "acted on (invalid_alert, unknown_target), by reason.",
            ["reason"],
            registry=r,
        )
        self.deduplicated = Counter(
            "llmedic_receiver_deduplicated",
            "Notifications that were repeats, or alerts with an open incident.",
            registry=r,
        )
        self.throttled = Counter(
            "llmedic_receiver_throttled", "Alerts escalated instead of run (budget).", registry=r
        )
        self.unrouted = Counter(
            "llmedic_receiver_unrouted", "Alerts no rule routes to an anomaly type.", registry=r
        )
        self.runs_started = Counter("llmedic_receiver_runs_started", "Flow runs started.", registry=r)
        self.dispatch_latency = Histogram(
            "llmedic_receiver_dispatch_latency_seconds",
            "From receipt to the flow run's creation.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
            registry=r,
        )
        depth = Gauge("llmedic_receiver_outbox_depth", "Alerts accepted and not yet dispatched.", registry=r)
        depth.set_function(lambda: float(outbox.depth()))

    def dispatched(self, state: str, seconds: float) -> None:
        """Count what the dispatcher did with a row."""
        if state == "started":
            self.runs_started.inc()
            self.dispatch_latency.observe(seconds)
        elif state in ("duplicate", "joined"):
            self.deduplicated.inc()
        elif state == "throttled":
            self.throttled.inc()


def _problem(
    status: int, reason: str, message: str, metrics: ReceiverMetrics, hint: str | None = None
) -> JSONResponse:
    metrics.rejected.labels(reason=reason).inc()
    body: dict[str, Any] = {"error": reason, "message": message}
    if hint:
        body["fix"] = hint
    headers = {"WWW-Authenticate": 'Bearer realm="llmedic"'} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


def openapi() -> dict[str, Any]:
    """The receiver's OpenAPI 3.1 description (schemas straight from the pydantic models)."""
    refs: dict[str, Any] = {}

    def schema(model: Any) -> dict[str, str]:
        js = model.model_json_schema(ref_template="#/components/schemas/{model}")
        refs.update(js.pop("$defs", {}))
        refs[model.__name__] = js
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    def post(summary: str, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "post": {
                "summary": summary,
                "security": [{"bearer": []}, {"basic": []}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
                "responses": {
                    "202": {
                        "description": "every alert of the body is in the durable outbox; `alerts` "
                        "gives each one's key, state (pending, unrouted, invalid, unknown-target) and reason"
                    },
                    "400": {
                        "description": "not JSON, or not the endpoint's shape; the message names the field"
                    },
                    "401": {"description": "missing or wrong credentials / signature"},
                    "413": {"description": "body too large"},
                    "415": {"description": "not application/json"},
                    "503": {"description": "the outbox cannot be written right now; retry"},
                },
            }
        }

    generic = schema(GenericAlert)
    return {
        "openapi": "3.1.0",
        "info": {"title": "llmedic alert receiver", "version": "1"},
        "paths": {
            "/alerts/alertmanager": post(
                "Alertmanager webhook (payload version 4)", schema(AlertmanagerPayload)
            ),
            "/alerts/grafana": post("Grafana unified-alerting webhook (version 1)", schema(GrafanaPayload)),
            "/alerts": post("Generic alert(s)", {"oneOf": [generic, {"type": "array", "items": generic}]}),
            "/healthz": {
                "get": {"summary": "Liveness and outbox depth", "responses": {"200": {"description": "ok"}}}
            },
            "/metrics": {
                "get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text"}}}
            },
        },
        "components": {
            "schemas": refs,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic"},
            },
        },
    }


class _Handlers:
    """The receiver's endpoints, sharing the outbox, the credentials and the metrics."""

    READERS: dict[str, Callable[[Any, list[AlertRule]], list[Received]]] = {
        "alertmanager": read_alertmanager,
        "grafana": read_grafana,
        "generic": read_generic,
    }

    def __init__(
        self,
        outbox: Outbox,
        auth: ReceiverAuth,
        rules: list[AlertRule],
        metrics: ReceiverMetrics,
        max_body_bytes: int,
        dispatcher_alive: Callable[[], bool],
        known: Callable[[str], bool],
    ) -> None:
        self.outbox, self.auth, self.rules, self.m = outbox, auth, rules, metrics
        self.max_body_bytes, self.dispatcher_alive, self.known = max_body_bytes, dispatcher_alive, known
        self.spec = openapi()

    async def _body(self, request: Request, endpoint: str) -> bytes | Response:
        """The request's body, or the problem response that refuses it (auth, type, size, signature)."""
        m, limit = self.m, self.max_body_bytes
        if not self.auth.check(request.headers.get("authorization", "")):
            return _problem(
                401, "unauthorized", "missing or wrong credentials", m, "send Authorization: Bearer <token>"
            )
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return _problem(
                415, "content_type", f"content type must be application/json, not {ctype or 'none'!r}", m
            )
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return _problem(413, "too_large", f"body of {declared} bytes exceeds the {limit}-byte limit", m)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return _problem(413, "too_large", f"body exceeds the {limit}-byte limit", m)
        if endpoint == "grafana" and not self.auth.grafana_signature_ok(
            body,
            request.headers.get("x-grafana-alerting-signature", ""),
            request.headers.get(self.auth.grafana_timestamp_header.lower(), ""),
        ):
            return _problem(401, "signature", "X-Grafana-Alerting-Signature does not match the body", m)
        return body

    async def intake(self, request: Request, endpoint: str) -> Response:
        body = await self._body(request, endpoint)
        if isinstance(body, Response):
            return body
        m = self.m
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            return _problem(400, "json", f"body is not JSON: {exc}", m)
        try:
            received = self.READERS[endpoint](data, self.rules)
        except AlertPayloadError as exc:
            return _problem(400, "schema", exc.message, m, exc.hint)
        m.received.labels(endpoint=endpoint).inc(len(received))
        items = [Intake.judge(r, self.known) for r in received]
        try:
            fresh = self.outbox.accept(items)
        except OutboxError as exc:
            m.rejected.labels(reason="outbox").inc()
            return JSONResponse(
                {"error": "outbox", "message": f"cannot store the alerts right now ({exc.message}); retry"},
                status_code=503,
                headers={"Retry-After": "5"},
            )
        m.accepted.labels(endpoint=endpoint).inc(len(items))
        return JSONResponse(self._accepted(items, fresh), status_code=202)

    def _accepted(self, items: list[Intake], fresh: list[bool]) -> dict[str, Any]:
        """Count the stored alerts into the metrics and say, per alert, what became of it."""
        m = self.m

        def new_in(state: str) -> int:
            # Counted once per notification: a sender's retry of the same body is a repeat.
            return sum(1 for item, new in zip(items, fresh, strict=True) if new and item.state == state)

        repeats = fresh.count(False)
        unrouted, invalid, unknown = new_in("unrouted"), new_in("invalid"), new_in("unknown-target")
        m.deduplicated.inc(repeats)
        m.unrouted.inc(unrouted)
        if invalid:
            m.rejected.labels(reason="invalid_alert").inc(invalid)
        if unknown:
            m.rejected.labels(reason="unknown_target").inc(unknown)
        return {
            "accepted": len(items),
            "new": len(items) - repeats,
            "repeats": repeats,
            "unrouted": unrouted,
            "invalid": invalid,
            "unknown_target": unknown,
            "alerts": [
                {
                    "key": item.key,
                    "state": item.state,
                    "reason": item.reason,
                    "anomaly": item.anomaly,
                    "new": new,
                }
                for item, new in zip(items, fresh, strict=True)
            ],
        }

    async def alertmanager(self, request: Request) -> Response:
        return await self.intake(request, "alertmanager")

    async def grafana(self, request: Request) -> Response:
        return await self.intake(request, "grafana")

    async def generic(self, request: Request) -> Response:
        return await self.intake(request, "generic")

    async def healthz(self, request: Request) -> Response:
        alive = self.dispatcher_alive()
        body = {
            "status": "ok" if alive else "degraded",
            "outbox_depth": self.outbox.depth(),
            "dispatcher": alive,
            "time": time.time(),
        }
        return JSONResponse(body, status_code=200 if alive else 503)

    async def metrics_endpoint(self, request: Request) -> Response:
        return Response(generate_latest(self.m.registry), media_type=CONTENT_TYPE_LATEST)

    async def openapi_endpoint(self, request: Request) -> Response:
        return JSONResponse(self.spec)


def create_receiver_app(
    outbox: Outbox,
    auth: ReceiverAuth,
    rules: list[AlertRule],
    *,
    metrics: ReceiverMetrics | None = None,
    max_body_bytes: int = 1_048_576,
    dispatcher_alive: Callable[[], bool] = lambda: True,
    known_target: Callable[[str], bool] | None = None,
) -> Starlette:
    """The ASGI app.

    ``known_target`` says whether an alert's target names something of ``llmedic.yaml``
    (:func:`llmedic.alerts.target_matcher`); alerts about anything else are stored
    ``unknown-target`` and never dispatched. Without it every target is taken as known.
    """
    h = _Handlers(
        outbox,
        auth,
        rules,
        metrics or ReceiverMetrics(outbox),
        max_body_bytes,
        dispatcher_alive,
        known_target or (lambda target: True),
    )
    return Starlette(
        routes=[
            Route("/alerts/alertmanager", h.alertmanager, methods=["POST"]),
            Route("/alerts/grafana", h.grafana, methods=["POST"]),
            Route("/alerts", h.generic, methods=["POST"]),
            Route("/healthz", h.healthz),
            Route("/metrics", h.metrics_endpoint),
            Route("/openapi.json", h.openapi_endpoint),
        ]
    )
