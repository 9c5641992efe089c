"""`llmedic demo` exactly as `make demo` runs it (in a temporary home)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
