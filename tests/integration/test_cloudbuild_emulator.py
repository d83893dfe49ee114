"""Contract tests of the Cloud Build emulator, through the unmodified ``CloudBuildClient`` (REST and gRPC)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions
from google.cloud.devtools import cloudbuild_v1

from emulators.apiserver.admin import EmulatorAdmin
from tests.integration.api_emulators import (
    PROJECT,
    ROOT,
    ApiStack,
    fast_polling,
    poll,
    running,
    tarball,
    upload,
)

pytestmark = pytest.mark.integration

Status = cloudbuild_v1.Build.Status
TERMINAL = {Status.SUCCESS, Status.FAILURE, Status.TIMEOUT, Status.CANCELLED, Status.INTERNAL_ERROR}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiStack]:
    with running(
        tmp_path_factory.mktemp("cloudbuild"), pubsub=True, storage=True, cloudbuild=True, grpc=True
    ) as s:
        yield s


@pytest.fixture(scope="module")
def client(stack: ApiStack) -> cloudbuild_v1.CloudBuildClient:
    return cloudbuild_v1.CloudBuildClient(**stack.options("cloudbuild"))


@pytest.fixture(scope="module")
def admin(stack: ApiStack) -> EmulatorAdmin:
    return EmulatorAdmin(stack.hosts["cloudbuild"])


@pytest.fixture(autouse=True)
def _clean_faults(admin: EmulatorAdmin) -> Iterator[None]:
    yield
    admin.clear_faults()
    admin.set_durations(queued_seconds=0.2, step_seconds=0)


def bash(script: str, **step: Any) -> dict[str, Any]:
    return {"name": "bash", "args": ["-c", script], **step}


def submit(client: cloudbuild_v1.CloudBuildClient, build: dict[str, Any], **request: Any) -> Any:
    return client.create_build(request={"project_id": PROJECT, "build": build, **request})


def finished(client: cloudbuild_v1.CloudBuildClient, build_id: str) -> cloudbuild_v1.Build:
    seen = poll(lambda: client.get_build(project_id=PROJECT, id=build_id), lambda b: b.status in TERMINAL)
    return seen[-1]


def bad_request_status(error: exceptions.GoogleAPICallError) -> str:
    """The canonical status the REST error body carried (REST maps every 400 to BadRequest)."""
    return str(error.response.json()["error"]["status"])  # type: ignore[union-attr]


# -- the sample trainer, end to end --


def test_trainer_build_from_storage_publishes_every_status_in_order(
    stack: ApiStack, client: cloudbuild_v1.CloudBuildClient
) -> None:
    from google.cloud import pubsub_v1

    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    topic = f"projects/{PROJECT}/topics/cloud-builds"
    subscription = f"projects/{PROJECT}/subscriptions/cloud-builds-contract"
    with contextlib.suppress(exceptions.AlreadyExists):
        publisher.create_topic(name=topic)
    subscriber.create_subscription(name=subscription, topic=topic)
    generation = upload(
        "emu-project_cloudbuild", "source/trainer.tgz", tarball(ROOT / "examples" / "trainer")
    )
    image = "us-central1-docker.pkg.dev/emu-project/mlops/trainer:${SHORT_SHA}${_SUFFIX}"
    operation = submit(
        client,
        {
            "source": {
                "storage_source": {
                    "bucket": "emu-project_cloudbuild",
                    "object_": "source/trainer.tgz",
                    "generation": generation,
                }
            },
            "steps": [
                {"id": "build", "name": "gcr.io/cloud-builders/docker", "args": ["build", "-t", image, "."]},
                {"id": "push", "name": "gcr.io/cloud-builders/docker", "args": ["push", image]},
            ],
            "images": [image],
            "substitutions": {"_SUFFIX": "dev", "COMMIT_SHA": "0123456789abcdef"},
            "tags": ["trainer", "contract"],
        },
    )
    assert operation.metadata.build.status == Status.QUEUED
    build = operation.result(timeout=60, polling=fast_polling())
    assert build.status == Status.SUCCESS, build.status_detail
    expected_image = "us-central1-docker.pkg.dev/emu-project/mlops/trainer:0123456dev"
    assert [image.name for image in build.results.images] == [expected_image]
    assert build.results.images[0].digest.startswith("sha256:")
    assert build.source_provenance.resolved_storage_source.generation == generation
    assert [step.status for step in build.steps] == [Status.SUCCESS, Status.SUCCESS]
    assert all(step.timing.end_time >= step.timing.start_time for step in build.steps)
    assert {"BUILD", "FETCHSOURCE", "PUSH"} <= set(build.timing)
    assert build.start_time <= build.finish_time
    assert build.name == f"projects/{PROJECT}/locations/global/builds/{build.id}"

    statuses: list[str] = []
    deadline = time.monotonic() + 30
    while "SUCCESS" not in statuses and time.monotonic() < deadline:
        response = subscriber.pull(subscription=subscription, max_messages=10, timeout=5)
        for received in response.received_messages:
            message = received.message
            if message.attributes["buildId"] == build.id:
                data = json.loads(message.data)
                assert data["id"] == build.id and data["status"] == message.attributes["status"]
                assert data["projectId"] == PROJECT
                statuses.append(message.attributes["status"])
        if response.received_messages:
            subscriber.acknowledge(
                subscription=subscription, ack_ids=[r.ack_id for r in response.received_messages]
            )
    assert statuses == ["QUEUED", "WORKING", "SUCCESS"]

    with urllib.request.urlopen(build.log_url, timeout=5) as answer:
        log = answer.read().decode()
    assert f"Successfully tagged {expected_image}" in log
    assert 'Step #0 - "build"' in log


def test_push_of_an_image_never_built_fails_the_build(client: cloudbuild_v1.CloudBuildClient) -> None:
    operation = submit(
        client, {"steps": [{"name": "gcr.io/cloud-builders/docker", "args": ["push", "never/built:1"]}]}
    )
    with pytest.raises(exceptions.GoogleAPICallError):
        operation.result(timeout=30, polling=fast_polling())
    build = client.get_build(project_id=PROJECT, id=operation.metadata.build.id)
    assert build.status == Status.FAILURE
    assert "exited with non-zero status: 1" in build.status_detail
    assert build.failure_info.type_ == cloudbuild_v1.Build.FailureInfo.FailureType.USER_BUILD_STEP


def test_images_not_built_fail_the_push_phase(client: cloudbuild_v1.CloudBuildClient) -> None:
    operation = submit(client, {"steps": [bash("true")], "images": ["never/built:2"]})
    build = finished(client, operation.metadata.build.id)
    assert build.status == Status.FAILURE
    assert build.failure_info.type_ == cloudbuild_v1.Build.FailureInfo.FailureType.PUSH_IMAGE_NOT_FOUND
    assert "never/built:2" in build.status_detail


def test_a_builder_that_cannot_run_locally_fails_clearly(client: cloudbuild_v1.CloudBuildClient) -> None:
    operation = submit(
        client, {"steps": [{"name": "gcr.io/cloud-builders/gcloud", "args": ["run", "deploy"]}]}
    )
    build = finished(client, operation.metadata.build.id)
    assert build.status == Status.FAILURE
    assert "cannot run locally" in build.status_detail


# -- substitutions and steps --


def test_substitutions_builtins_user_vars_and_escapes(
    client: cloudbuild_v1.CloudBuildClient, admin: EmulatorAdmin
) -> None:
    script = "echo \"p=$PROJECT_ID b=$BUILD_ID l=$LOCATION u=${_WHO}-$_WHO c=$SHORT_SHA\" '$$HOME'"
    operation = submit(
        client,
        {"steps": [bash(script)], "substitutions": {"_WHO": "me", "COMMIT_SHA": "abcdef0123"}},
    )
    build = operation.result(timeout=30, polling=fast_polling())
    log = admin.log("builds", build.id)
    assert f"p={PROJECT} b={build.id} l=global u=me-me c=abcdef0 $HOME" in log
    assert build.substitutions["_WHO"] == "me"


def test_unmatched_substitutions_are_refused_unless_loose(client: cloudbuild_v1.CloudBuildClient) -> None:
    with pytest.raises(exceptions.BadRequest) as unknown:
        submit(client, {"steps": [bash("echo $_MISSING")]})
    assert 'key in the template "_MISSING" is not a valid built-in substitution' in str(unknown.value)
    assert bad_request_status(unknown.value) == "INVALID_ARGUMENT"
    with pytest.raises(exceptions.BadRequest) as unused:
        submit(client, {"steps": [bash("true")], "substitutions": {"_UNUSED": "x"}})
    assert 'key "_UNUSED" in the substitution data is not matched in the template' in str(unused.value)
    loose = submit(
        client,
        {
            "steps": [bash("echo [$_MISSING]")],
            "substitutions": {"_UNUSED": "x"},
            "options": {"substitution_option": "ALLOW_LOOSE"},
        },
    )
    assert loose.result(timeout=30, polling=fast_polling()).status == Status.SUCCESS


def test_steps_run_with_dir_env_wait_for_and_workspace(
    client: cloudbuild_v1.CloudBuildClient, admin: EmulatorAdmin
) -> None:
    steps = [
        bash("mkdir -p sub && echo from-a > /workspace/sub/a.txt", id="a"),
        bash("sleep 0.4; echo b > b.txt", id="b", wait_for=["-"]),
        bash("sleep 0.4; echo c > c.txt", id="c", wait_for=["-"]),
        {
            "name": "python",
            "args": ["-c", "import os; print(open('a.txt').read().strip(), os.environ['GREETING'])"],
            "dir": "sub",
            "env": ["GREETING=hi"],
            "wait_for": ["a", "b", "c"],
        },
    ]
    build = submit(client, {"steps": steps}).result(timeout=30, polling=fast_polling())
    assert build.status == Status.SUCCESS
    b, c = build.steps[1].timing, build.steps[2].timing
    assert b.start_time < c.end_time and c.start_time < b.end_time, "waitFor ['-'] steps ran in parallel"
    assert "from-a hi" in admin.log("builds", build.id)


def test_failing_step_fails_the_build_and_skips_later_steps(client: cloudbuild_v1.CloudBuildClient) -> None:
    operation = submit(client, {"steps": [bash("exit 3"), bash("echo never")]})
    with pytest.raises(exceptions.GoogleAPICallError) as error:
        operation.result(timeout=30, polling=fast_polling())
    assert "non-zero status: 3" in str(error.value)
    build = client.get_build(project_id=PROJECT, id=operation.metadata.build.id)
    assert build.status == Status.FAILURE
    assert build.steps[0].status == Status.FAILURE and build.steps[0].exit_code == 3
    assert build.steps[1].status == Status.QUEUED


def test_step_and_build_timeouts(client: cloudbuild_v1.CloudBuildClient) -> None:
    step_timeout = submit(client, {"steps": [bash("sleep 5", timeout="0.5s")]})
    build_timeout = submit(client, {"steps": [bash("sleep 5")], "timeout": "1s"})
    first = finished(client, step_timeout.metadata.build.id)
    assert first.status == Status.FAILURE and first.steps[0].status == Status.TIMEOUT
    assert "timed out" in first.status_detail
    second = finished(client, build_timeout.metadata.build.id)
    assert second.status == Status.TIMEOUT


def test_git_source_at_a_revision(
    tmp_path: Path, client: cloudbuild_v1.CloudBuildClient, admin: EmulatorAdmin
) -> None:
    repo = tmp_path / "app-repo"
    repo.mkdir()

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
            cwd=repo, check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip

    git("init", "-q", "-b", "main")
    (repo / "version.txt").write_text("one\n")
    git("add", ".")
    git("commit", "-q", "-m", "one")
    first = git("rev-parse", "HEAD")
    (repo / "version.txt").write_text("two\n")
    git("commit", "-q", "-am", "two")
    build = submit(
        client,
        {
            "source": {"git_source": {"url": f"file://{repo}", "revision": first}},
            "steps": [
                bash("echo version=$(cat version.txt) sha=$COMMIT_SHA short=$SHORT_SHA repo=$REPO_NAME")
            ],
        },
    ).result(timeout=30, polling=fast_polling())
    assert build.status == Status.SUCCESS
    assert f"version=one sha={first} short={first[:7]} repo=app-repo" in admin.log("builds", build.id)
    assert build.source_provenance.resolved_git_source.revision == first
    remote = submit(
        client, {"source": {"git_source": {"url": "https://github.com/x/y.git"}}, "steps": [bash("true")]}
    )
    failed = finished(client, remote.metadata.build.id)
    assert failed.status == Status.FAILURE
    assert failed.failure_info.type_ == cloudbuild_v1.Build.FailureInfo.FailureType.FETCH_SOURCE_FAILED


# -- get, list, cancel, retry, regional --


def test_get_unknown_build_is_not_found(client: cloudbuild_v1.CloudBuildClient) -> None:
    with pytest.raises(exceptions.NotFound):
        client.get_build(project_id=PROJECT, id="00000000-0000-0000-0000-000000000000")


def test_list_builds_filters_on_tags_and_status_and_pages(client: cloudbuild_v1.CloudBuildClient) -> None:
    ok = submit(client, {"steps": [bash("true")], "tags": ["list-ok", "listing"]})
    bad = submit(client, {"steps": [bash("false")], "tags": ["list-bad", "listing"]})
    ok_id, bad_id = ok.metadata.build.id, bad.metadata.build.id
    finished(client, ok_id)
    finished(client, bad_id)

    def ids(filter_text: str, page_size: int = 0) -> list[str]:
        request = {"project_id": PROJECT, "filter": filter_text, "page_size": page_size}
        return [build.id for build in client.list_builds(request=request)]

    assert ids('tags="list-ok"') == [ok_id]
    assert ids('tags="listing" AND status="FAILURE"') == [bad_id]
    assert ids('tags=("list-ok" OR "list-bad")', page_size=1) == [bad_id, ok_id]  # newest first, two pages
    assert ok_id in ids("status=SUCCESS") and bad_id not in ids("status=SUCCESS")
    with pytest.raises(exceptions.BadRequest):
        ids("tags=")


def test_cancel_a_running_build_then_cancel_again(client: cloudbuild_v1.CloudBuildClient) -> None:
    operation = submit(client, {"steps": [bash("sleep 30")]})
    build_id = operation.metadata.build.id
    poll(lambda: client.get_build(project_id=PROJECT, id=build_id).status, lambda s: s == Status.WORKING)
    cancelled = client.cancel_build(project_id=PROJECT, id=build_id)
    assert cancelled.status == Status.CANCELLED
    with pytest.raises(exceptions.GoogleAPICallError) as error:
        operation.result(timeout=10, polling=fast_polling())
    assert error.value.grpc_status_code is not None or "cancel" in str(error.value).lower()
    with pytest.raises(exceptions.BadRequest) as again:
        client.cancel_build(project_id=PROJECT, id=build_id)
    assert bad_request_status(again.value) == "FAILED_PRECONDITION"


def test_retry_build_runs_the_same_build_again(client: cloudbuild_v1.CloudBuildClient) -> None:
    first = submit(client, {"steps": [bash("echo $_N")], "substitutions": {"_N": "1"}, "tags": ["retry"]})
    original = first.result(timeout=30, polling=fast_polling())
    again = client.retry_build(project_id=PROJECT, id=original.id).result(timeout=30, polling=fast_polling())
    assert again.id != original.id
    assert again.status == Status.SUCCESS
    assert list(again.tags) == ["retry"] and again.substitutions["_N"] == "1"


def test_regional_builds_use_regional_names(client: cloudbuild_v1.CloudBuildClient) -> None:
    parent = f"projects/{PROJECT}/locations/europe-west1"
    operation = client.create_build(
        request={"parent": parent, "project_id": PROJECT, "build": {"steps": [bash("true")]}}
    )
    build = operation.result(timeout=30, polling=fast_polling())
    assert build.name == f"{parent}/builds/{build.id}"
    assert operation.operation.name.startswith(f"{parent}/operations/")
    assert client.get_build(name=build.name).id == build.id
    assert build.id in [b.id for b in client.list_builds(request={"parent": parent, "project_id": PROJECT})]
    with pytest.raises(exceptions.NotFound):
        client.get_build(project_id=PROJECT, id=build.id)  # a regional build is not a global one


def test_unimplemented_methods_say_so(client: cloudbuild_v1.CloudBuildClient) -> None:
    with pytest.raises(exceptions.MethodNotImplemented, match="not supported by the Cloud Build emulator"):
        client.list_build_triggers(project_id=PROJECT)


# -- faults and control --


def test_injected_unavailable_on_create_build(
    client: cloudbuild_v1.CloudBuildClient, admin: EmulatorAdmin
) -> None:
    admin.fail_next("CreateBuild", "UNAVAILABLE", count=1)
    with pytest.raises(exceptions.ServiceUnavailable):
        submit(client, {"steps": [bash("true")]})
    assert (
        submit(client, {"steps": [bash("true")]}).result(timeout=30, polling=fast_polling()).status
        == Status.SUCCESS
    )


def test_injected_latency_and_forced_failure(
    client: cloudbuild_v1.CloudBuildClient, admin: EmulatorAdmin
) -> None:
    admin.add_latency("GetBuild", 0.3)
    operation = submit(client, {"steps": [bash("sleep 30")]})
    build_id = operation.metadata.build.id
    started = time.monotonic()
    client.get_build(project_id=PROJECT, id=build_id)
    assert time.monotonic() - started >= 0.3
    admin.add_latency("GetBuild", 0)
    admin.force_failure("builds", build_id, "disk full (injected)")
    build = client.get_build(project_id=PROJECT, id=build_id)
    assert build.status == Status.FAILURE and build.status_detail == "disk full (injected)"
    admin.fail_next_resource("builds", message="runner lost (injected)")
    forced = finished(client, submit(client, {"steps": [bash("true")]}).metadata.build.id)
    assert forced.status == Status.FAILURE and forced.status_detail == "runner lost (injected)"


def test_durations_keep_a_build_queued(client: cloudbuild_v1.CloudBuildClient, admin: EmulatorAdmin) -> None:
    admin.set_durations(queued_seconds=1.0)
    operation = submit(client, {"steps": [bash("true")]})
    time.sleep(0.4)
    assert client.get_build(project_id=PROJECT, id=operation.metadata.build.id).status == Status.QUEUED
    assert operation.result(timeout=30, polling=fast_polling()).status == Status.SUCCESS


# -- gRPC ----------------------------------------------------------------------------------------------------


def test_grpc_transport(stack: ApiStack) -> None:
    import grpc
    from google.cloud.devtools.cloudbuild_v1.services.cloud_build.transports import CloudBuildGrpcTransport

    channel = grpc.insecure_channel(stack.grpc["cloudbuild"])
    client = cloudbuild_v1.CloudBuildClient(transport=CloudBuildGrpcTransport(channel=channel))
    build = submit(client, {"steps": [bash("true")]}).result(timeout=30, polling=fast_polling())
    assert build.status == Status.SUCCESS
    with pytest.raises(exceptions.FailedPrecondition):
        client.cancel_build(project_id=PROJECT, id=build.id)
    with pytest.raises(exceptions.NotFound):
        client.get_build(project_id=PROJECT, id="missing")
    channel.close()


def test_server_image_builds_from_its_dockerfile(
    client: cloudbuild_v1.CloudBuildClient, stack: ApiStack
) -> None:
    from emulators.common.registry import LocalRegistry

    generation = upload("emu-project_cloudbuild", "source/server.tgz", tarball(ROOT / "examples" / "server"))
    image = "us-central1-docker.pkg.dev/emu-project/mlops/server:${_TAG}"
    build = submit(
        client,
        {
            "source": {
                "storage_source": {
                    "bucket": "emu-project_cloudbuild",
                    "object_": "source/server.tgz",
                    "generation": generation,
                }
            },
            "steps": [{"name": "gcr.io/cloud-builders/docker", "args": ["build", "-t", image, "."]}],
            "images": [image],
            "substitutions": {"_TAG": "v1"},
        },
    ).result(timeout=60, polling=fast_polling())
    assert build.status == Status.SUCCESS
    record = LocalRegistry(Path(stack.env["LOCAL_REGISTRY_DIR"])).resolve(build.results.images[0].name)
    assert record.digest == build.results.images[0].digest
    assert record.workdir == "/srv" and record.cmd == ["python", "-m", "server.app"]
    assert record.env["PORT"] == "8080" and (record.rootfs / "srv" / "server" / "app.py").is_file()
