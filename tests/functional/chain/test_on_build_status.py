"""``on_build_status`` in-process: a push starts a fake build, its ``cloud-builds`` messages are delivered."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.chain.builds import POINTERS
from shared.ledger import RunStatus, StepStatus
from shared.ports.builds import Build, BuildStatus
from shared.ports.builds_fake import FakeOutcome
from shared.runtime import Runtime
from tests.functional.chain.push_support import (
    COMMIT,
    REPO,
    RUN_ID,
    SECRET,
    SERVER_REPOSITORY,
    TRAINER_REPOSITORY,
    build_delivery,
    build_resource,
    client,
    distinct,
    fake_runtime,
    fakes,
    github_headers,
    published,
    push_to_main,
)
from tests.unit.shared.ingest.payloads import sample_paths

pytestmark = pytest.mark.functional


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", SECRET)
    with fake_runtime() as test_runtime:
        yield test_runtime


@pytest.fixture
def statuses() -> Any:
    return client("on_build_status")


def pushed(runtime: Runtime, *paths: str) -> dict[str, Build]:
    """Send a signed push touching ``paths``; the builds it started, by image name."""
    body = json.dumps(push_to_main(*paths)).encode()
    response = client("on_git_push").post("/", data=body, headers=github_headers(body))
    assert response.status_code == 202, response.get_json()
    builds = fakes(runtime).builds.find_by_tags([f"run-{RUN_ID}"])
    return {build.tags[-1].removeprefix("image-"): build for build in builds}


def deliver(statuses: Any, build: Build, message_id: str = "cb-1", base: dict[str, Any] | None = None) -> Any:
    return statuses.post("/", json=build_delivery(build_resource(build, base), message_id))


def run_of(runtime: Runtime) -> Any:
    run = runtime.ledger.get_run(RUN_ID)
    assert run is not None
    return run


def test_a_built_trainer_requests_training_once_even_when_delivered_twice(
    runtime: Runtime, statuses: Any
) -> None:
    build = fakes(runtime).builds.finish(pushed(runtime, "trainer/train.py")["trainer"].id)
    assert build.status is BuildStatus.SUCCESS

    answers = [deliver(statuses, build, message_id) for message_id in ("cb-1", "cb-2")]

    assert [answer.status_code for answer in answers] == [200, 200]
    [request] = distinct(published(runtime, "training.requested")).values()
    assert request.topic_id == "mlops-training-requests"
    assert request.attributes["run_id"] == RUN_ID
    data = request.json()["data"]
    digest = build.digest_of(f"{TRAINER_REPOSITORY}:{COMMIT}")
    assert digest is not None
    assert data["model"] == "churn" and data["cause"] == "push"
    assert data["image"] == f"{TRAINER_REPOSITORY}@{digest}"
    assert data["git"] == {"repo": REPO, "commit": COMMIT, "branch": "main"}
    assert data["detail"]["build_id"] == build.id
    step = run_of(runtime).step("image:trainer")
    assert step is not None and step.status is StepStatus.SUCCEEDED
    assert step.detail["result"]["image"] == data["image"]
    pointer = runtime.ledger.get_doc(POINTERS, "image-trainer")
    assert pointer is not None and pointer.data["image"] == data["image"]
    assert pointer.data["built_at"] == "2026-11-22T09:59:58+00:00"
    [succeeded] = distinct(published(runtime, "notification")).values()
    assert succeeded.json()["data"]["kind"] == "build.succeeded"


def test_a_built_server_image_is_recorded_on_the_run_with_its_digest(runtime: Runtime, statuses: Any) -> None:
    build = fakes(runtime).builds.finish(pushed(runtime, "server/app.py")["server"].id)

    response = deliver(statuses, build)

    assert response.status_code == 200
    digest = build.digest_of(f"{SERVER_REPOSITORY}:{COMMIT}")
    step = run_of(runtime).step("image:server")
    assert step is not None and step.status is StepStatus.SUCCEEDED
    assert step.detail["result"]["image"] == f"{SERVER_REPOSITORY}@{digest}"
    assert step.detail["result"]["digest"] == digest
    assert published(runtime, "training.requested") == []
    pointer = runtime.ledger.get_doc(POINTERS, "image-server")
    assert pointer is not None and pointer.data["image"] == f"{SERVER_REPOSITORY}@{digest}"
    assert run_of(runtime).status is RunStatus.RUNNING


def test_a_failed_build_is_notified_with_its_step_and_log_and_fails_the_run(
    runtime: Runtime, statuses: Any
) -> None:
    started = pushed(runtime, "trainer/train.py")["trainer"]
    build = fakes(runtime).builds.finish(
        started.id, FakeOutcome(BuildStatus.FAILURE, failing_step=0, exit_code=2)
    )

    first = deliver(statuses, build, "cb-1")
    second = deliver(statuses, build, "cb-2")

    assert (first.status_code, second.status_code) == (200, 200)
    [failed] = distinct(published(runtime, "notification")).values()
    data = failed.json()["data"]
    assert data["kind"] == "build.failed" and data["severity"] == "error"
    assert "step 0" in data["text"] and "exited 2" in data["text"]
    assert data["context"]["failing_step"].startswith("step 0")
    assert data["context"]["build_id"] == build.id and data["context"]["repo"] == REPO
    assert data["links"] == [{"title": "Build log", "url": build_resource(build)["logUrl"]}]
    assert data["labels"] == {"model": "churn"}
    assert published(runtime, "training.requested") == []
    run = run_of(runtime)
    assert run.status is RunStatus.FAILED
    step = run.step("image:trainer")
    assert step is not None and step.detail["result"]["status"] == "FAILURE"
    assert step.status is StepStatus.FAILED  # the run shows the failed build as a failed step


@pytest.mark.parametrize("status", ["TIMEOUT", "INTERNAL_ERROR", "CANCELLED", "EXPIRED"])
def test_every_unsuccessful_end_is_a_failure(runtime: Runtime, statuses: Any, status: str) -> None:
    started = pushed(runtime, "trainer/train.py")["trainer"]
    build = fakes(runtime).builds.finish(started.id, FakeOutcome(BuildStatus(status)))

    assert deliver(statuses, build).status_code == 200

    [failed] = distinct(published(runtime, "notification")).values()
    assert failed.json()["data"]["kind"] == "build.failed"
    assert run_of(runtime).status is RunStatus.FAILED


def test_a_status_that_is_not_terminal_is_ignored(runtime: Runtime, statuses: Any) -> None:
    build = pushed(runtime, "trainer/train.py")["trainer"]  # QUEUED

    assert deliver(statuses, build).status_code == 200

    assert published(runtime) == []
    assert run_of(runtime).step("image:trainer") is None


@pytest.mark.parametrize("path", sample_paths("cloud-build-event-data.json"))
def test_a_build_that_is_not_ours_is_acknowledged_and_ignored(
    runtime: Runtime, statuses: Any, path: Path
) -> None:
    resource = json.loads(path.read_text())
    resource.update(id="someone-elses-build", status="SUCCESS")

    response = statuses.post("/", json=build_delivery(resource))

    assert response.status_code == 200
    assert published(runtime) == []
    assert runtime.ledger.list_runs() == [] and runtime.ledger.list_rejected() == []


def test_a_message_without_a_build_id_is_recorded_as_rejected(runtime: Runtime, statuses: Any) -> None:
    response = statuses.post("/", json=build_delivery({"status": "SUCCESS"}))

    assert response.status_code == 200
    [rejected] = runtime.ledger.list_rejected()
    assert rejected.reason == "invalid" and "buildId" in " ".join(rejected.problems)
