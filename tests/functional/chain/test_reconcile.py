"""``reconcile`` in-process through functions-framework: a POST is one tick, answered with its JSON report."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import functions_framework
import pytest

import tests.reconcile_stages as stages
from shared.chain import reconcile
from shared.chain.reconcile import Hook
from shared.config import parse_config
from shared.ledger import InMemoryLedger, RunStatus
from shared.notify import RecordingTransport
from shared.ports import fake_ports
from shared.publisher import InMemoryPublisher
from shared.runtime import Runtime, use

pytestmark = pytest.mark.functional

MAIN = str(Path(__file__).resolve().parents[3] / "main.py")
NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
STAGES = "tests.reconcile_stages"


@pytest.fixture
def runtime() -> Iterator[Runtime]:
    config = parse_config(
        {"apiVersion": "mlops.dev/v1", "kind": "Pipeline", "spec": {"project": "demo-project"}},
        "functional.yaml",
        env={},
    )
    test_runtime = Runtime(
        config,
        InMemoryLedger(),
        InMemoryPublisher(),
        RecordingTransport(),
        ports=fake_ports(),
        clock=lambda: NOW,
    )
    with use(test_runtime):
        yield test_runtime


@pytest.fixture
def stage_hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test stages in place of the chain's (which land separately and have their own tests)."""
    monkeypatch.setattr(
        reconcile,
        "RUN_HOOKS",
        (Hook("builds", STAGES, "poll_run"), Hook("training", STAGES, "fail_on_flaky")),
    )
    monkeypatch.setattr(reconcile, "DUE_HOOKS", (Hook("batches", STAGES, "close_due"),))


@pytest.fixture
def client() -> Any:
    return functions_framework.create_app("reconcile", MAIN, "http").test_client()


def published(runtime: Runtime) -> list[str]:
    publisher = runtime.publisher
    assert isinstance(publisher, InMemoryPublisher)
    return [message.attributes["event_id"] for message in publisher.messages]


@pytest.mark.usefixtures("stage_hooks")
def test_a_tick_emits_what_is_missing_once(runtime: Runtime, client: Any) -> None:
    build_id = stages.start_build(runtime, "push-acme-0123456789ab")
    runtime.ports.builds.finish(build_id)  # type: ignore[attr-defined]
    runtime.ledger.start_run("data-churn-old", cause={"cause": "data"})
    runtime.ledger.finish_run("data-churn-old", RunStatus.SUCCEEDED)

    first = client.post("/")
    second = client.post("/")

    assert first.status_code == 200 and first.content_type == "application/json"
    body = first.get_json()
    assert body["status"] == "ok" and body["runs_walked"] == 1 and body["now"] == NOW.isoformat()
    assert body["failures"] == [] and body["missing_hooks"] == [] and body["stopped_early"] is None
    by_stage = {item["stage"]: item for item in body["emitted"]}
    assert by_stage["builds"]["run_id"] == "push-acme-0123456789ab"
    assert by_stage["builds"]["emitted"][0].startswith(f"build {build_id} SUCCESS")
    assert by_stage["batches"]["emitted"] == [f"closed at {NOW.isoformat()}"]
    assert isinstance(body["duration_seconds"], float) and body["duration_seconds"] >= 0
    assert [item["stage"] for item in second.get_json()["emitted"]] == ["training", "batches"]
    assert len(published(runtime)) == 1, "the second tick found the build already learned"


@pytest.mark.usefixtures("stage_hooks")
def test_overlapping_requests_emit_once(runtime: Runtime, client: Any) -> None:
    build_id = stages.start_build(runtime, "push-acme-0123456789ab")
    runtime.ports.builds.finish(build_id)  # type: ignore[attr-defined]
    stages.rendezvous = threading.Barrier(2)
    statuses: list[int] = []
    try:
        threads = [
            threading.Thread(target=lambda: statuses.append(client.post("/").status_code)) for _ in "ab"
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        stages.rendezvous = None
    assert statuses == [200, 200]
    assert len(set(published(runtime))) == 1


@pytest.mark.usefixtures("stage_hooks")
def test_a_transient_failure_answers_500_after_the_rest_is_done(runtime: Runtime, client: Any) -> None:
    runtime.ledger.start_run("flaky-run", cause={"cause": "drift"})
    runtime.ledger.start_run("data-fine", cause={"cause": "data"})

    response = client.post("/")

    assert response.status_code == 500
    body = response.get_json()
    assert body["status"] == "retry" and body["runs_walked"] == 2
    assert [(f["stage"], f["run_id"], f["transient"]) for f in body["failures"]] == [
        ("training", "flaky-run", True)
    ]
    emitted = {(item["stage"], item["run_id"]) for item in body["emitted"]}
    assert ("training", "data-fine") in emitted and ("batches", "") in emitted


def test_only_post_ticks(runtime: Runtime, client: Any) -> None:
    response = client.get("/")
    assert response.status_code == 405 and response.headers["Allow"] == "POST"
    assert runtime.ledger.list_runs() == []


def test_the_chain_stages_as_they_are_today_tick_without_error(runtime: Runtime, client: Any) -> None:
    """With the real hooks (each present or not yet): an empty ledger gives a clean tick."""
    response = client.post("/")
    body = response.get_json()
    assert response.status_code == 200, body
    expected = {hook.path for hook in (*reconcile.RUN_HOOKS, *reconcile.DUE_HOOKS)}
    assert set(body["missing_hooks"]) <= expected
    assert body["failures"] == [] and body["runs_walked"] == 0
