"""A real OpenSSH server on 127.0.0.1 for the SSH tests: generated host and user keys, key auth only,
started and stopped by the test set-up."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from llmedic_sandbox.fleet import free_port

SSHD = "/usr/sbin/sshd"


@dataclass(frozen=True)
class Sshd:
    """A running sshd and the files a client needs."""

    port: int
    user: str
    key: Path
    """A private key the server accepts."""
    other_key: Path
    """A private key it does not."""
    known_hosts: Path
    """A known_hosts file with the server's key."""
    fingerprint: str
    """``SHA256:…`` of the server's host key."""
    pid_file: Path


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


@contextmanager
def running_sshd(base: Path) -> Iterator[Sshd]:
    """Start sshd on a free loopback port (skips, or fails under CI, when OpenSSH is missing)."""
    if not Path(SSHD).exists() or shutil.which("ssh-keygen") is None:
        if os.environ.get("CI"):
            pytest.fail("openssh-server missing in CI (make tools installs it)")
        pytest.skip("openssh-server is not installed (run `make tools` as root)")
    base.mkdir(parents=True, exist_ok=True)
    for name in ("host_key", "user_key", "other_key"):
        _keygen(base / name)
    (base / "authorized_keys").write_text((base / "user_key.pub").read_text())
    os.chmod(base / "authorized_keys", 0o600)
    port = free_port()
    config = base / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {base / 'host_key'}",
                f"PidFile {base / 'sshd.pid'}",
                f"AuthorizedKeysFile {base / 'authorized_keys'}",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "StrictModes no",
                "PermitRootLogin prohibit-password",
                "LogLevel ERROR",
                "",
            ]
        )
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege-separation directory sshd insists on
    log = (base / "sshd.log").open("ab")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited: {(base / 'sshd.log').read_text()[-500:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(4).startswith(b"SSH-"):
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("sshd did not start")
        time.sleep(0.1)
    pub = (base / "host_key.pub").read_text().split()
    (base / "known_hosts").write_text(f"[127.0.0.1]:{port} {pub[0]} {pub[1]}\n")
    fp = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(base / "host_key.pub")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[1]
    try:
        yield Sshd(
            port=port,
            user=getpass.getuser(),
            key=base / "user_key",
            other_key=base / "other_key",
            known_hosts=base / "known_hosts",
            fingerprint=fp,
            pid_file=base / "sshd.pid",
        )
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
