"""Log audit (keywords, templates, first occurrences against the anomaly) and the host check."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from llmedic.anomalies.logaudit import audit_log, template_of
from llmedic.hostcheck import host_report, problems

LOG = """2026-11-24T10:00:00Z INFO started worker 7 on 10.0.0.5:8000
2026-11-24T10:04:59Z WARNING slow request 3a1f9c2e-0000-4000-8000-000000000001 took 2.31s
2026-11-24T10:05:02Z ERROR request 17 failed: RuntimeError: CUDA error: an illegal memory access was encountered
2026-11-24T10:05:03Z ERROR request 18 failed: RuntimeError: CUDA error: an illegal memory access was encountered
2026-11-24T10:05:04Z ERROR request 19 failed: RuntimeError: CUDA error: an illegal memory access was encountered
Traceback (most recent call last):
  File "/srv/venv/lib/python3.11/site-packages/vllm/worker.py", line 88, in step
torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB
2026-11-24T10:06:00Z ERROR ConnectionError: Connection refused by 10.0.0.9:9000
2026-11-24T10:07:00Z FATAL worker failed to start
"""


@pytest.mark.parametrize(
    ("line", "template"),
    [
        ("2026-11-24T10:05:02Z ERROR request 17 failed", "ERROR request <n> failed"),
        ("[2026-11-24 10:05:02] conn to 10.0.0.9:9000 reset", "conn to <ip> reset"),
        ("id 3a1f9c2e-0000-4000-8000-000000000001 at 0x7ffd", "id <uuid> at <hex>"),
        ("open /srv/models/llama/config.json failed", "open <path> failed"),
    ],
)
def test_template_of(line: str, template: str) -> None:
    assert template_of(line) == template


def test_a_burst_is_one_template_and_first_occurrences_are_placed() -> None:
    audit = audit_log(LOG, anomaly_start=datetime(2026, 11, 24, 10, 5, tzinfo=UTC))
    assert audit.lines == 10
    assert audit.keyword_counts == {
        "ERROR": 4,
        "FATAL": 1,
        "OUT_OF_MEMORY": 1,
        "ConnectionError": 1,
        "CUDA error": 3,
        "Traceback": 1,
    }
    top = audit.templates[0]
    assert (top.count, top.template, top.first_line, top.relative_seconds) == (
        3,
        "ERROR request <n> failed: RuntimeError: CUDA error: an illegal memory access was encountered",
        3,
        2.0,
    )
    assert [t.count for t in audit.templates] == [3, 1, 1, 1, 1]
    assert audit.summary().startswith("10 lines: ERROR ×4, FATAL ×1, OUT_OF_MEMORY ×1")


def test_host_report_reads_this_machine(tmp_path: Path) -> None:
    report = host_report([tmp_path, tmp_path / "missing"], write_paths=[tmp_path])
    assert report["cpus"] and report["memory_total_bytes"] and report["top_processes"]
    assert report["permissions"][0] == {
        "path": str(tmp_path),
        "exists": True,
        "readable": True,
        "writable": True,
    }
    assert problems(report) == [f"{tmp_path / 'missing'} does not exist"]
