"""``python -m shared.operator runs | status`` against an in-memory ledger (the runtime in use)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.config import parse_config
from shared.ledger import InMemoryLedger, RunStatus, StepStatus
from shared.notify import RecordingTransport
from shared.operator.cli import main
from shared.publisher import InMemoryPublisher
from shared.runtime import Runtime, use

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[4]
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=10)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def at(self, seconds: float) -> None:
        self.now = T0 + timedelta(seconds=seconds)


@pytest.fixture
def ledger() -> Iterator[InMemoryLedger]:
    """Three runs: a push that trained (still running), a data run that failed, a drift run just started."""
    clock = Clock()
    store = InMemoryLedger(clock=clock)
    push = "push-acme-ml-0123456789ab"
    store.start_run(push, cause={"cause": "push", "repo": "acme/ml", "commit": "0123456789ab" * 3})
    store.record_step(push, "build:trainer", StepStatus.STARTED, {"result": {"build_id": "b-1"}})
    clock.at(36)
    store.record_step(
        push,
        "build:trainer",
        StepStatus.SUCCEEDED,
        {"key": "build/acme/ml/0123/trainer", "result": {"image": "trainer@sha256:abc", "status": "SUCCESS"}},
    )
    clock.at(40)
    store.record_step(push, "training:submitted", StepStatus.SUCCEEDED, {"result": {"job": "jobs/7"}})
    clock.at(45)
    store.record_step(push, "training:state", StepStatus.STARTED, {})

    clock.at(60)
    store.start_run(
        "data-churn-batch1", cause={"cause": "data", "dataset": "churn"}, labels={"model": "churn"}
    )
    clock.at(61)
    store.record_step(
        "data-churn-batch1", "training:state", StepStatus.FAILED, {"error": "job ended FAILED: out of memory"}
    )
    store.finish_run("data-churn-batch1", RunStatus.FAILED)

    clock.at(120)
    store.start_run("drift-churn-20261122t100200z", cause={"step": "drift:opened"})
    yield store


@pytest.fixture
def runtime(ledger: InMemoryLedger) -> Iterator[Runtime]:
    config = parse_config(
        {"apiVersion": "mlops.dev/v1", "kind": "Pipeline", "spec": {"project": "demo-project"}},
        "unit.yaml",
        env={},
    )
    test_runtime = Runtime(config, ledger, InMemoryPublisher(), RecordingTransport(), clock=lambda: NOW)
    with use(test_runtime):
        yield test_runtime


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.usefixtures("runtime")
def test_runs_lists_the_latest_one_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "runs")

    assert code == 0
    header, *lines = out.splitlines()
    assert header.split() == ["RUN", "STATUS", "CAUSE", "STARTED", "AGE", "LAST", "STEP"]
    assert [line.split()[0] for line in lines] == [
        "drift-churn-20261122t100200z",
        "data-churn-batch1",
        "push-acme-ml-0123456789ab",
    ]
    drift, data, push = (line.split() for line in lines)
    assert drift[1:] == ["RUNNING", "step", "drift:opened", "2026-11-22", "10:02:00Z", "8m00s", "-"]
    assert data[1:] == ["FAILED", "data", "2026-11-22", "10:01:00Z", "9m00s", "training:state", "FAILED"]
    assert push[1:] == ["RUNNING", "push", "2026-11-22", "10:00:00Z", "10m00s", "training:state", "STARTED"]
    # One column start for every line: the table lines up whatever the id lengths.
    assert len({line.index("RUNNING") for line in (lines[0], lines[2])}) == 1


@pytest.mark.usefixtures("runtime")
def test_runs_filters_limits_and_speaks_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "runs", "--status", "running", "--limit", "1", "--json")

    assert code == 0
    (only,) = json.loads(out)
    assert only["run_id"] == "drift-churn-20261122t100200z"
    assert only["status"] == "RUNNING" and only["age_seconds"] == 480.0 and only["last_step"] is None

    _, out, _ = run_cli(capsys, "runs", "--json")
    push = json.loads(out)[-1]
    assert push["cause"] == "push" and push["cause_detail"]["repo"] == "acme/ml"
    assert push["last_step"] == {"name": "training:state", "status": "STARTED"} and push["step_count"] == 3
    failed = json.loads(out)[1]
    assert failed["duration_seconds"] == 1.0 and failed["labels"] == {"model": "churn"}


@pytest.mark.usefixtures("runtime")
def test_status_shows_the_chain_with_timings_and_outcomes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "status", "push-acme-ml-0123456789ab")

    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["run", "push-acme-ml-0123456789ab"]
    assert lines[1] == "status  RUNNING (started 2026-11-22 10:00:00Z, 10m00s ago)"
    assert lines[2].startswith("cause   push  {")
    table = lines[lines.index("") + 1 :]
    assert table[0].split() == ["START", "OFFSET", "WAITED", "STEP", "STATUS", "END", "TOOK", "DETAIL"]
    build, submitted, state = (line.split() for line in table[1:])
    assert build[:7] == ["10:00:00", "+0.0s", "0.0s", "build:trainer", "SUCCEEDED", "10:00:36", "36.0s"]
    assert "image=trainer@sha256:abc" in build and "status=SUCCESS" in build
    assert not any("build/acme" in cell for cell in build), "the step key is in --json, not the summary"
    # WAITED: since the step before it ended (the build ended at +36 s, the submission at +40 s).
    assert submitted[:7] == [
        "10:00:40",
        "+40.0s",
        "4.0s",
        "training:submitted",
        "SUCCEEDED",
        "10:00:40",
        "0.0s",
    ]
    assert state[:7] == ["10:00:45", "+45.0s", "5.0s", "training:state", "STARTED", "-", "9m15s…"]


@pytest.mark.usefixtures("runtime")
def test_status_of_a_failed_run_shows_its_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "status", "data-churn-batch1")
    assert code == 0
    assert "status  FAILED in 1.0s (started 2026-11-22 10:01:00Z, finished 2026-11-22 10:01:01Z)" in out
    assert "labels  model=churn" in out
    assert "error: job ended FAILED: out of memory" in out


@pytest.mark.usefixtures("runtime")
def test_status_json_has_every_step_and_detail(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "status", "push-acme-ml-0123456789ab", "--json")

    assert code == 0
    body = json.loads(out)
    assert body["run_id"] == "push-acme-ml-0123456789ab" and body["finished_at"] is None
    steps = {step["name"]: step for step in body["steps"]}
    assert list(steps) == ["build:trainer", "training:submitted", "training:state"]
    build = steps["build:trainer"]
    assert build["duration_seconds"] == 36.0 and build["offset_seconds"] == 0.0
    assert steps["training:submitted"]["waited_seconds"] == 4.0
    assert build["detail"]["key"] == "build/acme/ml/0123/trainer"
    running = steps["training:state"]
    assert running["finished_at"] is None and running["running_seconds"] == 555.0


@pytest.mark.usefixtures("runtime")
def test_an_unknown_run_id_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "status", "push-acme")
    assert code == 2 and out == ""
    assert err.strip() == "error: no run 'push-acme' in the ledger; did you mean: push-acme-ml-0123456789ab"

    code, _, err = run_cli(capsys, "status", "nothing-like-it")
    assert code == 2
    assert "no run 'nothing-like-it' in the ledger" in err and "python -m shared.operator runs" in err


@pytest.mark.usefixtures("runtime")
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["runs", "--limit", "0"], ["runs", "--status", "LOST"], ["status"], ["approve"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2, argv
    assert "must be between 1 and 1000" in capsys.readouterr().err


def test_no_runs_yet(capsys: pytest.CaptureFixture[str]) -> None:
    config = parse_config(
        {"apiVersion": "mlops.dev/v1", "kind": "Pipeline", "spec": {"project": "p"}}, "unit.yaml", env={}
    )
    with use(Runtime(config, InMemoryLedger(), InMemoryPublisher(), RecordingTransport(), clock=lambda: NOW)):
        code, out, _ = run_cli(capsys, "runs")
    assert (code, out) == (0, "no runs\n")


def test_a_broken_config_is_reported_as_such(tmp_path: Path) -> None:
    broken = tmp_path / "pipeline.yaml"
    broken.write_text("apiVersion: mlops.dev/v1\nkind: Pipeline\nspec: {topicPrefix: 7}\n")
    result = subprocess.run(
        [sys.executable, "-m", "shared.operator", "runs"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PIPELINE_CONFIG": str(broken)},
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and str(broken) in result.stderr
