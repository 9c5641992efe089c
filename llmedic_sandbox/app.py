"""HTTP face of a sandbox instance (Starlette): OpenAI-compatible API, /metrics, /admin."""

from __future__ import annotations

import hmac
import json
import time
import tracemalloc
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from llmedic_sandbox.instance import Fault, SandboxInstance, dcgm_exposition

__all__ = ["create_app"]


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str


class _ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str = "default"
    messages: list[_Message] = Field(min_length=1)
    max_tokens: int = Field(32, ge=1, le=8192)


class _Limit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int = Field(ge=1, le=4096)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str = Field(min_length=1, max_length=64)


class _Env(BaseModel):
    model_config = ConfigDict(extra="forbid")
    python: str | None = None
    imports: list[str] = Field(default_factory=list)


def _bad(exc: ValidationError | ValueError) -> JSONResponse:
    if isinstance(exc, ValidationError):
        detail = [
            {"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]}
            for e in exc.errors(include_url=False)
        ]
    else:
        detail = [{"loc": "body", "msg": str(exc)}]
    return JSONResponse({"error": {"message": "invalid request", "detail": detail}}, status_code=400)


async def _json(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw or b"{}")
    except ValueError as exc:
        raise ValueError(f"body is not JSON: {exc}") from None


def _models_body(inst: SandboxInstance) -> dict[str, Any]:
    """``GET /v1/models`` as vLLM answers it."""
    return {
        "object": "list",
        "data": [
            {
                "id": inst.model_version,
                "object": "model",
                "created": int(inst.started_at),
                "owned_by": "llmedic-sandbox",
                "root": inst.model_version,
                "parent": None,
                "max_model_len": 4096,
                "permission": [],
            }
        ],
    }


def _heap_profile() -> Response:
    """``GET /admin/heap``: the top allocation sites (tracemalloc)."""
    if not tracemalloc.is_tracing():
        return JSONResponse(
            {"error": "heap profiling is off: start the sandbox with --trace-memory"},
            status_code=409,
        )
    # Allocations of the import machinery are modules loading, not a leak.
    snapshot = tracemalloc.take_snapshot().filter_traces(
        (
            tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
            tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
        )
    )
    stats = snapshot.statistics("lineno")[:15]
    top = [
        {"site": f"{st.traceback[0].filename}:{st.traceback[0].lineno}", "bytes": st.size, "count": st.count}
        for st in stats
    ]
    return JSONResponse({"kind": "tracemalloc", "top": top})


def _admin_read(inst: SandboxInstance, action: str, request: Request) -> Response | None:
    """The GET actions (state, heap, prompts); None for any other."""
    if action == "state":
        return JSONResponse(inst.state())
    if action == "heap":
        return _heap_profile()
    if action == "prompts":
        limit = int(request.query_params.get("limit", "500"))
        recent = list(inst.prompts)[-max(1, min(limit, 2000)) :]
        return JSONResponse({"prompts": [{"at": at, "prompt": p} for at, p in recent]})
    return None


async def _admin_act(inst: SandboxInstance, action: str, request: Request) -> Response | None:
    """The POST actions; a response for an unknown one, None when done."""
    if action == "faults":
        fault = Fault.model_validate(await _json(request))
        inst.faults[fault.kind] = fault
        inst.record("inject", kind=fault.kind)
    elif action == "drain":
        inst.drained = True
        inst.record("drain")
    elif action == "undrain":
        inst.drained = False
        inst.standby = False
        inst.record("undrain")
    elif action == "reset":
        inst.reset()
    elif action == "restart":
        inst.restart()
    elif action == "concurrency":
        await inst.set_limit(_Limit.model_validate(await _json(request)).limit)
    elif action == "env":
        env = _Env.model_validate(await _json(request))
        inst.env_python, inst.env_imports = env.python, env.imports
        inst.record("env", python=env.python, imports=env.imports)
    elif action == "model":
        inst.model_version = _Model.model_validate(await _json(request)).version
        inst.record("model", version=inst.model_version)
    else:
        return JSONResponse({"error": f"unknown admin action {action!r}"}, status_code=404)
    return None


def create_app(inst: SandboxInstance, admin_token: str | None = None) -> Starlette:
    """The ASGI app for one instance."""

    def authorised(request: Request) -> bool:
        if not admin_token:
            return True
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {admin_token}".encode())

    async def health(request: Request) -> Response:
        return Response(status_code=200 if inst.healthy else 503)

    async def models(request: Request) -> Response:
        return JSONResponse(_models_body(inst))

    async def chat(request: Request) -> Response:
        if not inst.healthy:
            return JSONResponse({"error": {"message": "engine unavailable"}}, status_code=503)
        try:
            body = _ChatRequest.model_validate(await _json(request))
        except (ValidationError, ValueError) as exc:
            return _bad(exc)
        question = next((m.content for m in reversed(body.messages) if m.role == "user"), "")
        probe = request.headers.get("user-agent", "").startswith("llmedic")
        status, payload = await inst.complete(question, body.max_tokens, probe=probe)
        return JSONResponse(payload, status_code=status)

    async def dcgm(request: Request) -> Response:
        # What a DCGM exporter on the host would publish for the fake GPUs of the scenario.
        if inst.gpu_scenario is None:
            return Response("no GPUs\n", status_code=404)
        return Response(dcgm_exposition(inst.gpu_scenario), media_type=CONTENT_TYPE_LATEST)

    async def metrics(request: Request) -> Response:
        inst.refresh_gauges()  # a real exporter reports the process's memory on every scrape
        return Response(generate_latest(inst.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def admin(request: Request) -> Response:
        if not authorised(request):
            return JSONResponse({"error": "admin token required"}, status_code=401)
        action = request.path_params["action"]
        try:
            if request.method == "GET" and (read := _admin_read(inst, action, request)) is not None:
                return read
            if request.method == "DELETE" and action == "faults":
                inst.faults.clear()
                inst.record("clear_faults")
            elif request.method != "POST":
                return JSONResponse(
                    {"error": f"{request.method} /admin/{action} not allowed"}, status_code=405
                )
            elif (refused := await _admin_act(inst, action, request)) is not None:
                return refused
        except (ValidationError, ValueError) as exc:
            return _bad(exc)
        return JSONResponse({"ok": True, "at": time.time(), "state": inst.state()})

    return Starlette(
        routes=[
            Route("/health", health),
            Route("/v1/models", models),
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/metrics", metrics),
            Route("/dcgm/metrics", dcgm),
            Route("/admin/{action}", admin, methods=["GET", "POST", "DELETE"]),
        ]
    )
