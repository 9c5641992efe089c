"""Network interruptions: the hop-by-hop probe against a fault-injecting proxy (drop, stall, reset,
slow, flaky), DNS and refused ports, and a veth link into a network namespace taken down and up;
resumable, checksum-verified transfers; and the network_interruption flow end to end — an
unreachable endpoint failed over after approval (over the namespace link), an interrupted model sync
resumed, a healthy link a false positive."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmedic.adapters.netprobe import probe_link
from llmedic.alerts import Alert
from llmedic.catalog import AnomalyType
from llmedic.errors import RemoteCommandError
from llmedic.incident import IncidentRequest, Outcome, utcnow
from llmedic.transfer import partial_of, resume_download
from llmedic_sandbox.faultproxy import FaultProxy
from llmedic_sandbox.fleet import free_port
from tests.flowrun import approve, run_flow
from tests.netfaults import file_server, namespace_link
from tests.sshd import Sshd

BLOB = bytes(range(256)) * 4096  # 1 MiB
SHA = hashlib.sha256(BLOB).hexdigest()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "model.safetensors").write_bytes(BLOB)
    with file_server(tmp_path / "srv") as url:
        yield url


def diagnose(url: str, tries: int = 4, timeout: float = 0.5) -> str:
    return probe_link(url, tries=tries, timeout=timeout).diagnose(loss_threshold=0.2, latency_threshold=0.3)[
        0
    ]


@pytest.mark.parametrize(
    ("mode", "timeout", "diagnosis"),
    [
        ("pass", 0.5, "healthy"),
        ("drop", 0.5, "http_failure"),
        ("reset", 0.5, "http_failure"),
        ("stall", 0.5, "http_failure"),  # reads time out
        ("slow", 3.0, "slow_link"),  # 0.5 s per chunk: answers, over the 0.3 s threshold
        ("flaky", 0.5, "packet_loss"),
    ],
)
def test_probe_names_the_failing_hop(server: str, mode: str, timeout: float, diagnosis: str) -> None:
    port = int(server.rsplit(":", 1)[1])
    proxy = FaultProxy(("127.0.0.1", port), mode=mode)
    try:
        assert diagnose(f"{proxy.url}/health", timeout=timeout) == diagnosis
    finally:
        proxy.close()


def test_probe_refused_and_dns() -> None:
    assert diagnose(f"http://127.0.0.1:{free_port()}/health") == "tcp_refused"
    assert diagnose("http://no-such-host.invalid/health") == "dns_failure"


def test_a_namespace_link_taken_down_and_up() -> None:
    with namespace_link("p") as link:
        assert diagnose(link.url) == "healthy"
        link.down()
        # With the veth down the route is gone: the kernel refuses (or, with another route to the
        # prefix, times out) — either way no TCP connect, which is what the flow acts on.
        assert diagnose(link.url, tries=2) in ("tcp_refused", "tcp_unreachable")
        link.up()
        assert diagnose(link.url) == "healthy"


def test_an_interrupted_transfer_resumes_and_is_verified(server: str, tmp_path: Path) -> None:
    dest = tmp_path / "models" / "model.safetensors"
    dest.parent.mkdir()
    partial_of(dest).write_bytes(BLOB[:300_000])
    res = resume_download(f"{server}/model.safetensors", dest, SHA, attempts=2, backoff_seconds=0.01)
    assert (res.resumed_from, res.bytes_total, dest.read_bytes() == BLOB) == (300_000, len(BLOB), True)
    assert not partial_of(dest).exists()


def test_a_corrupt_transfer_never_takes_the_place_of_the_file(server: str, tmp_path: Path) -> None:
    dest = tmp_path / "model.safetensors"
    dest.write_bytes(b"the old, good model")
    with pytest.raises(RemoteCommandError, match="checksum mismatch"):
        resume_download(f"{server}/model.safetensors", dest, "0" * 64, attempts=2, backoff_seconds=0.01)
    assert dest.read_bytes() == b"the old, good model"


def request(link: str) -> IncidentRequest:
    alert = Alert(
        source="manual",
        anomaly=AnomalyType.NETWORK_INTERRUPTION,
        alertname="LinkDown",
        target=link,
        starts_at=utcnow(),
    )
    return IncidentRequest(alert=alert, overrides={"settings": {"tries": 3, "timeout_seconds": 0.5}})


def flow() -> Any:
    from flows.network_interruption import network_interruption

    return network_interruption


def configure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, links: dict[str, Any]) -> None:
    (tmp_path / "llmedic.yaml").write_text(yaml.safe_dump({"network": {"links": links}}))
    monkeypatch.setenv("LLMEDIC_CONFIG", str(tmp_path / "llmedic.yaml"))


CURL = "curl -s -o /dev/null -w '%{{http_code}} %{{time_total}}' --max-time 2 {url}"
URL_PARAM = {"url": {"pattern": r"^https?://[A-Za-z0-9.:/_-]{1,200}$"}}


def configure_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, Any]) -> None:
    (tmp_path / "llmedic.yaml").write_text(yaml.safe_dump(env))
    monkeypatch.setenv("LLMEDIC_CONFIG", str(tmp_path / "llmedic.yaml"))


@pytest.mark.usefixtures("prefect_harness")
def test_an_unreachable_endpoint_fails_over_after_approval(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sshd: Sshd
) -> None:
    with namespace_link("f") as link:
        configure_env(
            tmp_path,
            monkeypatch,
            {
                "hosts": [
                    {"name": "local"},
                    {
                        "name": "consumer-a",
                        "kind": "ssh",
                        "address": "127.0.0.1",
                        "port": sshd.port,
                        "user": sshd.user,
                        "key_file": str(sshd.key),
                        "known_hosts": str(sshd.known_hosts),
                    },
                ],
                "commands": {"net_probe": {"template": CURL, "params": URL_PARAM}},
                "network": {
                    "links": {
                        "registry": {
                            "url": link.url,
                            "backup_url": f"{server}/health",
                            "consumers": ["pharma-qa"],
                            "probe_from": ["consumer-a"],
                        }
                    }
                },
            },
        )
        link.down()
        try:
            state, inc = run_flow(flow(), request("registry"), approve(), timeout=120)
        finally:
            link.up()
    assert state.is_completed(), inc.escalation_reason
    assert inc.outcome == Outcome.RESOLVED and inc.diagnosis.startswith("endpoint_down")
    assert (inc.approvals[0].action, inc.approvals[0].by) == ("failover", "alice")
    seen = next(e for e in inc.evidence if e.name == "probe_from_consumer-a").data
    assert seen["ok"] is False  # the consumer host, over SSH, cannot reach it either
    active = json.loads((Path(os.environ["LLMEDIC_HOME"]) / "network" / "active.json").read_text())
    assert active["registry"]["url"] == f"{server}/health"


@pytest.mark.usefixtures("prefect_harness")
def test_an_interrupted_model_sync_resumes_without_a_gate(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "models" / "model.safetensors"
    dest.parent.mkdir()
    partial_of(dest).write_bytes(BLOB[:500_000])
    configure(
        tmp_path,
        monkeypatch,
        {
            "model-sync": {
                "url": f"{server}/health",
                "artifact": {"url": f"{server}/model.safetensors", "dest": str(dest), "sha256": SHA},
            }
        },
    )
    state, inc = run_flow(flow(), request("model-sync"), timeout=120)
    assert state.is_completed(), inc.escalation_reason
    assert (
        inc.outcome == Outcome.RESOLVED
        and inc.diagnosis.startswith("sync_interrupted")
        and inc.approvals == []
    )
    fix = next(a for a in inc.actions if a.name == "resume_sync")
    assert (
        fix.result
        == f"model.safetensors: {len(BLOB)} bytes, resumed from byte 500000, 1 attempt(s), SHA-256 verified"
    )
    assert dest.read_bytes() == BLOB


@pytest.mark.usefixtures("prefect_harness")
def test_a_healthy_link_is_a_false_positive(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(tmp_path, monkeypatch, {"registry": {"url": f"{server}/health"}})
    state, inc = run_flow(flow(), request("registry"), timeout=60)
    assert state.is_completed() and inc.outcome == Outcome.FALSE_POSITIVE and inc.actions == []


@pytest.mark.usefixtures("prefect_harness")
def test_a_path_broken_only_from_the_orchestrator_is_escalated_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with namespace_link("o") as link:
        # The consumer lives inside the namespace: it still reaches the endpoint when llmedic cannot.
        inside = "ip netns exec llm-o " + CURL
        configure_env(
            tmp_path,
            monkeypatch,
            {
                "hosts": [{"name": "local"}],
                "commands": {"net_probe": {"template": inside, "params": URL_PARAM}},
                "network": {
                    "links": {"registry": {"url": link.url, "backup_url": link.url, "probe_from": ["local"]}}
                },
            },
        )
        link.down()
        try:
            state, inc = run_flow(flow(), request("registry"), timeout=120)
        finally:
            link.up()
    assert (
        state.is_failed()
        and inc.outcome == Outcome.ESCALATED
        and inc.diagnosis.startswith("orchestrator_path")
    )
    assert (
        inc.actions == []
        and "no fix in the playbook for diagnosis 'orchestrator_path'" in inc.escalation_reason
    )
