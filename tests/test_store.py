"""The state store on both backends (SQLite file, PostgreSQL): migration from empty, incident CRUD,
the compare-and-set that closes an incident once, knowledge-base full-text search."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from llmedic.alerts import Alert
from llmedic.catalog import AnomalyType, anomaly_info
from llmedic.errors import ConfigError, StoreError
from llmedic.incident import Decision, EvidenceItem, Incident, Outcome
from llmedic.store import Store
from llmedic.store.db import normalise_url
from llmedic.store.incidents import IncidentStore
from llmedic.store.knowledge import KnowledgeBase, search_terms
from llmedic.store.migrations import HEAD

T0 = datetime(2026, 11, 1, 10, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "postgres":
        return Store.open(request.getfixturevalue("postgres_url"))
    return Store.open(str(tmp_path / "llmedic.db"))


def incident(n: int, *, target: str = "sandbox-1", run: str = "", day: int = 1, **extra: object) -> Incident:
    info = anomaly_info(AnomalyType.LATENCY)
    at = T0 + timedelta(days=day)
    return Incident(
        id=f"latency-{n}",
        anomaly=AnomalyType.LATENCY,
        category=info.category,
        team=info.team,
        title=f"{info.title} on {target}",
        target=target,
        alert=Alert(source="manual", anomaly=AnomalyType.LATENCY, target=target, starts_at=at),
        flow_run_id=run,
        opened_at=at,
        **extra,  # type: ignore[arg-type]
    )


TABLES = {
    "alembic_version",
    "audit_cache",
    "audit_records",
    "blast_radius",
    "incident_notices",
    "incidents",
    "kb_reports",
    "outbox",
    "registry_events",
    "review_incidents",
}


def test_an_empty_database_is_migrated_to_head_on_open(store: Store) -> None:
    assert set(sa.inspect(store.engine).get_table_names()) >= TABLES
    assert store.revision() == HEAD
    store.migrate()  # again: harmless
    assert store.revision() == HEAD


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("postgresql://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
        ("postgres://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("/var/lib/llmedic/llmedic.db", "sqlite:////var/lib/llmedic/llmedic.db"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ],
)
def test_urls(url: str, normal: str) -> None:
    assert normalise_url(url) == normal


def test_an_unreachable_store_is_a_clear_error_without_the_password() -> None:
    with pytest.raises(StoreError) as exc:
        Store.open("postgresql://nobody:secret@127.0.0.1:1/none")
    assert exc.value.message.startswith("state store postgresql://127.0.0.1:1/none: OperationalError")
    assert "secret" not in str(exc.value) and exc.value.code == "store-unavailable"


def test_incident_crud(store: Store) -> None:
    repo = IncidentStore(store)
    a, b = incident(1, run="run-a", day=2), incident(2, run="run-b", day=1)
    repo.save(a)
    repo.save(b)
    assert [i.id for i in repo.all()] == ["latency-2", "latency-1"]  # oldest first
    assert repo.load("latency-1") == a
    a.diagnosis = "instance_degraded"
    a.pending_approval = {"action": "restart_instance", "nonce": "n"}
    repo.save(a)  # replaces
    assert repo.load("latency-1").diagnosis == "instance_degraded"
    assert [i.id for i in repo.pending_approvals()] == ["latency-1"]
    assert repo.find_by_run("run-b") == b and repo.find_by_run("nope") is None
    repo.attach_resolved("run-a", T0)
    repo.attach_resolved("run-a", T0 + timedelta(minutes=1))
    assert repo.load("latency-1").resolved_alerts == [T0, T0 + timedelta(minutes=1)]
    assert repo.resolved_notices("run-b") == []
    with pytest.raises(ConfigError, match="no incident 'latency-9' in "):
        repo.load("latency-9")
    for bad in ("", "../x", ".hidden"):
        with pytest.raises(ConfigError, match="invalid incident id"):
            repo.load(bad)


def test_two_processes_racing_to_close_an_incident_close_it_once(store: Store) -> None:
    # Two engines = two processes' connection pools on one database.
    IncidentStore(store).save(incident(1))
    repos = [IncidentStore(Store(store.url)) for _ in range(2)]
    start = threading.Barrier(2)
    won: list[bool] = []

    def close(repo: IncidentStore, who: str) -> None:
        mine = repo.load("latency-1")
        mine.escalate(who)
        mine.close(Outcome.ESCALATED)
        start.wait()
        won.append(repo.save_if_open(mine))

    threads = [threading.Thread(target=close, args=(r, f"closer-{n}")) for n, r in enumerate(repos)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(won) == [False, True]
    final = IncidentStore(store).load("latency-1")
    assert final.outcome == Outcome.ESCALATED and final.escalation_reason in ("closer-0", "closer-1")
    assert IncidentStore(store).save_if_open(final) is False  # closed stays closed


def kb_incident(n: int, day: int, diagnosis: str, evidence: str) -> Incident:
    return incident(
        n,
        day=day,
        diagnosis=diagnosis,
        outcome=Outcome.RESOLVED,
        evidence=[EvidenceItem(name="e", source="probe", summary=evidence)],
        decisions=[Decision(topic="fix", choice="restart_instance", reason="first fix")],
    )


@pytest.mark.parametrize(
    ("text", "rank", "ids"),
    [
        ("xid", False, ["latency-3"]),
        ("XID 48", False, ["latency-3"]),
        ("kv_cache", False, ["latency-2"]),  # `_` separates words, as in both indexes
        ("cache", False, ["latency-2"]),
        ("press", False, ["latency-2"]),  # the start of a word matches
        ("ressure", False, []),  # the middle of one does not
        ("restart_instance", False, ["latency-3", "latency-2", "latency-1"]),  # newest first
        ("slow", False, ["latency-3", "latency-1"]),
        ("slow", True, ["latency-1", "latency-3"]),  # best match first: latency-1 says it thrice
        ("slow nothing", False, []),  # every word must match
        ("", False, ["latency-3", "latency-2", "latency-1"]),
        ("'; DROP TABLE kb_reports; --", False, []),  # words only, never SQL
    ],
)
def test_knowledge_base_full_text_search(
    store: Store, tmp_path: Path, text: str, rank: bool, ids: list[str]
) -> None:
    kb = KnowledgeBase(store, tmp_path / "kb")
    for inc in (
        kb_incident(1, 3, "instance_degraded: slow slow", "p99 slow"),
        kb_incident(2, 10, "kv_cache_pressure: KV 97%", "queue"),
        kb_incident(3, 20, "gpu_reset_needed: XID 48", "slow replies during a long incident report"),
    ):
        kb.write(inc)
    assert [i.id for i in kb.search(text=text, rank=rank)] == ids
    assert (tmp_path / "kb" / "latency-1.md").read_text().startswith("# Incident latency-1")


def test_rewriting_an_archived_incident_replaces_its_index_entry(store: Store, tmp_path: Path) -> None:
    kb = KnowledgeBase(store, tmp_path / "kb")
    kb.write(kb_incident(1, 3, "instance_degraded", "old words"))
    kb.write(kb_incident(1, 3, "instance_degraded", "new words"))
    assert [i.id for i in kb.search(text="new")] == ["latency-1"]
    assert kb.search(text="old") == [] and len(kb.all()) == 1


@pytest.mark.parametrize(
    ("text", "terms"),
    [("XID 48", ["xid", "48"]), ("kv_cache-pressure", ["kv", "cache", "pressure"]), ("  ", []), ("é", ["é"])],
)
def test_search_terms(text: str, terms: list[str]) -> None:
    assert search_terms(text) == terms
