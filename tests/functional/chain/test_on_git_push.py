"""``on_git_push`` in-process through functions-framework: signed webhooks in, fake Cloud Build builds out."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.errors import InvalidInput, TransientError
from shared.ledger import RunStatus, StepStatus
from shared.runtime import Runtime
from tests.functional.chain.push_support import (
    COMMIT,
    GITLAB_TOKEN,
    REPO,
    RUN_ID,
    SECRET,
    TRAINER_REPOSITORY,
    client,
    fake_runtime,
    fakes,
    github_headers,
    gitlab_push,
    push_to_main,
)
from tests.unit.shared.ingest.payloads import raw_bytes, sample_paths

pytestmark = pytest.mark.functional


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("GITLAB_WEBHOOK_TOKEN", GITLAB_TOKEN)
    with fake_runtime() as test_runtime:
        yield test_runtime


@pytest.fixture
def webhook() -> Any:
    return client("on_git_push")


def post_github(webhook: Any, payload: dict[str, Any] | bytes, **headers: Any) -> Any:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return webhook.post("/", data=body, headers=github_headers(body, **headers))


def nothing_started(runtime: Runtime) -> None:
    assert fakes(runtime).builds.started == []
    assert runtime.ledger.list_runs() == []


# -- refused and ignored: nothing started --------------------------------------------------------------------


@pytest.mark.parametrize("path", sample_paths("github-push.json"))
def test_a_forged_signature_is_401_and_starts_nothing(runtime: Runtime, webhook: Any, path: Path) -> None:
    body = raw_bytes(path)

    response = post_github(webhook, body, secret="not-the-secret")

    assert response.status_code == 401
    assert response.get_json()["reason"] == "unauthorized"
    nothing_started(runtime)
    [rejected] = runtime.ledger.list_rejected()
    assert rejected.reason == "unauthorized" and rejected.source == "on_git_push:/"
    assert isinstance(rejected.payload, str) and "not recorded" in rejected.payload  # unverified: not kept


@pytest.mark.parametrize("path", sample_paths("github-push.json"))
def test_a_missing_signature_is_401_and_starts_nothing(runtime: Runtime, webhook: Any, path: Path) -> None:
    body = raw_bytes(path)
    headers = github_headers(body)
    del headers["X-Hub-Signature-256"]

    response = webhook.post("/", data=body, headers=headers)

    assert response.status_code == 401
    assert "missing X-Hub-Signature-256" in response.get_json()["error"]
    nothing_started(runtime)


@pytest.mark.parametrize("path", sample_paths("github-push.json"))
def test_the_sample_push_to_master_is_ignored_as_a_non_matching_branch(
    runtime: Runtime, webhook: Any, path: Path
) -> None:
    response = post_github(webhook, raw_bytes(path))

    assert response.status_code == 200
    body = response.get_json()
    assert body["ignored"] == "ref_not_matched"
    assert "'master' matches none of ['main']" in body["reason"]
    nothing_started(runtime)


@pytest.mark.parametrize("path", sample_paths("github-push.json"))
def test_a_deletion_push_is_ignored(runtime: Runtime, webhook: Any, path: Path) -> None:
    payload = json.loads(raw_bytes(path))
    payload.update(ref="refs/heads/main", before=COMMIT, after="0" * 40, deleted=True, commits=[])

    response = post_github(webhook, payload)

    assert response.status_code == 200
    assert response.get_json()["ignored"] == "deletion"
    nothing_started(runtime)


def test_a_push_touching_no_image_is_ignored(runtime: Runtime, webhook: Any) -> None:
    response = post_github(webhook, push_to_main("README.md"))

    assert response.status_code == 200
    assert response.get_json()["ignored"] == "no_image_touched"
    nothing_started(runtime)


@pytest.mark.parametrize("path", sample_paths("github-ping.json"))
def test_a_ping_is_answered_200(runtime: Runtime, webhook: Any, path: Path) -> None:
    response = post_github(webhook, raw_bytes(path), event="ping")

    assert response.status_code == 200
    assert response.get_json() == {
        "ok": True,
        "event": "ping",
        "hook_id": 109948940,
        "repository": "Octocoders/Hello-World",
    }
    nothing_started(runtime)


def test_another_github_event_is_acknowledged_and_ignored(runtime: Runtime, webhook: Any) -> None:
    response = post_github(webhook, {"action": "opened"}, event="issues")

    assert response.status_code == 200
    assert response.get_json()["ignored"] == "event_not_handled"
    nothing_started(runtime)


def test_a_body_over_the_limit_is_413_before_it_is_read(
    runtime: Runtime, webhook: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("functions.on_git_push.MAX_BODY_BYTES", 1000)
    body = json.dumps(push_to_main("trainer/train.py")).encode()
    assert len(body) > 1000

    response = webhook.post("/", data=body, headers=github_headers(body))

    assert response.status_code == 413
    nothing_started(runtime)


def test_an_unset_secret_is_the_operators_error_not_a_bad_signature(
    runtime: Runtime, webhook: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_WEBHOOK_SECRET")

    response = post_github(webhook, push_to_main("trainer/train.py"))

    assert response.status_code == 500
    assert response.get_json()["reason"] == "config"
    assert "GITHUB_WEBHOOK_SECRET" in response.get_json()["error"]
    nothing_started(runtime)


def test_a_signed_body_that_is_not_a_push_is_400_and_recorded(runtime: Runtime, webhook: Any) -> None:
    response = post_github(webhook, {"ref": "refs/heads/main"})

    assert response.status_code == 400
    nothing_started(runtime)
    [rejected] = runtime.ledger.list_rejected()
    assert rejected.reason == "invalid"
    assert '"ref"' in str(rejected.payload)  # verified, so the body is kept for the record


def test_only_post_is_accepted(runtime: Runtime, webhook: Any) -> None:
    assert webhook.get("/").status_code == 405


# -- builds --------------------------------------------------------------------------------------------------


def test_a_push_touching_the_trainer_starts_one_build_of_that_commit(runtime: Runtime, webhook: Any) -> None:
    response = post_github(webhook, push_to_main("trainer/train.py"))

    assert response.status_code == 202
    body = response.get_json()
    assert body["run_id"] == RUN_ID
    assert body["started"] == ["trainer"] and body["duplicate"] == []
    [request] = fakes(runtime).builds.started
    assert (
        request.source is not None and request.source.url == "https://github.com/Codertocat/Hello-World.git"
    )
    assert (request.source.revision, request.source.dir) == (COMMIT, "trainer")
    assert request.substitutions["_IMAGE"] == TRAINER_REPOSITORY
    assert request.substitutions["COMMIT_SHA"] == COMMIT and request.substitutions["SHORT_SHA"] == COMMIT[:7]
    assert request.substitutions["_RUN_ID"] == RUN_ID and request.substitutions["_BRANCH"] == "main"
    assert set(request.tags) >= {"mlops", f"run-{RUN_ID}", "image-trainer"}
    assert request.logging == "CLOUD_LOGGING_ONLY"
    [build] = fakes(runtime).builds.find_by_tags([f"run-{RUN_ID}"])
    assert body["builds"] == [{"image": "trainer", "build_id": build.id, "outcome": "started"}]
    run = runtime.ledger.get_run(RUN_ID)
    assert run is not None and run.status is RunStatus.RUNNING
    assert run.cause["cause"] == "push" and run.cause["repo"] == REPO and run.cause["commit"] == COMMIT
    assert run.cause["branch"] == "main" and run.cause["images"] == ["trainer"]
    step = run.step("build:trainer")
    assert step is not None and step.status is StepStatus.SUCCEEDED
    assert step.detail["result"]["build_id"] == build.id


def test_the_same_push_sent_three_times_builds_once(runtime: Runtime, webhook: Any) -> None:
    payload = push_to_main("trainer/train.py")

    answers = [post_github(webhook, payload, delivery="same-delivery") for _ in range(3)]

    assert [answer.status_code for answer in answers] == [202, 200, 200]
    assert [answer.get_json()["duplicate"] for answer in answers] == [[], ["trainer"], ["trainer"]]
    assert len(fakes(runtime).builds.started) == 1
    build_ids = {answer.get_json()["builds"][0]["build_id"] for answer in answers}
    assert len(build_ids) == 1


def test_a_second_hook_for_the_same_commit_builds_nothing_more(runtime: Runtime, webhook: Any) -> None:
    # Another delivery id (a second webhook on the repository, or a manual "redeliver" in GitHub).
    first = post_github(webhook, push_to_main("trainer/train.py"), delivery="hook-a")
    second = post_github(webhook, push_to_main("trainer/train.py", "docs/x.md"), delivery="hook-b")

    assert (first.status_code, second.status_code) == (202, 200)
    assert second.get_json()["duplicate"] == ["trainer"]
    assert len(fakes(runtime).builds.started) == 1


def test_a_push_touching_both_images_starts_one_build_each(runtime: Runtime, webhook: Any) -> None:
    response = post_github(webhook, push_to_main("trainer/train.py", "server/app.py"))

    assert response.status_code == 202
    assert response.get_json()["started"] == ["trainer", "server"]
    sources = sorted(request.source.dir for request in fakes(runtime).builds.started if request.source)
    assert sources == ["server", "trainer"]
    run = runtime.ledger.get_run(RUN_ID)
    assert run is not None and {step.name for step in run.steps} == {"build:trainer", "build:server"}


def test_a_gitlab_push_with_its_token_starts_the_build(runtime: Runtime, webhook: Any) -> None:
    body = json.dumps(gitlab_push("trainer/model.py")).encode()
    headers = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": GITLAB_TOKEN, "Idempotency-Key": "gl-1"}

    response = webhook.post("/", data=body, headers=headers)

    assert response.status_code == 202
    assert response.get_json()["run_id"] == "push-acme-ml-6113728f27ae"
    [request] = fakes(runtime).builds.started
    assert request.source is not None and request.source.url == "https://gitlab.example/acme/ml.git"
    assert request.substitutions["_REPO"] == "acme/ml"


def test_a_gitlab_push_with_a_wrong_token_is_401(runtime: Runtime, webhook: Any) -> None:
    body = json.dumps(gitlab_push("trainer/model.py")).encode()

    response = webhook.post(
        "/", data=body, headers={"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "guess"}
    )

    assert response.status_code == 401
    nothing_started(runtime)


def test_cloud_build_unavailable_is_503_and_the_retry_builds_once(runtime: Runtime, webhook: Any) -> None:
    fakes(runtime).builds.faults.fail_next("start", TransientError("UNAVAILABLE (injected)"))
    payload = push_to_main("trainer/train.py")

    first = post_github(webhook, payload)
    second = post_github(webhook, payload)

    assert first.status_code == 503
    assert second.status_code == 202 and second.get_json()["started"] == ["trainer"]
    assert len(fakes(runtime).builds.started) == 1


def test_a_build_cloud_build_refuses_fails_the_run(runtime: Runtime, webhook: Any) -> None:
    fakes(runtime).builds.faults.fail_next("start", InvalidInput("build request", ["quota exhausted"]))

    response = post_github(webhook, push_to_main("trainer/train.py"))

    assert response.status_code == 200
    assert response.get_json()["failed"] == ["trainer"]
    run = runtime.ledger.get_run(RUN_ID)
    assert run is not None and run.status is RunStatus.FAILED
    step = run.step("build:trainer")
    assert step is not None and step.status is StepStatus.FAILED
