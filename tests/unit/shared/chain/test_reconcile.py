"""One reconcile tick against fakes: which runs it walks, what hooks emit, failures, deadlines, overlap."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import tests.reconcile_stages as stages
from shared.chain import reconcile
from shared.chain.reconcile import Hook, TickLimits, tick
from shared.config import parse_config
from shared.deadline import Deadline
from shared.ledger import InMemoryLedger, LedgerTimeoutError, Run, RunStatus, StepStatus
from shared.notify import RecordingTransport
from shared.ports import fake_ports
from shared.ports.builds import BuildStatus
from shared.publisher import InMemoryPublisher
from shared.runtime import Runtime

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
STAGES = "tests.reconcile_stages"
BUILDS = Hook("builds", STAGES, "poll_run")
ECHO = Hook("echo", STAGES, "echo_run")
DUE = Hook("batches", STAGES, "close_due")


@pytest.fixture
def runtime() -> Runtime:
    config = parse_config(
        {"apiVersion": "mlops.dev/v1", "kind": "Pipeline", "spec": {"project": "demo-project"}},
        "unit.yaml",
        env={},
    )
    ticks = iter(NOW + timedelta(seconds=second) for second in range(10_000))
    return Runtime(
        config,
        InMemoryLedger(clock=lambda: next(ticks)),  # each run starts a second after the previous one
        InMemoryPublisher(),
        RecordingTransport(),
        ports=fake_ports(),
        clock=lambda: NOW,
    )


@pytest.fixture(autouse=True)
def _no_rendezvous() -> Iterator[None]:
    yield
    stages.rendezvous = None


def start(runtime: Runtime, *run_ids: str) -> None:
    for run_id in run_ids:
        runtime.ledger.start_run(run_id, cause={"cause": "data"})


def notifications(runtime: Runtime) -> list[str]:
    publisher = runtime.publisher
    assert isinstance(publisher, InMemoryPublisher)
    return [message.attributes["event_id"] for message in publisher.messages]


def test_only_unfinished_runs_are_walked_and_due_work_gets_the_same_now(runtime: Runtime) -> None:
    start(runtime, "data-a", "data-b", "data-c")
    runtime.ledger.finish_run("data-b", RunStatus.SUCCEEDED)

    report = tick(runtime, run_hooks=[ECHO], due_hooks=[DUE])

    assert (report.runs_found, report.runs_walked, report.more_runs) == (2, 2, False)
    walked = [item.run_id for item in report.emitted if item.stage == "echo"]
    assert walked == ["data-c", "data-a"], "newest first, the finished run never reaches a hook"
    assert report.emitted[-1].stage == "batches"
    assert report.emitted[-1].what == (f"closed at {NOW.isoformat()}",)
    assert report.http_status == 200 and report.failures == [] and report.stopped_early == ""
    body = report.to_json()
    assert body["status"] == "ok" and body["now"] == NOW.isoformat() and body["runs_walked"] == 2
    assert json.loads(json.dumps(body)) == body, "the response body is plain JSON"


def test_each_hook_call_gets_its_own_shorter_deadline(runtime: Runtime) -> None:
    start(runtime, "data-a")
    report = tick(runtime, run_hooks=[ECHO], due_hooks=[], limits=TickLimits(hook_seconds=7.0))
    assert report.emitted[0].what == ("saw data-a within 7s",)


def test_the_walk_is_bounded_and_says_when_runs_were_left(runtime: Runtime) -> None:
    start(runtime, *(f"data-{index}" for index in range(5)))

    report = tick(runtime, run_hooks=[ECHO], due_hooks=[], limits=TickLimits(max_runs=3))

    assert (report.runs_found, report.runs_walked, report.more_runs) == (3, 3, True)
    assert [item.run_id for item in report.emitted] == ["data-4", "data-3", "data-2"]
    assert report.to_json()["more_runs"] is True


def test_a_finished_build_is_learned_once_across_ticks(runtime: Runtime) -> None:
    build_id = stages.start_build(runtime, "push-acme-0123456789ab")
    start(runtime, "data-quiet")

    first = tick(runtime, run_hooks=[BUILDS], due_hooks=[])
    assert first.emitted == [], "QUEUED: nothing to emit yet"
    runtime.ports.builds.finish(build_id)  # type: ignore[attr-defined]
    second = tick(runtime, run_hooks=[BUILDS], due_hooks=[])
    third = tick(runtime, run_hooks=[BUILDS], due_hooks=[])

    assert [item.run_id for item in second.emitted] == ["push-acme-0123456789ab"]
    assert second.emitted[0].what[0].startswith(f"build {build_id} SUCCESS: notification-")
    assert third.emitted == [] and third.runs_walked == 2
    assert len(notifications(runtime)) == 1
    run = runtime.ledger.get_run("push-acme-0123456789ab")
    assert run is not None and run.step("build:finished") is not None


def test_overlapping_ticks_emit_once(runtime: Runtime) -> None:
    build_id = stages.start_build(runtime, "push-acme-0123456789ab")
    runtime.ports.builds.finish(build_id)  # type: ignore[attr-defined]
    # Both ticks read the terminal build before either runs its step: the worst overlap.
    stages.rendezvous = threading.Barrier(2)
    reports: list[reconcile.TickReport] = []
    errors: list[BaseException] = []

    def one_tick() -> None:
        try:
            reports.append(tick(runtime, run_hooks=[BUILDS], due_hooks=[]))
        except BaseException as error:  # surfaced below; a thread's exception is otherwise lost
            errors.append(error)

    threads = [threading.Thread(target=one_tick) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == [] and len(reports) == 2
    assert len(set(notifications(runtime))) == 1, "one event, whatever the overlap"
    emitted = [item for report in reports for item in report.emitted]
    assert len(emitted) == 1, "exactly one tick did the emission"
    # The other tick found the step held by the first (BUSY) or done: not a failure, nothing emitted.
    others = [report for report in reports if not report.emitted]
    assert len(others) == 1 and others[0].failures == [] and others[0].http_status == 200
    run = runtime.ledger.get_run("push-acme-0123456789ab")
    assert run is not None
    assert [step.name for step in run.steps].count("build:finished") == 1


def test_one_runs_failure_does_not_stop_the_others(runtime: Runtime) -> None:
    start(runtime, "data-a", "flaky-b", "broken-c", "data-d")
    hooks = [Hook("builds", STAGES, "fail_on_flaky"), ECHO]

    report = tick(runtime, run_hooks=hooks, due_hooks=[DUE])

    assert report.runs_walked == 4
    ok = sorted(item.what[0] for item in report.emitted if item.stage == "builds")
    assert ok == ["ok data-a", "ok data-d"]
    assert len([item for item in report.emitted if item.stage == "echo"]) == 4, "the next hook still ran"
    assert any(item.stage == "batches" for item in report.emitted), "due work still ran"
    failures = {failure.run_id: failure for failure in report.failures}
    assert set(failures) == {"flaky-b", "broken-c"}
    assert failures["flaky-b"].transient and "did not answer" in failures["flaky-b"].error
    assert not failures["broken-c"].transient
    assert report.http_status == 500, "a transient failure asks Scheduler to see it"


def test_only_permanent_failures_answer_200(runtime: Runtime) -> None:
    start(runtime, "broken-a", "data-b")
    report = tick(runtime, run_hooks=[Hook("builds", STAGES, "fail_on_flaky")], due_hooks=[])
    assert [failure.run_id for failure in report.failures] == ["broken-a"]
    assert report.http_status == 200 and report.to_json()["failures"][0]["transient"] is False


def test_missing_hooks_are_reported_and_logged_once(
    runtime: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    start(runtime, "data-a")
    absent = Hook("training", "shared.chain.no_such_stage_for_tests", "poll_run")
    no_function = Hook("windows", STAGES, "close_due_windows")
    not_callable = Hook("other", STAGES, "not_a_hook")

    first = tick(runtime, run_hooks=[absent, ECHO], due_hooks=[no_function, not_callable, DUE])
    second = tick(runtime, run_hooks=[absent, ECHO], due_hooks=[no_function, not_callable, DUE])

    for report in (first, second):
        assert report.missing_hooks == [absent.path, no_function.path, not_callable.path]
        assert report.failures == [] and report.http_status == 200
        assert [item.stage for item in report.emitted] == ["echo", "batches"], "the others still ran"
    warnings = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if "hook not there yet" in line
    ]
    assert sorted(entry["hook"] for entry in warnings) == sorted(
        [absent.path, no_function.path, not_callable.path]
    ), "each missing hook is logged once per process, not once per tick"


def test_a_stage_that_fails_to_import_is_a_failure_not_a_missing_hook(
    runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "reconcile_broken_stage.py").write_text("import a_dependency_nobody_installed\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    start(runtime, "data-a")

    report = tick(
        runtime, run_hooks=[Hook("builds", "reconcile_broken_stage", "poll_run"), ECHO], due_hooks=[]
    )

    assert report.missing_hooks == []
    assert [failure.stage for failure in report.failures] == ["builds"]
    assert "a_dependency_nobody_installed" in report.failures[0].error
    assert report.http_status == 500
    assert [item.what[0] for item in report.emitted] == ["saw data-a within 15s"]


class _UnreachableLedger(InMemoryLedger):
    def list_runs(
        self, status: RunStatus | None = None, limit: int = 50, *, timeout: float | None = None
    ) -> list[Run]:
        raise LedgerTimeoutError("Firestore did not answer in time")


def test_an_unreadable_ledger_still_lets_due_work_run(runtime: Runtime) -> None:
    runtime.ledger = _UnreachableLedger()

    report = tick(runtime, run_hooks=[ECHO], due_hooks=[DUE])

    assert [(failure.stage, failure.transient) for failure in report.failures] == [("runs", True)]
    assert [item.stage for item in report.emitted] == ["batches"]
    assert report.http_status == 500


def test_no_run_hook_means_no_listing(runtime: Runtime) -> None:
    runtime.ledger = _UnreachableLedger()
    report = tick(runtime, run_hooks=[], due_hooks=[DUE])
    assert report.failures == [] and report.runs_found == 0


# -- deadlines: a fake monotonic clock the hook below moves ------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.value = 1000.0

    def __call__(self) -> float:
        return self.value


clock = _Clock()


def slow_poll(runtime: Runtime, run: Run) -> list[str]:
    """Each run takes 10 s of the tick's clock."""
    clock.value += 10.0
    return [f"slow {run.run_id}"]


def test_the_walk_stops_before_the_deadline_and_keeps_time_for_due_work(runtime: Runtime) -> None:
    start(runtime, *(f"data-{index}" for index in range(6)))
    limits = TickLimits(budget_seconds=35.0, due_reserve_seconds=10.0, min_hook_seconds=2.0)
    deadline = Deadline(35.0, clock=clock)

    report = tick(
        runtime,
        limits=limits,
        deadline=deadline,
        run_hooks=[Hook("slow", __name__, "slow_poll")],
        due_hooks=[DUE],
    )

    # 35 s: runs at 35, 25 and 15 s left (each ≥ 10 + 2); at 5 s left the walk stops.
    assert report.runs_found == 6 and report.runs_walked == 3
    assert "deadline is near: walked 3 of 6" in report.stopped_early
    assert report.emitted[-1].stage == "batches", "the reserve kept time for the due work"
    assert report.http_status == 200, "stopping early is not a failure: the next tick goes on"
    assert report.to_json()["stopped_early"] == report.stopped_early


def test_due_work_is_skipped_when_no_time_is_left(runtime: Runtime) -> None:
    deadline = Deadline(1.0, clock=clock)
    report = tick(runtime, deadline=deadline, run_hooks=[], due_hooks=[DUE])
    assert report.emitted == []
    assert "batches not closed this tick" in report.stopped_early


def test_a_build_that_failed_is_announced_as_failed(runtime: Runtime) -> None:
    from shared.ports.builds_fake import FakeOutcome

    build_id = stages.start_build(runtime, "push-acme-0123456789ab")
    runtime.ports.builds.finish(build_id, FakeOutcome(BuildStatus.FAILURE, 0, 1))  # type: ignore[attr-defined]

    report = tick(runtime, run_hooks=[BUILDS], due_hooks=[])

    assert report.emitted[0].what[0].startswith(f"build {build_id} FAILURE")
    run = runtime.ledger.get_run("push-acme-0123456789ab")
    assert run is not None
    finished = run.step("build:finished")
    assert finished is not None and finished.status is StepStatus.SUCCEEDED
    assert finished.detail["result"] == {"build_id": build_id, "status": "FAILURE"}
