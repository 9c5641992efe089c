"""Network faults for the tests: an HTTP file server with Range support, a fault-injecting TCP proxy
on loopback (pass, drop, stall, reset, slow, flaky), and a network namespace behind a veth pair whose
link the test takes down and up. Every loop is bounded."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from llmedic.sandbox.fleet import free_port


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


class FaultProxy:
    """A TCP proxy on 127.0.0.1 in front of ``target`` whose ``mode`` the test sets:
    ``pass``; ``drop`` (accept, then close at once); ``stall`` (accept, never answer); ``reset``
    (answer with a TCP RST); ``slow`` (forward with a pause per chunk); ``flaky`` (drop every other
    connection)."""

    def __init__(self, target: tuple[str, int], mode: str = "pass", delay: float = 0.5) -> None:
        self.target, self.mode, self.delay = target, mode, delay
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn, self.connections), daemon=True).start()

    def _handle(self, conn: socket.socket, n: int) -> None:
        mode = self.mode
        if mode == "flaky":
            mode = "drop" if n % 2 else "pass"
        if mode == "drop":
            conn.close()
            return
        if mode == "reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
            return
        if mode == "stall":
            self._stop.wait(10)
            conn.close()
            return
        try:
            up = socket.create_connection(self.target, timeout=5)
        except OSError:
            conn.close()
            return

        def pump(src: socket.socket, dst: socket.socket, slow: bool) -> None:
            with contextlib.suppress(OSError):
                src.settimeout(10)
                while chunk := src.recv(65536):
                    if slow:
                        time.sleep(self.delay)
                    dst.sendall(chunk)
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

        t = threading.Thread(target=pump, args=(conn, up, False), daemon=True)
        t.start()
        pump(up, conn, mode == "slow")
        t.join(10)
        conn.close()
        up.close()

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        self._thread.join(5)


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
