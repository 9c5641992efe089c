"""Network probes from this machine: DNS, TCP connect (loss and latency over N tries) and HTTP, and
which hop fails.

Every try is bounded by its timeout and the number of tries, so a probe of a dead link ends in
``tries × timeout`` at most.
"""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from llmedic.quantiles import sample_quantile

__all__ = ["LinkProbe", "probe_link"]


@dataclass
class LinkProbe:
    """What N tries against one URL showed, hop by hop."""

    url: str
    host: str
    port: int
    dns: list[str] = field(default_factory=list)
    dns_error: str = ""
    tcp_ok: int = 0
    tcp_tries: int = 0
    tcp_errors: dict[str, int] = field(default_factory=dict)
    tcp_resets: int = 0
    tcp_p50_s: float | None = None
    tcp_max_s: float | None = None
    http_ok: int = 0
    http_tries: int = 0
    http_errors: dict[str, int] = field(default_factory=dict)
    http_p50_s: float | None = None

    @property
    def loss(self) -> float:
        """Share of TCP connects that failed."""
        return 1 - self.tcp_ok / self.tcp_tries if self.tcp_tries else 1.0

    def diagnose(self, *, loss_threshold: float, latency_threshold: float) -> tuple[str, str]:
        """(diagnosis, reason): the first hop that fails."""
        if self.dns_error:
            return "dns_failure", f"{self.host} does not resolve: {self.dns_error}"
        if self.tcp_ok == 0:
            top = max(self.tcp_errors, key=lambda k: self.tcp_errors[k]) if self.tcp_errors else "no answer"
            kind = "tcp_refused" if "refused" in top.lower() else "tcp_unreachable"
            return kind, f"no TCP connect to {self.host}:{self.port} in {self.tcp_tries} tries ({top})"
        if self.loss > loss_threshold:
            return "packet_loss", f"{self.loss:.0%} of TCP connects to {self.host}:{self.port} failed"
        if self.http_ok < self.http_tries:
            top = max(self.http_errors, key=lambda k: self.http_errors[k]) if self.http_errors else "?"
            if self.http_ok == 0:
                return "http_failure", f"TCP connects, but HTTP fails on every try ({top})"
            return (
                "packet_loss",
                f"{self.http_tries - self.http_ok} of {self.http_tries} HTTP tries failed ({top})",
            )
        slow = self.http_p50_s is not None and self.http_p50_s > latency_threshold
        if slow:
            return "slow_link", f"HTTP p50 {self.http_p50_s:.2f}s over {latency_threshold:g}s"
        return (
            "healthy",
            f"{self.host}:{self.port} answers (TCP loss {self.loss:.0%}, HTTP p50 {self.http_p50_s or 0:.3f}s)",
        )

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form."""
        return {**self.__dict__, "loss": round(self.loss, 4)}


def _resolve(host: str, port: int, timeout: float) -> list[str]:
    with ThreadPoolExecutor(max_workers=1) as pool:
        fut = pool.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
        try:
            infos = fut.result(timeout=timeout)
        except FutureTimeout:
            raise OSError(f"DNS lookup timed out after {timeout:g}s") from None
    return sorted({str(i[4][0]) for i in infos})


def probe_link(url: str, *, tries: int = 5, timeout: float = 2.0) -> LinkProbe:
    """Probe ``url``: DNS once, then ``tries`` TCP connects and ``tries`` HTTP GETs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    out = LinkProbe(url, host, port)
    try:
        out.dns = _resolve(host, port, timeout)
    except OSError as exc:
        out.dns_error = str(exc) if str(exc) else type(exc).__name__
        return out
    times: list[float] = []
    for _ in range(tries):
        out.tcp_tries += 1
        start = time.perf_counter()
        try:
            with socket.create_connection((host, port), timeout=timeout):
                times.append(time.perf_counter() - start)
                out.tcp_ok += 1
        except ConnectionResetError:
            # A reset can only follow a completed handshake: a listener answered, so the TCP hop
            # works (the reset arrived before connect() returned, which a loaded host makes
            # likely). What the peer does after the handshake is the HTTP hop's business.
            times.append(time.perf_counter() - start)
            out.tcp_ok += 1
            out.tcp_resets += 1
        except OSError as exc:
            key = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__)
            out.tcp_errors[key] = out.tcp_errors.get(key, 0) + 1
    if times:
        out.tcp_p50_s, out.tcp_max_s = sample_quantile(times, 0.5), max(times)
    if out.tcp_ok == 0:
        return out
    http_times: list[float] = []
    with httpx.Client(timeout=timeout) as client:
        for _ in range(tries):
            out.http_tries += 1
            start = time.perf_counter()
            try:
                resp = client.get(url)
                if resp.status_code < 500:
                    out.http_ok += 1
                    http_times.append(time.perf_counter() - start)
                else:
                    key = f"HTTP {resp.status_code}"
                    out.http_errors[key] = out.http_errors.get(key, 0) + 1
            except httpx.HTTPError as exc:
                key = type(exc).__name__
                out.http_errors[key] = out.http_errors.get(key, 0) + 1
    if http_times:
        out.http_p50_s = sample_quantile(http_times, 0.5)
    return out
