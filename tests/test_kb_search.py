"""The knowledge base search (`llmedic incidents search`): by type, target, alert label, text and
date, newest first, with what fixed each incident."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from llmedic.alerts import Alert
from llmedic.catalog import AnomalyType, anomaly_info
from llmedic.incident import Decision, Incident, Outcome
from llmedic.store.knowledge import KnowledgeBase


def incident(
    n: int, anomaly: AnomalyType, target: str, day: int, diagnosis: str, labels: dict[str, str]
) -> Incident:
    info = anomaly_info(anomaly)
    at = datetime(2026, 11, day, 10, tzinfo=UTC)
    return Incident(
        id=f"inc-{n}",
        anomaly=anomaly,
        category=info.category,
        team=info.team,
        title=f"{info.title} on {target}",
        target=target,
        alert=Alert(source="manual", anomaly=anomaly, target=target, labels=labels, starts_at=at),
        opened_at=at,
        outcome=Outcome.RESOLVED,
        diagnosis=diagnosis,
        decisions=[Decision(topic="fix", choice="restart_instance", reason="first fix")],
    )


@pytest.fixture
def kb(tmp_path: Path) -> KnowledgeBase:
    kb = KnowledgeBase(tmp_path)
    for inc in (
        incident(
            1, AnomalyType.LATENCY, "sandbox-1", 3, "instance_degraded: p99 3.0s", {"severity": "critical"}
        ),
        incident(
            2, AnomalyType.LATENCY, "sandbox-2", 10, "kv_cache_pressure: KV 97%", {"severity": "warning"}
        ),
        incident(
            3, AnomalyType.GPU_FAULT, "sandbox-1", 20, "gpu_reset_needed: XID 48", {"severity": "critical"}
        ),
    ):
        kb.write(inc)
    return kb


@pytest.mark.parametrize(
    ("query", "ids"),
    [
        ({}, ["inc-3", "inc-2", "inc-1"]),
        ({"anomaly": "latency"}, ["inc-2", "inc-1"]),
        ({"target": "sandbox-1"}, ["inc-3", "inc-1"]),
        ({"labels": {"severity": "critical"}}, ["inc-3", "inc-1"]),
        ({"text": "xid 48"}, ["inc-3"]),
        ({"text": "restart_instance", "anomaly": "latency"}, ["inc-2", "inc-1"]),
        (
            {"since": datetime(2026, 11, 5, tzinfo=UTC), "until": datetime(2026, 11, 20, tzinfo=UTC)},
            ["inc-2"],
        ),
        ({"anomaly": "memory_leak"}, []),
    ],
)
def test_search(kb: KnowledgeBase, query: dict[str, object], ids: list[str]) -> None:
    assert [i.id for i in kb.search(**query)] == ids  # type: ignore[arg-type]


def test_search_command(
    kb: KnowledgeBase, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from llmedic.cli import main

    monkeypatch.setenv("LLMEDIC_HOME", str(kb.home))
    monkeypatch.setattr(
        "sys.argv",
        ["llmedic", "incidents", "search", "--type", "latency", "--label", "severity=warning", "--json"],
    )
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["incident"], row["diagnosis"]) == ("inc-2", "kv_cache_pressure: KV 97%")
    monkeypatch.setattr("sys.argv", ["llmedic", "incidents", "search", "--since", "yesterday"])
    with pytest.raises(SystemExit) as bad:
        main()
    assert (
        bad.value.code == 2
        and "error [config-invalid]: --since 'yesterday' is not a date" in capsys.readouterr().err
    )
