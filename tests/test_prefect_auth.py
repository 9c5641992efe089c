"""The Prefect API is not open to whoever reaches it: llmedic's server requires Prefect's basic
auth string when it has one (generated, mode 0600, whenever ``llmedic up`` listens beyond
loopback), every llmedic client sends it, and no server llmedic starts sends telemetry."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prefect.settings import temporary_settings

from llmedic.alerts import Alert
from llmedic.catalog import AnomalyType, anomaly_info
from llmedic.config import Settings
from llmedic.errors import ConfigError, OrchestrationError
from llmedic.orchestration import PrefectServer, client_settings, dispatch_alerts, prefect_env, read_run
from llmedic.prefect_auth import (
    CLIENT_VAR,
    SERVER_VAR,
    auth_file,
    configured_auth_string,
    ensure_auth_file,
    is_loopback,
)
from llmedic.stack import Stack
from llmedic_sandbox.fleet import free_port

AUTH = "llmedic:s3cret-for-the-test"


def test_every_server_llmedic_starts_sends_no_telemetry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SERVER_VAR, "inherited:not-ours")
    monkeypatch.delenv(CLIENT_VAR, raising=False)
    for auth, expected in ((None, None), (AUTH, AUTH)):
        env = PrefectServer(tmp_path, auth_string=auth).environment()
        assert (env["PREFECT_SERVER_ANALYTICS_ENABLED"], env["DO_NOT_TRACK"]) == ("false", "1")
        # Exactly the server's own string (an inherited one is not passed on), for server and its clients.
        assert (env.get(SERVER_VAR), env.get(CLIENT_VAR)) == (expected, expected)
    client = prefect_env(tmp_path, "http://127.0.0.1:1/api", auth_string=AUTH)
    assert (client[CLIENT_VAR], client["DO_NOT_TRACK"], client["PREFECT_SERVER_ANALYTICS_ENABLED"]) == (
        AUTH,
        "1",
        "false",
    )


def test_the_test_harness_server_sends_no_telemetry(prefect_harness: None) -> None:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        settings = client.request("GET", "/admin/settings").json()
    assert settings["server"]["analytics_enabled"] is False


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("llmedic.internal", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("environ", "in_file", "expected"),
    [
        ({}, None, None),
        ({}, "llmedic:from-file", "llmedic:from-file"),
        ({CLIENT_VAR: "a:1"}, "llmedic:from-file", "a:1"),
        ({SERVER_VAR: "b:2"}, None, "b:2"),
        ({CLIENT_VAR: "c:3", SERVER_VAR: "c:3"}, None, "c:3"),
        ({CLIENT_VAR: ""}, "llmedic:from-file", "llmedic:from-file"),
    ],
)
def test_where_the_auth_string_comes_from(
    tmp_path: Path, environ: dict[str, str], in_file: str | None, expected: str | None
) -> None:
    if in_file is not None:
        auth_file(tmp_path).write_text(in_file + "\n")
    assert configured_auth_string(tmp_path, environ) == expected


def test_two_different_auth_strings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError,
        match="PREFECT_API_AUTH_STRING and PREFECT_SERVER_API_AUTH_STRING are set to different values",
    ):
        configured_auth_string(tmp_path, {CLIENT_VAR: "a:1", SERVER_VAR: "b:2"})


@pytest.fixture
def no_operator_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (CLIENT_VAR, SERVER_VAR, "PREFECT_API_URL"):
        monkeypatch.delenv(var, raising=False)


@pytest.mark.fault(
    tried="`llmedic up --host 0.0.0.0` with no Prefect auth configured",
    survives="an auth string is generated (user:password, mode 0600, kept across restarts); loopback stays optional",
)
def test_up_beyond_loopback_generates_an_auth_string(
    tmp_path: Path, no_operator_auth: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    assert Stack(Settings(home=home), host="127.0.0.1").api_auth() is None
    assert not auth_file(home).exists()
    wide = Stack(Settings(home=home), host="0.0.0.0")
    auth = wide.api_auth()
    path = auth_file(home)
    assert (wide.auth_path, oct(path.stat().st_mode & 0o777)) == (path, "0o600")
    user, password = (auth or "").split(":")
    assert (user, len(password) >= 40) == ("llmedic", True)
    assert ensure_auth_file(home) == path and path.read_text().strip() == auth  # kept, not regenerated
    # Once there, it is honoured on loopback too; an operator's own string wins over it.
    assert Stack(Settings(home=home), host="127.0.0.1").api_auth() == auth
    monkeypatch.setenv(SERVER_VAR, "ops:chosen")
    mine = Stack(Settings(home=home), host="0.0.0.0")
    assert (mine.api_auth(), mine.auth_path) == ("ops:chosen", None)


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[PrefectServer]:
    server = PrefectServer(tmp_path / "server", port=free_port(), auth_string=AUTH)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def basic(auth: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}


@pytest.mark.fault(
    tried="Prefect API requests with no credentials, a wrong auth string, a bearer token; llmedic clients without the string",
    survives="401 for each; health probes still answer; every llmedic client with the string works",
)
def test_a_secured_server_refuses_strangers_and_serves_llmedic_clients(
    secured: PrefectServer, tmp_path: Path, no_operator_auth: None
) -> None:
    api = secured.api_url
    body = {"limit": 1}
    for headers in ({}, basic("llmedic:wrong"), {"Authorization": f"Bearer {AUTH}"}):
        refused = httpx.post(f"{api}/flow_runs/filter", json=body, headers=headers, timeout=10)
        assert (refused.status_code, refused.json()) == (401, {"exception_message": "Unauthorized"})
    assert httpx.get(f"{api}/health", timeout=10).status_code == 200  # `llmedic up` waits on it
    assert httpx.post(f"{api}/flow_runs/filter", json=body, headers=basic(AUTH), timeout=10).json() == []

    # A deployment run started and read back through llmedic.orchestration, with the string.
    alert = Alert(source="manual", anomaly=AnomalyType.LATENCY, target="sandbox-0")
    with temporary_settings(updates=client_settings(api, AUTH)):
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            flow_id = client.create_flow_from_name("llmedic-latency")
            client.create_deployment(flow_id=flow_id, name="default")
        (started,) = dispatch_alerts([alert])
        assert (started.status, started.deployment) == (
            "started",
            anomaly_info(AnomalyType.LATENCY).deployment_name,
        )
        assert started.flow_run_id is not None
        assert str(read_run(started.flow_run_id).id) == started.flow_run_id
    # The same client without it is refused.
    with temporary_settings(updates=client_settings(api)), pytest.raises(OrchestrationError):
        read_run(started.flow_run_id)

    # The `llmedic` command finds the string in the home's file (as `llmedic up` leaves it).
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in (CLIENT_VAR, SERVER_VAR)}
    env.update({"LLMEDIC_HOME": str(home), "PREFECT_API_URL": api, "PREFECT_CLIENT_MAX_RETRIES": "0"})
    cmd = [sys.executable, "-m", "llmedic", "approve", started.flow_run_id, "--by", "oncall-ana"]
    without = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    auth_file(home).write_text(AUTH + "\n")
    with_file = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert "401" in without.stderr, without.stderr
    assert with_file.stderr.startswith(
        f"error [approval-invalid]: flow run {started.flow_run_id} is not waiting for an approval"
    ), with_file.stderr
