"""Every run ends its incident: whatever happens inside a flow run (any exception, a task timeout,
a killed process, a cancellation), or to it afterwards (deleted from the server), the incident ends
escalated with the error on its record, archived with its report, and the team notified.

The reconciler's decisions are table-tested against a fake ``read_run``; the same decisions, the
sweeper and the CLI run against the session's real Prefect server; the flows' own paths run
through the harness (a step timeout, a step raising a foreign exception, an archive that fails) and
through a real ``serve()`` runner whose flow-run process is SIGKILLed or cancelled.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun, State, StateType
from prefect.settings import PREFECT_API_URL
from prefect.states import Cancelling, Crashed, Failed, Running, Suspended
from typer.testing import CliRunner

from llmedic.alerts import Alert
from llmedic.anomalies.base import Confirmation
from llmedic.catalog import AnomalyType, Category, Team
from llmedic.cli import app
from llmedic.config import Settings
from llmedic.errors import FlowRunNotFound, OrchestrationError, RunEnded, StepFailed
from llmedic.incident import Incident, IncidentRequest, Outcome, Step, StepResult, utcnow
from llmedic.orchestration import prefect_env, read_run, runner_children, stop_process
from llmedic.reconcile import close_escalated, reconcile
from llmedic.store.incidents import IncidentStore
from llmedic.store.knowledge import KnowledgeBase
from tests.conftest import Fleet
from tests.flowrun import run_flow

ROOT = Path(__file__).resolve().parents[1]
FAST: dict[str, Any] = {
    "settings": {"slo_p99_seconds": 0.5, "confirm_probes": 4, "reproduce_probes": 4, "verify_probes": 8}
}


def open_incident(home: Path, flow_run_id: str, name: str = "latency-1") -> Incident:
    inc = Incident(
        id=name,
        anomaly=AnomalyType.LATENCY,
        category=Category.SYSTEM,
        team=Team.OPS,
        title="p99 above SLO",
        target="sandbox-1",
        alert=Alert(source="manual", anomaly=AnomalyType.LATENCY, target="sandbox-1", alertname="manual"),
        flow_run_id=flow_run_id,
        opened_at=utcnow(),
    )
    IncidentStore(home).save(inc)
    return inc


def assert_closed_by_ending(inc: Incident, code: str, mention: str, closed_by: str | None = None) -> None:
    """Escalated, the error on the record, the report archived, the team told — exactly once."""
    assert (inc.outcome, inc.escalated) == (Outcome.ESCALATED, True)
    errors = [d for d in inc.decisions if d.topic == "error"]
    assert [d.choice for d in errors] == [code]
    assert inc.escalation_reason.startswith(f"{code}: ") and mention in inc.escalation_reason
    if closed_by is not None:
        assert f"(closed by {closed_by})" in errors[0].reason
    assert inc.report_path is not None and Path(inc.report_path).is_file()
    assert mention in Path(inc.report_path).read_text()
    assert [n.kind for n in inc.notifications if n.kind == "escalated"] == ["escalated"]
    assert inc.closed_at is not None


# --- the reconciler's decisions, with a fake read_run -------------------------------------------


def fake_read(state: State[Any] | None, error: Exception | None = None) -> Callable[[str], FlowRun]:
    def read(run_id: str) -> FlowRun:
        if error is not None:
            raise error
        return FlowRun(id=uuid.UUID(run_id), flow_id=uuid.uuid4(), name="r", state=state)

    return read


@pytest.mark.parametrize(
    ("state", "error", "closes", "run_state"),
    [
        (State(type=StateType.COMPLETED, name="Completed"), None, True, "Completed"),
        (Failed(message="Flow run encountered an exception"), None, True, "Failed"),
        (Crashed(message="Process exited with status code: -9"), None, True, "Crashed"),
        (State(type=StateType.CANCELLED, name="Cancelled"), None, True, "Cancelled"),
        (None, FlowRunNotFound("no flow run"), True, "gone"),
        (State(type=StateType.SCHEDULED, name="Scheduled"), None, False, None),
        (State(type=StateType.PENDING, name="Pending"), None, False, None),
        (Running(), None, False, None),
        (State(type=StateType.PAUSED, name="Paused"), None, False, None),
        (Suspended(), None, False, None),
        (Cancelling(), None, False, None),
    ],
    ids=[
        "completed",
        "failed",
        "crashed",
        "cancelled",
        "gone",
        "scheduled",
        "pending",
        "running",
        "paused",
        "suspended",
        "cancelling",
    ],
)
def test_reconciler_closes_only_ended_runs(
    clean_environ: Path,
    state: State[Any] | None,
    error: Exception | None,
    closes: bool,
    run_state: str | None,
) -> None:
    run_id = str(uuid.uuid4())
    open_incident(clean_environ, run_id)
    settings = Settings(home=clean_environ)
    done = reconcile(settings, read=fake_read(state, error), healthy=lambda: True)
    inc = IncidentStore(clean_environ).load("latency-1")
    assert done.checked == 1 and done.unreachable is None
    if not closes:
        assert done.closed == [] and inc.outcome == Outcome.OPEN and not inc.escalated
        assert not KnowledgeBase(clean_environ).report_path(inc.id).exists()
        return
    assert [(c.incident_id, c.flow_run_id, c.run_state) for c in done.closed] == [
        ("latency-1", run_id, run_state)
    ]
    assert_closed_by_ending(inc, RunEnded.code, str(run_state), "the reconciler")
    # Idempotent: a second pass (or the hook after the reconciler) changes nothing.
    before = IncidentStore(clean_environ).load("latency-1")
    assert reconcile(settings, read=fake_read(state, error), healthy=lambda: True).closed == []
    assert close_escalated("latency-1", code="x", reason="y", closed_by="z", settings=settings) is None
    assert IncidentStore(clean_environ).load("latency-1") == before


def test_reconciler_closes_nothing_when_the_api_cannot_be_asked(clean_environ: Path) -> None:
    open_incident(clean_environ, str(uuid.uuid4()), "latency-1")
    open_incident(clean_environ, str(uuid.uuid4()), "latency-2")
    done = reconcile(
        Settings(home=clean_environ), read=fake_read(None, OrchestrationError("cannot reach the Prefect API"))
    )
    assert (done.checked, done.closed, done.unreachable) == (1, [], "cannot reach the Prefect API")
    assert [i.outcome for i in IncidentStore(clean_environ).all()] == [Outcome.OPEN] * 2


@pytest.mark.fault(
    tried="PREFECT_API_URL pointing at something that answers 404 for every run (a wrong path, a proxy)",
    survives="no incident is closed as 'gone'; the pass stops and says why",
)
def test_a_404_from_something_that_is_not_prefect_closes_nothing(clean_environ: Path) -> None:
    open_incident(clean_environ, str(uuid.uuid4()), "latency-1")
    done = reconcile(
        Settings(home=clean_environ),
        read=fake_read(None, FlowRunNotFound("no flow run")),
        healthy=lambda: False,
    )
    assert (
        done.closed == [] and done.unreachable is not None and "/health does not answer" in done.unreachable
    )
    assert [i.outcome for i in IncidentStore(clean_environ).all()] == [Outcome.OPEN]


def test_reconciler_skips_runs_outside_prefect(clean_environ: Path) -> None:
    open_incident(clean_environ, "local")
    done = reconcile(Settings(home=clean_environ), read=fake_read(None, AssertionError("not asked")))
    assert (done.checked, done.closed) == (0, [])


@pytest.mark.fault(
    tried="the knowledge base refuses the archive while an ended run's incident is closed",
    survives="the incident is still saved escalated, the failure on its record",
)
def test_closing_survives_a_failing_archive(clean_environ: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: KnowledgeBase, incident: Incident) -> Incident:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(KnowledgeBase, "archive", refuse)
    open_incident(clean_environ, str(uuid.uuid4()))
    closed = close_escalated(
        "latency-1",
        code=RunEnded.code,
        reason="flow run ended Crashed",
        closed_by="a test",
        settings=Settings(home=clean_environ),
    )
    inc = IncidentStore(clean_environ).load("latency-1")
    assert closed is not None and (inc.outcome, inc.escalated) == (Outcome.ESCALATED, True)
    assert [(d.topic, d.choice) for d in inc.decisions] == [("error", "run-ended"), ("archive", "failed")]
    assert "No space left on device" in inc.decisions[1].reason


# --- the reconciler, the sweeper and the CLI against the real Prefect server --------------------


@flow(name="lifecycle-probe")
def probe_flow() -> None:
    """Never run: only a flow to create runs of on the server."""


def server_run(state: State[Any]) -> str:
    with get_client(sync_client=True) as client:
        run = client.create_flow_run(probe_flow, state=state)
    return str(run.id)


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.fault(
    tried="runs that ended (crashed) or vanished (deleted) on the Prefect server, their incidents open",
    survives="the reconciler closes exactly those, escalated; a running and a suspended run stay open",
)
def test_reconciler_against_the_server(clean_environ: Path) -> None:
    crashed = server_run(Crashed(message="Process exited with status code: -9"))
    deleted = server_run(Running())
    running = server_run(Running())
    suspended = server_run(Suspended())
    with get_client(sync_client=True) as client:
        client.delete_flow_run(uuid.UUID(deleted))
    for name, run_id in (
        ("a-crashed", crashed),
        ("b-deleted", deleted),
        ("c-running", running),
        ("d-gate", suspended),
    ):
        open_incident(clean_environ, run_id, name)
    res = CliRunner().invoke(app, ["incidents", "reconcile"])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines() == [
        f"closed a-crashed escalated: flow run {crashed} is Crashed",
        f"closed b-deleted escalated: flow run {deleted} is gone",
    ]
    by_id = {i.id: i for i in IncidentStore(clean_environ).all()}
    assert_closed_by_ending(by_id["a-crashed"], RunEnded.code, "Crashed: Process exited", "the reconciler")
    assert_closed_by_ending(by_id["b-deleted"], RunEnded.code, "gone", "the reconciler")
    assert (by_id["c-running"].outcome, by_id["d-gate"].outcome) == (Outcome.OPEN, Outcome.OPEN)


def test_reconcile_cli_fails_when_prefect_is_unreachable(
    clean_environ: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.settings import temporary_settings

    from llmedic_sandbox.fleet import free_port

    open_incident(clean_environ, str(uuid.uuid4()))
    with temporary_settings(updates={PREFECT_API_URL: f"http://127.0.0.1:{free_port()}/api"}):
        res = CliRunner().invoke(app, ["incidents", "reconcile"])
    assert isinstance(res.exception, OrchestrationError) and not isinstance(res.exception, FlowRunNotFound)
    assert "cannot reach the Prefect API" in res.exception.message
    assert IncidentStore(clean_environ).load("latency-1").outcome == Outcome.OPEN


@pytest.mark.usefixtures("prefect_harness")
def test_the_sweeper_of_llmedic_up_reconciles(clean_environ: Path) -> None:
    from llmedic.stack import Stack

    open_incident(clean_environ, server_run(Crashed(message="killed")))
    stack = Stack(Settings(home=clean_environ, approval_sweep_seconds=0.2), api_url=PREFECT_API_URL.value())
    sweeper = threading.Thread(target=stack.sweep_forever, daemon=True)
    sweeper.start()
    try:
        inc = wait_for_closed(IncidentStore(clean_environ), "latency-1", timeout=30)
    finally:
        stack.stop_event.set()
        sweeper.join(10)
    assert_closed_by_ending(inc, RunEnded.code, "Crashed: killed", "the reconciler")


def wait_for_closed(store: IncidentStore, incident_id: str, timeout: float) -> Incident:
    """The incident once closed *and* archived: the closing record is saved first (so nothing can
    leave it open), the report a moment later (or the archive's failure on the record)."""
    deadline = time.monotonic() + timeout
    while True:
        inc = store.load(incident_id)
        archived = inc.report_path is not None or any(d.topic == "archive" for d in inc.decisions)
        if inc.outcome != Outcome.OPEN and archived:
            return inc
        assert time.monotonic() < deadline, f"{incident_id} still open after {timeout:g}s"
        time.sleep(0.2)


# --- the flow's own paths, under the harness ------------------------------------------------------


def latency_request(**overrides: Any) -> IncidentRequest:
    alert = Alert(
        source="manual",
        anomaly=AnomalyType.LATENCY,
        alertname="VLLMHighP99Latency",
        target="sandbox-1",
        starts_at=utcnow(),
    )
    return IncidentRequest(alert=alert, overrides={**FAST, **overrides})


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.fault(
    tried="steps.confirm.timeout_seconds: 1 on a slow instance (Prefect raises TaskRunTimeoutError out of the step)",
    survives="the incident ends escalated (step-failed), archived, the team notified; the run ends Failed",
)
def test_a_step_timeout_ends_the_incident(sandbox: Fleet) -> None:
    from flows.latency import latency

    sandbox.admin("sandbox-1", "faults", {"kind": "slow", "delay_seconds": 1.5})
    state, inc = run_flow(latency, latency_request(steps={"confirm": {"timeout_seconds": 1, "retries": 0}}))
    assert state.is_failed()
    assert_closed_by_ending(inc, StepFailed.code, "step confirm raised TaskRunTimeoutError")
    assert [s.step for s in inc.timeline] == [Step.DETECT, Step.ARCHIVE]


def confirm_raises(ctx: Any) -> Confirmation:
    raise KeyError("p99_seconds")


def false_positive(ctx: Any) -> Confirmation:
    now = utcnow()
    return Confirmation(
        step=Step.CONFIRM, started_at=now, finished_at=now, summary="not reproduced", confirmed=False
    )


def archive_refuses(ctx: Any, incident: Incident) -> StepResult:
    raise OSError(30, "Read-only file system")


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize(
    ("confirm", "archive", "outcome", "mention"),
    [
        (confirm_raises, None, Outcome.ESCALATED, "step confirm raised KeyError: 'p99_seconds'"),
        (
            false_positive,
            archive_refuses,
            Outcome.FALSE_POSITIVE,
            "OSError: [Errno 30] Read-only file system",
        ),
    ],
    ids=["step-raises-keyerror", "archive-raises-oserror"],
)
@pytest.mark.fault(
    tried="a step raising a non-llmedic exception; the archive step failing while the incident closes",
    survives="the incident is saved escalated with the exception's type and message, and archived",
)
def test_foreign_exceptions_end_the_incident(
    sandbox: Fleet,
    monkeypatch: pytest.MonkeyPatch,
    confirm: Callable[..., Confirmation],
    archive: Callable[..., StepResult] | None,
    outcome: Outcome,
    mention: str,
) -> None:
    import tasks.respond
    from tasks.finalize import end_incident
    from tasks.respond import respond, to_state
    from tasks.runtime import step_task

    if archive is not None:
        monkeypatch.setattr(
            tasks.respond, "archive_incident", step_task(Step.ARCHIVE, name="archive-refuses")(archive)
        )
    monkeypatch.setattr(
        tasks.respond, "confirm", step_task(Step.CONFIRM, name=f"confirm-{confirm.__name__}")(confirm)
    )

    @flow(name="lifecycle-latency", on_failure=[end_incident])
    def latency_variant(request: IncidentRequest) -> State[Any]:
        return to_state(respond(AnomalyType.LATENCY, request))

    state, inc = run_flow(latency_variant, latency_request())
    assert state.is_failed() and (inc.outcome, inc.escalated) == (outcome, True)
    errors = [d for d in inc.decisions if d.topic == "error"]
    assert [d.choice for d in errors] == [StepFailed.code] and mention in errors[0].reason
    assert mention in inc.escalation_reason
    assert inc.report_path is not None and mention in Path(inc.report_path).read_text()
    # The team hears of the escalation; a false positive whose archive failed was first closed.
    kinds = [n.kind for n in inc.notifications]
    assert kinds == (["escalated"] if outcome == Outcome.ESCALATED else ["closed", "escalated"])


# --- a real serve() runner: a killed flow-run process, a cancelled run ---------------------------


class Runner:
    """Every deployment served by a real runner (``python -m flows``), with its own state directory."""

    def __init__(self, home: Path, config: Path) -> None:
        self.home = home
        self.store = IncidentStore(home)
        env = prefect_env(home, PREFECT_API_URL.value(), poll_seconds=1)
        env["LLMEDIC_CONFIG"] = str(config)
        log = open(home / "runner.log", "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flows"],  # what `llmedic up` runs
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_run(self, request: IncidentRequest) -> str:
        from prefect.deployments import run_deployment

        deadline = time.monotonic() + 60
        while True:
            try:
                run = run_deployment(
                    "llmedic-latency/default",
                    parameters={"request": request.model_dump(mode="json")},
                    timeout=0,
                    as_subflow=False,
                )
                return str(run.id)  # type: ignore[union-attr]
            except Exception:  # the deployment is not registered yet
                assert self.proc.poll() is None and time.monotonic() < deadline, self.log()
                time.sleep(0.5)

    def working(self, run_id: str, timeout: float = 60) -> Incident:
        """Wait until the run's process works on its incident (confirm under way)."""
        deadline = time.monotonic() + timeout
        while True:
            inc = self.store.find_by_run(run_id)
            if inc is not None and runner_children(self.proc.pid):
                return inc
            assert time.monotonic() < deadline, self.log()
            time.sleep(0.2)

    def log(self) -> str:
        return (self.home / "runner.log").read_text(errors="replace")[-4000:]


@pytest.fixture(scope="module")
def runner(prefect_harness: None, fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runner]:
    r = Runner(tmp_path_factory.mktemp("runner-home"), fleet.config)
    yield r
    stop_process(r.proc, timeout=20)


def wait_state(run_id: str, types: set[StateType], timeout: float) -> FlowRun:
    deadline = time.monotonic() + timeout
    while True:
        run = read_run(run_id)
        if run.state is not None and run.state.type in types:
            return run
        assert time.monotonic() < deadline, f"run {run_id} is {run.state.name if run.state else None}"
        time.sleep(0.3)


@pytest.mark.fault(
    tried="SIGKILL of the flow-run process while it works (OOM killer, kill -9)",
    survives="the runner marks the run Crashed and its on_crashed hook closes the incident escalated",
)
def test_a_killed_flow_run_process_ends_its_incident(runner: Runner, sandbox: Fleet) -> None:
    sandbox.admin("sandbox-1", "faults", {"kind": "slow", "delay_seconds": 3})
    run_id = runner.start_run(latency_request(settings={**FAST["settings"], "confirm_probes": 8}))
    inc = runner.working(run_id)
    for pid in runner_children(runner.proc.pid):
        os.kill(pid, signal.SIGKILL)
    crashed = wait_state(run_id, {StateType.CRASHED}, timeout=30)
    ended = time.monotonic()
    closed = wait_for_closed(runner.store, inc.id, timeout=60)
    assert time.monotonic() - ended < 60
    assert crashed.state is not None and crashed.state.name == "Crashed"
    assert_closed_by_ending(closed, RunEnded.code, "Crashed", "the flow's on_crashed hook")


@pytest.mark.fault(
    tried="a run cancelled through the Prefect API (the UI's Cancel) while it works",
    survives="the runner's on_cancellation hook closes the incident escalated",
)
def test_a_cancelled_run_ends_its_incident(runner: Runner, sandbox: Fleet) -> None:
    sandbox.admin("sandbox-1", "faults", {"kind": "slow", "delay_seconds": 3})
    run_id = runner.start_run(latency_request(settings={**FAST["settings"], "confirm_probes": 8}))
    inc = runner.working(run_id)
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(uuid.UUID(run_id), Cancelling(message="cancelled by a test"))
    wait_state(run_id, {StateType.CANCELLED}, timeout=60)
    closed = wait_for_closed(runner.store, inc.id, timeout=60)
    assert_closed_by_ending(closed, RunEnded.code, "Cancelling", "the flow's on_cancellation hook")


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.fault(
    tried="an alert whose incident cannot be opened (a target the environment file does not know)",
    survives="an incident is still recorded, closed escalated with the reason, archived and notified",
)
def test_an_incident_that_cannot_be_opened_is_still_recorded(sandbox: Fleet) -> None:
    from flows.latency import latency

    req = latency_request()
    req = req.model_copy(update={"alert": req.alert.model_copy(update={"target": "nowhere-9"})})  # type: ignore[union-attr]
    state, inc = run_flow(latency, req)
    assert state.is_failed()
    assert (inc.outcome, inc.escalated, inc.target) == (Outcome.ESCALATED, True, "nowhere-9")
    assert inc.escalation_reason.startswith(
        "config-invalid: the incident could not be opened: target 'nowhere-9'"
    )
    assert inc.report_path and Path(inc.report_path).exists()
    assert [n.kind for n in inc.notifications] == ["escalated"]


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.fault(
    tried="a Failed run retried from the Prefect UI after its incident was closed",
    survives="the closed incident is returned untouched; no step, gate or fix runs again",
)
def test_a_retried_run_does_not_act_on_a_closed_incident(sandbox: Fleet) -> None:
    from prefect.context import FlowRunContext

    from tasks.respond import respond

    store = IncidentStore(Path(os.environ["LLMEDIC_HOME"]))

    @flow
    def retried() -> Any:
        # What a retry finds: an incident this very flow run already closed.
        run = FlowRunContext.get()
        assert run is not None and run.flow_run is not None
        open_incident(Path(os.environ["LLMEDIC_HOME"]), str(run.flow_run.id))
        closed = store.load("latency-1")
        closed.close(Outcome.ESCALATED)
        store.save(closed)
        return respond(AnomalyType.LATENCY, latency_request())

    before = sandbox.state("sandbox-1")
    summary = retried()
    assert (summary.incident_id, summary.outcome) == ("latency-1", "escalated")
    assert [i.id for i in store.all()] == ["latency-1"]
    assert store.load("latency-1").timeline == []  # no step ran again
    assert sandbox.state("sandbox-1")["restarts"] == before["restarts"]
