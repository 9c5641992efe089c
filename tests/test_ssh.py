"""The SSH shell against a real OpenSSH server on 127.0.0.1: commands run with their output and exit
status; an unknown host key, a wrong pinned fingerprint and a refused user key are all refused; a
command that runs too long times out and the next one still works; a connection dropped
mid-command is an error that says so; the injection corpus through a templated parameter stays
inert over SSH."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llmedic.adapters.shell import SshShell, run_template
from llmedic.config import CommandParam, CommandTemplate, HostConfig
from llmedic.errors import RemoteCommandError
from tests.sshd import Sshd


def host(s: Sshd, **kw: Any) -> HostConfig:
    base: dict[str, Any] = {
        "name": "gpu-node-1",
        "kind": "ssh",
        "address": "127.0.0.1",
        "port": s.port,
        "user": s.user,
        "key_file": s.key,
        "known_hosts": s.known_hosts,
    }
    return HostConfig.model_validate({**base, **kw})


def test_a_command_runs_with_output_and_exit_status(sshd: Sshd) -> None:
    shell = SshShell(host(sshd))
    res = shell.run("echo hello; echo oops >&2; exit 3", timeout=10)
    assert (res.returncode, res.stdout, res.stderr) == (3, "hello\n", "oops\n")
    big = shell.run("head -c 300000 /dev/zero | tr '\\0' x", timeout=10)  # more than one window
    assert big.ok and len(big.stdout) == 300_000
    shell.close()


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"known_hosts": None}, "unknown host key ssh-ed25519 SHA256:"),
        ({"known_hosts": None, "host_key_fingerprint": "SHA256:" + "A" * 43}, "unknown host key ssh-ed25519"),
    ],
)
def test_unknown_host_keys_are_refused(sshd: Sshd, kw: dict[str, Any], message: str) -> None:
    with pytest.raises(RemoteCommandError) as err:
        SshShell(host(sshd, **kw)).run("true", timeout=5)
    assert message in err.value.message and err.value.message.endswith("; refused")
    assert "pin it" in (err.value.hint or "")


def test_a_pinned_fingerprint_is_accepted_without_known_hosts(sshd: Sshd) -> None:
    res = SshShell(host(sshd, known_hosts=None, host_key_fingerprint=sshd.fingerprint)).run(
        "echo ok", timeout=5
    )
    assert res.stdout == "ok\n"


def test_a_wrong_user_key_is_refused(sshd: Sshd) -> None:
    with pytest.raises(RemoteCommandError) as err:
        SshShell(host(sshd, key_file=sshd.other_key)).run("true", timeout=5)
    assert err.value.message.endswith("key authentication refused")


def test_unreachable_port(sshd: Sshd) -> None:
    from llmedic_sandbox.fleet import free_port

    with pytest.raises(RemoteCommandError, match="unreachable"):
        SshShell(host(sshd, port=free_port())).run("true", timeout=5)


@pytest.mark.fault(
    tried="a remote command past its timeout",
    survives="a timeout error, and the next command works",
)
def test_a_command_that_runs_too_long_times_out_and_the_next_works(sshd: Sshd) -> None:
    shell = SshShell(host(sshd))
    with pytest.raises(RemoteCommandError) as err:
        shell.run("sleep 30", timeout=1)
    assert err.value.message.endswith("'sleep 30' timed out after 1s")
    assert shell.run("echo again", timeout=5).stdout == "again\n"


@pytest.mark.fault(
    tried="the SSH connection killed while a command runs",
    survives="a clear remote-command error; nothing hangs",
)
def test_a_connection_dropped_mid_command_is_an_error(sshd: Sshd) -> None:
    shell = SshShell(host(sshd))
    # The shell kills its own sshd session process: the connection goes away under the command.
    with pytest.raises(RemoteCommandError) as err:
        shell.run("echo started; kill -9 $PPID; sleep 5", timeout=10)
    assert "connection dropped" in err.value.message
    assert shell.run("echo reconnected", timeout=5).stdout == "reconnected\n"


INJECTIONS = [
    "; touch {canary}",
    "x && touch {canary}",
    "$(touch {canary})",
    "`touch {canary}`",
    "x\ntouch {canary}",
    "| touch {canary}",
    "../../../../tmp/evil",
    "' ; touch {canary} ; '",
]


@pytest.mark.fault(
    tried="the injection corpus through a templated parameter over SSH",
    survives="refused or inert",
)
@pytest.mark.parametrize("value", INJECTIONS)
def test_injection_through_a_template_is_refused_or_inert_over_ssh(
    sshd: Sshd, tmp_path: Path, value: str
) -> None:
    canary = tmp_path / "canary"
    commands = {
        # A permissive parameter (any printable text): quoting alone must keep it inert.
        "echo_unit": CommandTemplate(
            template="echo {unit}", params={"unit": CommandParam(pattern=r"^[\s\S]{1,200}$")}
        ),
        # The default pattern: most of the corpus is refused before anything runs.
        "restart": CommandTemplate(template="echo restart {unit}", params={"unit": CommandParam()}),
    }
    shell = SshShell(host(sshd))
    text = value.format(canary=canary)
    if ".." in text:  # path traversal is refused whatever the pattern allows
        with pytest.raises(RemoteCommandError, match="climbs out of its directory"):
            run_template(shell, commands, "echo_unit", {"unit": text})
    else:
        res = run_template(shell, commands, "echo_unit", {"unit": text})
        assert res.stdout == text + "\n"  # printed verbatim: the shell never interpreted it
    with pytest.raises(RemoteCommandError, match="refused"):
        run_template(shell, commands, "restart", {"unit": text})
    assert not canary.exists()
