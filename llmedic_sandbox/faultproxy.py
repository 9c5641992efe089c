"""A fault-injecting TCP proxy on loopback: the sandbox's network fault (tests and game days).

``mode`` can be changed while it runs: ``pass``; ``drop`` (accept, then close at once); ``stall``
(accept, never answer); ``reset`` (answer with a TCP RST); ``slow`` (forward with a pause per chunk);
``flaky`` (drop every other connection). Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time

__all__ = ["MODES", "FaultProxy"]

MODES = ("pass", "drop", "stall", "reset", "slow", "flaky")


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
