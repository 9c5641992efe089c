"""Network faults for the tests: an HTTP file server with Range support and a network namespace
behind a veth pair whose link the test takes down and up (the fault-injecting TCP proxy is the
sandbox's: ``llmedic_sandbox.faultproxy``). Every loop is bounded."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from llmedic_sandbox.fleet import free_port


class _Handler(BaseHTTPRequestHandler):
    root: Path

    def log_message(self, *args: object) -> None:
        return None

    def do_GET(self) -> None:
        if self.path == "/health":
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
            return
        path = self.root / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = data[start:]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            body = data
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextlib.contextmanager
def file_server(root: Path) -> Iterator[str]:
    """Serve ``root`` (and ``/health``) on 127.0.0.1; yields the base URL."""
    handler = type("H", (_Handler,), {"root": root})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class NamespaceLink:
    """An HTTP server inside a network namespace, reached over a veth pair."""

    url: str
    veth: str

    def down(self) -> None:
        subprocess.run(["ip", "link", "set", self.veth, "down"], check=True)

    def up(self) -> None:
        subprocess.run(["ip", "link", "set", self.veth, "up"], check=True)


@contextlib.contextmanager
def namespace_link(tag: str) -> Iterator[NamespaceLink]:
    """``ip netns`` + a veth pair (10.231.x.1 here, .2 in the namespace) + an HTTP server inside.
    Skips (fails under CI) when namespaces cannot be made."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("network namespaces need root in CI")
        pytest.skip("network namespaces need root")
    ns, here, there = f"llm-{tag}", f"vl{tag}0", f"vl{tag}1"
    net = 231
    subnet = 10 + (abs(hash(tag)) % 200)

    def ip(*args: str, check: bool = True) -> None:
        subprocess.run(["ip", *args], check=check, capture_output=True)

    ip("netns", "del", ns, check=False)
    ip("link", "del", here, check=False)
    try:
        ip("netns", "add", ns)
        ip("link", "add", here, "type", "veth", "peer", "name", there)
        ip("link", "set", there, "netns", ns)
        ip("addr", "add", f"10.{net}.{subnet}.1/24", "dev", here)
        ip("link", "set", here, "up")
        ip("netns", "exec", ns, "ip", "addr", "add", f"10.{net}.{subnet}.2/24", "dev", there)
        ip("netns", "exec", ns, "ip", "link", "set", there, "up")
        ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")
    except subprocess.CalledProcessError as exc:
        ip("netns", "del", ns, check=False)
        ip("link", "del", here, check=False)
        if os.environ.get("CI"):
            raise
        pytest.skip(f"cannot create a network namespace here: {exc.stderr!r}")
    port = free_port()
    server = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            ns,
            sys.executable,
            "-m",
            "http.server",
            str(port),
            "--bind",
            f"10.{net}.{subnet}.2",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://10.{net}.{subnet}.2:{port}/"
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection((f"10.{net}.{subnet}.2", port), timeout=0.5),
            ):
                break
            time.sleep(0.1)
        yield NamespaceLink(url, here)
    finally:
        server.terminate()
        server.wait(10)
        ip("netns", "del", ns, check=False)
        ip("link", "del", here, check=False)
