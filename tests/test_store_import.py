"""``llmedic store import HOME``: a file-based home (as written before the state store) brought into
the store on both backends — nothing lost, nothing added twice, the files left alone, a clear
error for a file that cannot be read."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from llmedic.alerts import Alert
from llmedic.auditing import AuditHistory, AuditRecord
from llmedic.catalog import AnomalyType, anomaly_info
from llmedic.errors import ConfigError
from llmedic.incident import Incident, Outcome
from llmedic.receiver.outbox import Outbox
from llmedic.registry import ModelRegistry, RegistryEvent
from llmedic.reviews.incidents import ReviewIncident, ReviewIncidents
from llmedic.store import Store
from llmedic.store.importer import SOURCES, import_home
from llmedic.store.incidents import IncidentStore
from llmedic.store.knowledge import KnowledgeBase

T0 = datetime(2026, 11, 1, 10, tzinfo=UTC)
OLD_OUTBOX = """CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, dedup_key TEXT NOT NULL,
    target TEXT NOT NULL, anomaly TEXT, status TEXT NOT NULL, state TEXT NOT NULL, alert TEXT NOT NULL,
    received_at DOUBLE PRECISION NOT NULL, seen INTEGER NOT NULL DEFAULT 1,
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt DOUBLE PRECISION NOT NULL DEFAULT 0,
    flow_run_id TEXT, dispatched_at DOUBLE PRECISION, error TEXT)"""


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "postgres":
        return Store.open(request.getfixturevalue("postgres_url"))
    return Store.open(str(tmp_path / "new" / "llmedic.db"))


def incident(n: int, outcome: Outcome = Outcome.OPEN) -> Incident:
    info = anomaly_info(AnomalyType.LATENCY)
    at = T0 + timedelta(hours=n)
    return Incident(
        id=f"latency-{n}",
        anomaly=AnomalyType.LATENCY,
        category=info.category,
        team=info.team,
        title=f"slow sandbox-{n}",
        target=f"sandbox-{n}",
        alert=Alert(source="manual", anomaly=AnomalyType.LATENCY, target=f"sandbox-{n}", starts_at=at),
        flow_run_id=f"run-{n}",
        opened_at=at,
        outcome=outcome,
        diagnosis="instance_degraded" if outcome != Outcome.OPEN else "",
    )


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def old_home(home: Path) -> None:
    """Every file a home held before the state store, in the formats of that version."""
    for n in (1, 2):
        write(home / "incidents" / f"latency-{n}.json", incident(n).model_dump_json(indent=2))
    write(
        home / "incidents" / "notices" / "run-1.jsonl",
        json.dumps({"kind": "resolved", "at": T0.isoformat()}) + "\n",
    )
    closed = incident(3, Outcome.RESOLVED).model_copy(
        update={"report_path": str(home / "kb" / "latency-3.md")}
    )
    write(home / "kb" / "latency-3.json", closed.model_dump_json(indent=2))
    write(home / "kb" / "latency-3.md", "# Incident latency-3\n")
    review = ReviewIncident(
        id="capacity-svc-2026-11",
        kind="capacity",
        subject="svc",
        period="2026-11",
        title="headroom",
        findings=["gpu 81 %"],
        opened_at=T0,
        updated_at=T0,
    )
    write(home / "reviews" / "incidents" / f"{review.id}.json", review.model_dump_json(indent=2))
    events = [
        RegistryEvent(event="release", at=T0, by="ci", version="1.0"),
        RegistryEvent(event="release", at=T0 + timedelta(days=1), by="ci", version="1.1"),
        RegistryEvent(
            event="verdict", at=T0 + timedelta(days=2), by="llmedic", version="1.1", good=False, note="bad"
        ),
    ]
    write(home / "models" / "svc.jsonl", "".join(e.model_dump_json() + "\n" for e in events))
    audits = [AuditRecord(at=T0 + timedelta(days=d), dataset="penguins", rows=10 + d) for d in (0, 30)]
    write(home / "audits" / "data.jsonl", "".join(r.model_dump_json() + "\n" for r in audits))
    alert = Alert(source="alertmanager", anomaly=AnomalyType.LATENCY, target="a:1", starts_at=None)
    with sqlite3.connect(home / "outbox.sqlite3") as db:
        db.execute(OLD_OUTBOX)
        db.execute(
            "INSERT INTO outbox (key, dedup_key, target, anomaly, status, state, alert, received_at) "
            "VALUES ('k', 'd', 'a:1', 'latency', 'firing', 'dead', ?, 1)",
            (alert.model_dump_json(),),
        )


COUNTS = {
    "incidents": 2,
    "incident notices": 1,
    "knowledge base": 1,
    "review incidents": 1,
    "registry events": 3,
    "audit records": 2,
    "outbox rows": 1,
}


def test_a_file_based_home_comes_over_whole_and_only_once(store: Store, tmp_path: Path) -> None:
    home = tmp_path / "old"
    old_home(home)
    files = {p: p.read_bytes() for p in home.rglob("*") if p.is_file()}
    first = import_home(home, store)
    assert first.found == COUNTS and first.added == COUNTS and set(COUNTS) == set(SOURCES)
    again = import_home(home, store)
    assert again.found == COUNTS and again.added == dict.fromkeys(COUNTS, 0)  # idempotent
    assert {p: p.read_bytes() for p in home.rglob("*") if p.is_file()} == files  # never changed or deleted

    # Nothing lost: every record reads back equal to its file.
    incidents = IncidentStore(store)
    assert [i.id for i in incidents.all()] == ["latency-1", "latency-2"]
    assert incidents.load("latency-1") == incident(1).model_copy(update={"resolved_alerts": [T0]})
    kb = KnowledgeBase(store, home / "kb")
    (archived,) = kb.all()
    assert archived == Incident.model_validate_json((home / "kb" / "latency-3.json").read_text())
    assert [i.id for i in kb.search(text="instance_degraded")] == ["latency-3"]  # indexed for search
    (review,) = ReviewIncidents(store).all()
    assert review == ReviewIncident.model_validate_json(
        next((home / "reviews" / "incidents").glob("*.json")).read_text()
    )
    registry = ModelRegistry(store)
    assert [e.model_dump_json() for e in registry.events("svc")] == (
        home / "models" / "svc.jsonl"
    ).read_text().split()
    assert registry.last_good("svc") is not None and registry.releases("svc")[-1].bad == "bad"
    assert [r.rows for r in AuditHistory(store).records("penguins")] == [10, 40]
    (row,) = Outbox(store=store).rows()
    assert (row.key, row.state, row.raw, row.alert is not None) == ("k", "dead", None, True)


@pytest.mark.parametrize(
    ("path", "text", "message"),
    [
        ("incidents/latency-9.json", "{not json", r"incidents/latency-9.json: not a valid Incident \("),
        (
            "kb/latency-9.json",
            '{"id": "x"}',
            r"kb/latency-9.json: not a valid Incident \(anomaly: Field required\)",
        ),
        (
            "models/svc.jsonl",
            '{"event": "release"}\n',
            r"models/svc.jsonl: line 1 is not a valid RegistryEvent \(at: ",
        ),
        ("audits/data.jsonl", "\n[]\n", r"audits/data.jsonl: line 2 is not a valid AuditRecord \("),
        ("incidents/notices/r.jsonl", '{"at": "yesterday"}\n', r"notices/r.jsonl: line 1 is not a notice"),
        (
            "outbox.sqlite3",
            "not a database",
            r"outbox.sqlite3: not a readable outbox \(file is not a database\)",
        ),
    ],
)
def test_a_file_that_cannot_be_read_stops_the_import_with_nothing_written(
    tmp_path: Path, path: str, text: str, message: str
) -> None:
    store = Store.open(str(tmp_path / "new.db"))
    home = tmp_path / "old"
    write(home / "incidents" / "latency-1.json", incident(1).model_dump_json())
    write(home / path, text)
    with pytest.raises(ConfigError, match=message) as exc:
        import_home(home, store)
    assert exc.value.hint is not None and "nothing was imported" in exc.value.hint
    assert IncidentStore(store).all() == []  # one transaction: all or nothing
    assert (home / path).read_text() == text


def test_store_import_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import typer
    from typer.testing import CliRunner

    from llmedic.cli.store import app

    root = typer.Typer()
    root.add_typer(app, name="store")  # as `llmedic store` mounts it

    old_home(tmp_path / "old")
    monkeypatch.setenv("LLMEDIC_HOME", str(tmp_path / "new"))
    monkeypatch.delenv("LLMEDIC_STORE_URL", raising=False)
    runner = CliRunner()
    first = runner.invoke(root, ["store", "import", str(tmp_path / "old"), "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["added"] == COUNTS
    second = runner.invoke(root, ["store", "import", str(tmp_path / "old")])
    assert second.exit_code == 0 and "incidents" in second.output
    assert len(IncidentStore(tmp_path / "new").all()) == 2
