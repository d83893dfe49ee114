"""A push that builds only the server image rolls the champion out on it
(``spec.rollout.serverImageChanges``), through ``on_build_status`` in-process with the shipped config."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import pytest

from shared.ledger import Run, StepStatus
from shared.ports.builds import Build
from shared.ports.registry import ModelUpload, ModelVersion
from shared.rolloutconfig import RolloutSettings
from shared.runtime import Runtime
from tests.functional.chain.push_support import (
    COMMIT,
    RUN_ID,
    SECRET,
    SERVER_REPOSITORY,
    build_delivery,
    build_resource,
    client,
    distinct,
    fake_runtime,
    fakes,
    github_headers,
    published,
    push_to_main,
    shipped_config,
)

pytestmark = pytest.mark.functional


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", SECRET)
    with fake_runtime() as test_runtime:
        yield test_runtime


def pushed(runtime: Runtime, *paths: str) -> dict[str, Build]:
    body = json.dumps(push_to_main(*paths)).encode()
    assert client("on_git_push").post("/", data=body, headers=github_headers(body)).status_code == 202
    builds = fakes(runtime).builds.find_by_tags([f"run-{RUN_ID}"])
    return {build.tags[-1].removeprefix("image-"): build for build in builds}


def run_of(runtime: Runtime) -> Run:
    run = runtime.ledger.get_run(RUN_ID)
    assert run is not None
    return run


def crown(runtime: Runtime) -> ModelVersion:
    registry = fakes(runtime).registry
    version = registry.upload(ModelUpload("churn", "churn", "gs://demo-project-artifacts/runs/r0/model/"))
    return registry.merge_aliases("churn", version.version_id, add=["champion"])


def server_built(runtime: Runtime, *paths: str) -> str:
    """Push ``paths``, finish the server build, deliver its status twice; the built image by digest."""
    build = fakes(runtime).builds.finish(pushed(runtime, *paths)["server"].id)
    statuses = client("on_build_status")
    for message_id in ("cb-1", "cb-2"):
        assert statuses.post("/", json=build_delivery(build_resource(build), message_id)).status_code == 200
    return f"{SERVER_REPOSITORY}@{build.digest_of(f'{SERVER_REPOSITORY}:{COMMIT}')}"


def rollouts(runtime: Runtime) -> list[dict[str, Any]]:
    return [message.json() for message in distinct(published(runtime, "rollout.requested")).values()]


def test_a_server_only_push_rolls_the_champion_out_on_the_new_image_once(runtime: Runtime) -> None:
    champion = crown(runtime)
    image = server_built(runtime, "server/app.py")
    [event] = rollouts(runtime)
    assert event["run_id"] == RUN_ID
    assert event["data"] == {
        "service": "churn-predictor",
        "model": "churn",
        "version": champion.version_id,
        "version_resource": champion.resource_name,
        "artifact_uri": champion.artifact_uri,
        "image": image,
        "cause": "server_image",
        "approved_by": "policy:serverImageChanges",
        "nonce": event["data"]["nonce"],
    }
    step = run_of(runtime).step("approval:decided")
    assert step is not None and step.status is StepStatus.SUCCEEDED
    assert step.detail["result"]["channel"] == "policy" and step.detail["result"]["rollout"] == "requested"


def test_without_a_champion_nothing_is_rolled_out_and_that_is_recorded(runtime: Runtime) -> None:
    server_built(runtime, "server/app.py")
    assert rollouts(runtime) == []
    step = run_of(runtime).step("approval:decided")
    assert step is not None and "has no champion version" in step.detail["result"]["rollout"]


def test_a_push_that_also_built_the_trainer_waits_for_its_candidate(runtime: Runtime) -> None:
    crown(runtime)
    server_built(runtime, "server/app.py", "trainer/train.py")
    assert rollouts(runtime) == []
    assert run_of(runtime).step("approval:decided") is None


def test_policy_manual_holds_the_rollout_and_notifies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", SECRET)
    config = dataclasses.replace(shipped_config(), rollout=RolloutSettings(server_image_changes="manual"))
    with fake_runtime(config) as runtime:
        crown(runtime)
        server_built(runtime, "server/app.py")
        assert rollouts(runtime) == []
        step = run_of(runtime).step("approval:held")
        assert step is not None and "manual" in step.detail["result"]["rollout"]
        kinds = [m.json()["data"]["kind"] for m in distinct(published(runtime, "notification")).values()]
        assert "rollout.held" in kinds
        [held] = [
            m.json()["data"]
            for m in distinct(published(runtime, "notification")).values()
            if m.json()["data"]["kind"] == "rollout.held"
        ]
        assert "python -m shared.operator start churn-predictor --image " in held["text"]  # how to go on
