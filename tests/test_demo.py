"""`llmedic demo` exactly as `make demo` runs it (in a temporary home): sandbox → Prometheus (the
shipped rules) → Alertmanager → receiver → Prefect → approval → fix → verified and archived.

It is also the end-to-end test of the monitoring path: several rules fire about the slow instance,
Alertmanager notifies and repeats, and still exactly one flow run starts."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmedic.incident import Outcome
from llmedic.monitoring import binaries
from llmedic.receiver.outbox import Outbox
from llmedic.store.incidents import IncidentStore

pytestmark = pytest.mark.e2e


def test_demo_resolves_the_incident(clean_environ: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMEDIC_", "PREFECT_"))}
    env["LLMEDIC_HOME"] = str(clean_environ)
    env["COLUMNS"] = "200"
    result = subprocess.run(
        [sys.executable, "-m", "llmedic", "demo", "--timeout", "280"],
        env=env,
        capture_output=True,
        text=True,
        timeout=330,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (
        "resolved: latency incident confirmed, fixed after approval, verified and archived." in result.stdout
    )
    assert "approved by demo" in result.stdout
    reports = list((clean_environ / "kb").glob("latency-*.md"))
    assert len(reports) == 1 and "## Post-mortem" in reports[0].read_text()
    (incident,) = IncidentStore(clean_environ).all()
    assert (incident.outcome, incident.target) == (Outcome.RESOLVED, "sandbox-1")
    if binaries() is None:
        if os.environ.get("CI"):
            pytest.fail("prometheus / prometheus-alertmanager missing in CI (make tools installs them)")
        return
    assert "alert path: Prometheus (shipped rules) → Alertmanager → receiver → Prefect" in result.stdout
    rows = Outbox(clean_environ / "llmedic.db").rows()
    (started,) = [r for r in rows if r.state == "started"]
    assert (started.anomaly, started.alert.source, started.flow_run_id) == (
        "latency",
        "alertmanager",
        incident.flow_run_id,
    )
    assert started.alert.labels["alertname"] in ("VLLMHighP99Latency", "VLLMHighTTFT")
    assert {r.state for r in rows} <= {"started", "duplicate", "attached"}
