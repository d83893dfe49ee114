"""The build-status stage's decisions (``judge``), the pointer documents and the reconciler's ``poll_run``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.chain.builds import (
    POINTERS,
    BuildFacts,
    Verdict,
    image_reference,
    judge,
    poll_run,
    settle,
    status_key,
    update_pointer,
)
from shared.chain.push import start_builds
from shared.errors import TransientError
from shared.events import build_message, github_push, pubsub_message
from shared.ingest.routing import route
from shared.ingest.signatures import Delivery, Provider
from shared.ledger import DocConflictError, InMemoryLedger, StoredDoc
from shared.ports.builds import BuildStatus
from shared.ports.errors import NotFound
from shared.runtime import Runtime
from shared.steps import Outcome
from tests.functional.chain.push_support import (
    COMMIT,
    REPO,
    RUN_ID,
    TRAINER_REPOSITORY,
    build_delivery,
    build_resource,
    distinct,
    fake_runtime,
    fakes,
    published,
    push_to_main,
    shipped_config,
)

pytestmark = pytest.mark.unit

CHAIN = shipped_config().chain
OURS = ("mlops", f"run-{RUN_ID}", "image-trainer")
SUBSTITUTIONS = {"_IMAGE": TRAINER_REPOSITORY, "_REPO": REPO, "_BRANCH": "main", "COMMIT_SHA": COMMIT}
DIGEST = "sha256:" + "ab" * 32


def facts(
    status: BuildStatus = BuildStatus.SUCCESS, tags: tuple[str, ...] = OURS, **changes: Any
) -> BuildFacts:
    values: dict[str, Any] = {
        "build_id": "b-1",
        "status": status,
        "tags": tags,
        "substitutions": SUBSTITUTIONS,
        "images": (
            (f"{TRAINER_REPOSITORY}:{COMMIT}", DIGEST),
            (f"{TRAINER_REPOSITORY}:{COMMIT[:7]}", DIGEST),
        ),
        **changes,
    }
    return BuildFacts(**values)


# -- judge ---------------------------------------------------------------------------------------------------


def test_a_built_trainer_trains_every_model_using_it_with_the_image_by_digest() -> None:
    judgement = judge(facts(), CHAIN)

    assert judgement.verdict is Verdict.BUILT
    assert (judgement.run_id, judgement.image, judgement.role) == (RUN_ID, "trainer", "trainer")
    assert judgement.reference == f"{TRAINER_REPOSITORY}@{DIGEST}" and judgement.digest == DIGEST
    assert judgement.models == ("churn",)
    assert judgement.git.to_json() == {"repo": REPO, "commit": COMMIT, "branch": "main"}


@pytest.mark.parametrize(
    ("status", "tags", "why"),
    [
        (BuildStatus.WORKING, OURS, "not terminal"),
        (BuildStatus.QUEUED, OURS, "not terminal"),
        (BuildStatus.SUCCESS, (f"run-{RUN_ID}", "image-trainer"), "no 'mlops' tag"),
        (BuildStatus.SUCCESS, ("mlops", "image-trainer"), "run-<run id>"),
        (BuildStatus.SUCCESS, ("mlops", "run-Not_A_Run_Id", "image-trainer"), "run-<run id>"),
        (BuildStatus.FAILURE, ("mlops", f"run-{RUN_ID}"), "image-<name>"),
    ],
)
def test_only_terminal_builds_of_ours_count(status: BuildStatus, tags: tuple[str, ...], why: str) -> None:
    judgement = judge(facts(status, tags), CHAIN)

    assert judgement.verdict is Verdict.IGNORED
    assert why in judgement.reason


@pytest.mark.parametrize(
    "status",
    [
        BuildStatus.FAILURE,
        BuildStatus.TIMEOUT,
        BuildStatus.INTERNAL_ERROR,
        BuildStatus.CANCELLED,
        BuildStatus.EXPIRED,
    ],
)
def test_every_unsuccessful_end_is_a_failure_of_the_run(status: BuildStatus) -> None:
    judgement = judge(facts(status, images=()), CHAIN)

    assert judgement.verdict is Verdict.FAILED
    assert judgement.run_id == RUN_ID and judgement.models == ("churn",)


def test_an_image_the_config_no_longer_lists_is_recorded_but_trains_nothing() -> None:
    tags = ("mlops", f"run-{RUN_ID}", "image-retired")
    judgement = judge(facts(tags=tags), CHAIN)

    assert judgement.verdict is Verdict.BUILT
    assert (judgement.role, judgement.models) == ("other", ())
    assert judgement.reference == f"{TRAINER_REPOSITORY}@{DIGEST}"  # still by digest, from _IMAGE


def test_the_commit_falls_back_to_the_resolved_source_revision() -> None:
    judgement = judge(facts(substitutions={"_REPO": REPO}, source_revision=COMMIT), CHAIN)

    assert judgement.git.commit == COMMIT and judgement.git.branch == ""


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("us-docker.pkg.dev/p/r/trainer:abc", "us-docker.pkg.dev/p/r/trainer@sha256:1"),
        ("localhost:5000/trainer:v1", "localhost:5000/trainer@sha256:1"),
        ("localhost:5000/trainer", "localhost:5000/trainer@sha256:1"),
        ("r/trainer:v1@sha256:0", "r/trainer@sha256:1"),
    ],
)
def test_image_reference_replaces_the_tag_by_the_digest(name: str, expected: str) -> None:
    assert image_reference(name, "sha256:1") == expected
    assert image_reference(name, "") == name


def test_facts_from_a_cloud_builds_message_name_the_failing_step() -> None:
    resource = {
        "id": "b-9",
        "status": "FAILURE",
        "tags": list(OURS),
        "logUrl": "https://console.cloud.google.com/cloud-build/builds/b-9",
        "steps": [
            {"name": "bash", "id": "lint", "status": "FAILURE", "allowFailure": True, "exitCode": 1},
            {"name": "gcr.io/cloud-builders/docker", "id": "build", "status": "FAILURE", "exitCode": 3},
            {"name": "gcr.io/cloud-builders/docker", "id": "push", "status": "QUEUED"},
        ],
        "failureInfo": {"type": "USER_BUILD_STEP", "detail": "Build step failure: build step 1 failed"},
        "sourceProvenance": {"resolvedGitSource": {"url": "file:///r", "revision": COMMIT}},
    }
    message = pubsub_message(build_delivery(resource))

    found = BuildFacts.from_message(build_message(message))

    assert found.status is BuildStatus.FAILURE and found.source_revision == COMMIT
    assert found.failing_step is not None
    assert found.failing_step.describe() == 'step 1 "build" (gcr.io/cloud-builders/docker) exited 3'
    assert found.detail == "Build step failure: build step 1 failed"


def test_an_unknown_status_is_not_terminal() -> None:
    message = pubsub_message(build_delivery({"id": "b", "status": "PAUSED", "tags": list(OURS)}))

    found = BuildFacts.from_message(build_message(message))

    assert found.status is BuildStatus.UNKNOWN
    assert judge(found, CHAIN).verdict is Verdict.IGNORED


# -- pointers ------------------------------------------------------------------------------------------------

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def test_the_pointer_moves_only_to_a_newer_build() -> None:
    ledger = InMemoryLedger()

    assert update_pointer(ledger, "trainer", {"image": "r@sha256:new"}, T0)
    assert not update_pointer(ledger, "trainer", {"image": "r@sha256:old"}, T0 - timedelta(minutes=5))
    assert not update_pointer(ledger, "trainer", {"image": "r@sha256:same"}, T0)
    assert update_pointer(ledger, "trainer", {"image": "r@sha256:newer"}, T0 + timedelta(seconds=1))

    doc = ledger.get_doc(POINTERS, "image-trainer")
    assert doc is not None
    assert doc.data == {"image": "r@sha256:newer", "built_at": "2026-11-22T10:00:01+00:00"}


class RacingLedger(InMemoryLedger):
    """Another writer moves the pointer between our read and our write, ``races`` times."""

    def __init__(self, races: int) -> None:
        super().__init__()
        self.races = races

    def put_doc(self, collection: str, doc_id: str, data: Any, **options: Any) -> StoredDoc:
        if self.races:
            self.races -= 1
            raise DocConflictError(collection, doc_id, "another writer moved it")
        return super().put_doc(collection, doc_id, data, **options)


def test_a_lost_race_reads_again_then_asks_for_a_redelivery() -> None:
    assert update_pointer(RacingLedger(races=2), "trainer", {"image": "r@sha256:1"}, T0)
    with pytest.raises(TransientError):
        update_pointer(RacingLedger(races=3), "trainer", {"image": "r@sha256:1"}, T0)


# -- settle and poll_run -------------------------------------------------------------------------------------


@pytest.fixture
def runtime() -> Iterator[Runtime]:
    with fake_runtime() as test_runtime:
        yield test_runtime


def start_trainer_build(runtime: Runtime) -> str:
    push = github_push(push_to_main("trainer/train.py"), "d-1")
    decision = route(push, CHAIN.push)  # type: ignore[arg-type]
    run_id, _, results = start_builds(runtime, push, decision, Delivery(Provider.GITHUB, "push", "d-1"))
    assert run_id == RUN_ID and results[0].outcome is Outcome.DONE
    return str(results[0].result["build_id"])


def current_run(runtime: Runtime) -> Any:
    run = runtime.ledger.get_run(RUN_ID)
    assert run is not None
    return run


def test_poll_run_settles_a_build_whose_message_never_came(runtime: Runtime) -> None:
    build_id = start_trainer_build(runtime)

    # The fake moves one status per read: QUEUED, WORKING, then SUCCESS.
    assert poll_run(runtime, current_run(runtime)) == []
    assert poll_run(runtime, current_run(runtime)) == []
    [line] = poll_run(runtime, current_run(runtime))

    assert line.startswith(f"build {build_id} (trainer) SUCCESS: training.requested for churn")
    [request] = distinct(published(runtime, "training.requested")).values()
    assert request.json()["data"]["image"].startswith(f"{TRAINER_REPOSITORY}@sha256:")
    step = current_run(runtime).step("image:trainer")
    assert step is not None and step.detail["key"] == status_key(build_id, BuildStatus.SUCCESS)


def test_after_poll_run_the_late_message_is_a_duplicate_and_polling_stops(runtime: Runtime) -> None:
    build_id = start_trainer_build(runtime)
    builds = fakes(runtime).builds
    build = builds.finish(build_id)
    assert poll_run(runtime, current_run(runtime)) != []
    events_before = set(distinct(published(runtime)))

    message = pubsub_message(build_delivery(build_resource(build)))
    _, result = settle(runtime, BuildFacts.from_message(build_message(message)), "cb-late")

    assert result is not None and result.outcome is Outcome.DUPLICATE
    assert set(distinct(published(runtime))) == events_before  # re-published, the same events
    builds.faults.fail_next("get", AssertionError("a settled build must not be read again"))
    assert poll_run(runtime, current_run(runtime)) == []


def test_poll_run_reports_a_failure_and_the_run_fails(runtime: Runtime) -> None:
    from shared.ports.builds_fake import FakeOutcome

    build_id = start_trainer_build(runtime)
    fakes(runtime).builds.finish(build_id, FakeOutcome(BuildStatus.TIMEOUT))

    [line] = poll_run(runtime, current_run(runtime))

    assert "TIMEOUT: build.failed notification" in line
    assert current_run(runtime).status.value == "FAILED"
    [failed] = distinct(published(runtime, "notification")).values()
    assert failed.json()["data"]["kind"] == "build.failed"


def test_poll_run_skips_a_build_cloud_build_no_longer_knows(runtime: Runtime) -> None:
    start_trainer_build(runtime)
    fakes(runtime).builds.faults.fail_next("get", NotFound("build gone"))

    assert poll_run(runtime, current_run(runtime)) == []
    assert published(runtime) == []


def test_poll_run_lets_a_transient_error_through_for_the_next_tick(runtime: Runtime) -> None:
    start_trainer_build(runtime)
    fakes(runtime).builds.faults.fail_next("get", TransientError("UNAVAILABLE"))

    with pytest.raises(TransientError):
        poll_run(runtime, current_run(runtime))


def test_a_build_status_for_a_run_never_recorded_creates_it_from_the_build(runtime: Runtime) -> None:
    # The push's holder started the build and crashed before its step reached the ledger.
    from shared.ports.builds_fake import FakeOutcome

    build_id = start_trainer_build(runtime)
    build = fakes(runtime).builds.finish(build_id, FakeOutcome(BuildStatus.FAILURE))
    with fake_runtime() as fresh:
        _, result = settle(fresh, BuildFacts.from_build(build))

        assert result is not None and result.outcome is Outcome.DONE
        run = fresh.ledger.get_run(RUN_ID)
        assert run is not None and run.status.value == "FAILED"
        assert run.cause["repo"] == REPO and run.cause["commit"] == COMMIT
        assert run.cause["images"] == ["trainer"]
