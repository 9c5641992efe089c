"""OpenAI-compatible endpoint (vLLM, TGI, the sandbox): health, models and synthetic probes."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from llmedic.adapters.http import translate_http_errors
from llmedic.errors import EndpointError
from llmedic.quantiles import sample_quantile

__all__ = ["Endpoint", "ProbeResult", "ProbeSummary", "summarise_probes"]


@dataclass(frozen=True)
class ProbeResult:
    """One synthetic request."""

    ok: bool
    seconds: float
    status: int | None = None
    error: str = ""
    answer: str = ""


@dataclass(frozen=True)
class ProbeSummary:
    """A burst of probes, summarised."""

    count: int
    failures: int
    p50: float
    p90: float
    p99: float
    max: float
    errors: list[str]

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form for evidence."""
        return {
            "count": self.count,
            "failures": self.failures,
            "p50_s": round(self.p50, 4),
            "p90_s": round(self.p90, 4),
            "p99_s": round(self.p99, 4),
            "max_s": round(self.max, 4),
            "errors": self.errors[:5],
        }


def summarise_probes(results: list[ProbeResult]) -> ProbeSummary:
    """Percentiles over successful probes; failures counted and sampled."""
    ok = [r.seconds for r in results if r.ok]
    return ProbeSummary(
        count=len(results),
        failures=sum(1 for r in results if not r.ok),
        p50=sample_quantile(ok, 0.5),
        p90=sample_quantile(ok, 0.9),
        p99=sample_quantile(ok, 0.99),
        max=max(ok) if ok else float("nan"),
        errors=sorted({r.error for r in results if r.error}),
    )


class Endpoint:
    """Client for one OpenAI-compatible serving instance."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # The User-Agent marks llmedic's own probes, so gateways (and the sandbox) can keep them out
        # of the user-prompt log that prompt drift is measured on.
        headers = {
            "User-Agent": "llmedic-probe",
            **({"Authorization": f"Bearer {api_key}"} if api_key else {}),
        }
        self._client = httpx.Client(
            base_url=self.base_url, timeout=timeout, headers=headers, transport=transport
        )

    def close(self) -> None:
        """Release connections."""
        self._client.close()

    def __enter__(self) -> Endpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def health(self) -> bool:
        """``GET /health`` is 200 (vLLM and TGI answer 503 when the engine is dead)."""
        try:
            return self._client.get("/health").status_code == 200
        except httpx.HTTPError:
            return False

    def models(self) -> list[str]:
        """Model ids served (``GET /v1/models``)."""
        with translate_http_errors(EndpointError, f"{self.base_url}/v1/models"):
            resp = self._client.get("/v1/models")
            resp.raise_for_status()
        try:
            return [str(m["id"]) for m in resp.json()["data"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise EndpointError(f"{self.base_url}/v1/models: unexpected body ({exc})") from exc

    def probe(self, prompt: str, *, model: str | None = None, max_tokens: int = 16) -> ProbeResult:
        """One chat completion, timed end to end; failures are results, not exceptions."""
        body = {
            "model": model or "default",
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens,
            "temperature": 0,
        }
        start = time.perf_counter()
        try:
            resp = self._client.post("/v1/chat/completions", json=body)
        except httpx.HTTPError as exc:
            return ProbeResult(False, time.perf_counter() - start, None, type(exc).__name__)
        elapsed = time.perf_counter() - start
        if resp.status_code != 200:
            return ProbeResult(False, elapsed, resp.status_code, f"HTTP {resp.status_code}")
        try:
            answer = str(resp.json()["choices"][0]["message"]["content"])
        except (ValueError, KeyError, IndexError, TypeError):
            return ProbeResult(False, elapsed, resp.status_code, "malformed completion")
        return ProbeResult(True, elapsed, resp.status_code, answer=answer)

    def burst(
        self, count: int, *, prompt: str, concurrency: int = 4, max_tokens: int = 16
    ) -> list[ProbeResult]:
        """``count`` probes, ``concurrency`` at a time."""
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            return list(pool.map(lambda _: self.probe(prompt, max_tokens=max_tokens), range(count)))

    def require_up(self) -> None:
        """Raise :class:`EndpointError` unless the instance answers ``/health``."""
        try:
            resp = self._client.get("/health")
        except httpx.HTTPError as exc:
            raise EndpointError(
                f"{self.base_url} is unreachable ({type(exc).__name__})",
                hint="check that the service runs and the URL in llmedic.yaml is right",
            ) from exc
        if resp.status_code != 200:
            raise EndpointError(f"{self.base_url}/health answered HTTP {resp.status_code}")
