"""``start_training`` in-process through functions-framework with fakes, and the reconciler's ``poll_run``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from shared.chain import training
from shared.chain.contracts import Cause, GitContext, TrainingRequested, parse_training_state
from shared.events import Envelope
from shared.ledger import RunStatus, StepStatus, payload_hash
from shared.ports.training import JobState, TrainingJobSpec
from shared.ports.training_fake import FakeJobOutcome
from tests.functional.chain.training_support import (
    ARTIFACTS,
    COMMIT,
    DATA,
    DEFAULT_IMAGE,
    World,
    chain_config,
    client,
    deliver,
    world,
)

pytestmark = pytest.mark.functional

TOPIC = "mlops-training-requests"
RUN = "data-churn-b1"
URIS = ("gs://demo-data/churn/a.csv", "gs://demo-data/churn/b.csv")


@pytest.fixture
def env() -> Iterator[World]:
    with world() as current:
        yield current


@pytest.fixture
def function() -> Any:
    return client("start_training")


def request(**overrides: Any) -> TrainingRequested:
    fields: dict[str, Any] = {"model": "churn", "cause": Cause.DATA, "data_uris": URIS, "dataset": "churn"}
    return TrainingRequested(**{**fields, **overrides})


def send(function: Any, run_id: str, wanted: TrainingRequested, message_id: str = "1001") -> Any:
    return deliver(
        function, TOPIC, "training.requested", run_id, wanted.to_json(), f"evt-{run_id}", message_id
    )


def test_delivered_twice_submits_one_job_with_the_exact_data(env: World, function: Any) -> None:
    first = send(function, RUN, request())
    second = send(function, RUN, request(), message_id="1002")
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.get_data(as_text=True) == "done"
    [spec] = env.ports.training.submitted
    assert spec.image_uri == DEFAULT_IMAGE  # no image requested, none built: the config's default
    assert spec.args == ("--data", URIS[0], "--data", URIS[1])
    assert spec.labels == {"run-id": RUN, "model": "churn", "cause": "data"}
    assert RUN in spec.display_name
    assert spec.machine.machine_type == "n1-highmem-8"
    assert spec.service_account == "trainer@demo-project.iam.gserviceaccount.com"
    assert spec.base_output_dir == f"gs://{ARTIFACTS}/runs/{RUN}/"
    run = env.ledger.get_run(RUN)
    assert run is not None and run.status is RunStatus.RUNNING
    step = run.step(training.SUBMITTED)
    assert step is not None and step.status is StepStatus.SUCCEEDED
    [job] = env.ports.training.find_by_label("run-id", RUN)
    assert step.detail["result"]["job"] == job.name
    assert step.detail["result"]["image"] == DEFAULT_IMAGE
    assert step.detail["result"]["data_uris"] == list(URIS)
    assert step.detail["result"]["output_dir"] == f"gs://{ARTIFACTS}/runs/{RUN}/model/"
    # The "training started" notice is re-published with the same event id: notify delivers it once.
    notices = env.notifications("training.requested")
    assert len(notices) == 2 and notices[0]["event_id"] == notices[1]["event_id"]


def test_a_crash_after_the_create_call_finds_the_job_instead_of_submitting_again(
    env: World, function: Any
) -> None:
    wanted = request()
    # A previous holder submitted the job, then died before completing its claim (released: attempt 2).
    step = training.submit_step(env.runtime, RUN, wanted)
    claim = env.ledger.claim(step.key, payload_hash(dict(step.payload)), 60, 3600)
    assert claim.token is not None
    plan_spec = TrainingJobSpec(
        display_name=f"train-{RUN}",
        image_uri="us-docker.pkg.dev/demo-project/mlops/trainer@sha256:" + "a" * 64,
        args=("--data", URIS[0], "--data", URIS[1]),
        labels={"run-id": RUN, "model": "churn", "cause": "data"},
        base_output_dir=f"gs://{ARTIFACTS}/runs/{RUN}/",
    )
    earlier = env.ports.training.submit(plan_spec)
    env.ledger.release(step.key, claim.token)
    assert send(function, RUN, wanted).status_code == 200
    assert len(env.ports.training.submitted) == 1  # only the earlier job
    run = env.ledger.get_run(RUN)
    assert run is not None
    result = env.step(RUN, training.SUBMITTED).detail["result"]
    assert result["job"] == earlier.name and result["reused"] is True
    assert result["image"] == plan_spec.image_uri and result["data_uris"] == list(URIS)


def test_a_job_found_after_a_crash_reports_the_data_of_its_manifest(env: World, function: Any) -> None:
    uris = tuple(f"gs://{DATA}/churn/part-{index:04d}.csv" for index in range(training.MAX_ARG_URIS + 1))
    wanted = request(data_uris=uris)
    step = training.submit_step(env.runtime, RUN, wanted)
    claim = env.ledger.claim(step.key, payload_hash(dict(step.payload)), 60, 3600)
    assert claim.token is not None
    env.ports.objects.write(ARTIFACTS, f"runs/{RUN}/data-uris.txt", "\n".join(uris) + "\n")
    env.ports.training.submit(
        TrainingJobSpec(
            display_name=f"train-{RUN}",
            image_uri=DEFAULT_IMAGE,
            args=("--data-list", f"gs://{ARTIFACTS}/runs/{RUN}/data-uris.txt"),
            labels={"run-id": RUN, "model": "churn", "cause": "data"},
            base_output_dir=f"gs://{ARTIFACTS}/runs/{RUN}/",
        )
    )
    env.ledger.release(step.key, claim.token)
    assert send(function, RUN, wanted).status_code == 200
    assert len(env.ports.training.submitted) == 1
    result = env.step(RUN, training.SUBMITTED).detail["result"]
    assert result["data_count"] == len(uris) and result["manifest"].endswith("/data-uris.txt")


def test_the_requested_image_wins_then_the_newest_built_then_the_default(env: World, function: Any) -> None:
    built = "us-docker.pkg.dev/demo-project/mlops/trainer@sha256:" + "b" * 64
    env.ledger.put_doc("pointers", "image-trainer", {"image": built, "built_at": "2026-11-22T09:00:00Z"})
    requested = "us-docker.pkg.dev/demo-project/mlops/trainer@sha256:" + "c" * 64
    send(function, "data-churn-b2", request(image=requested))
    send(function, "data-churn-b3", request())
    images = [spec.image_uri for spec in env.ports.training.submitted]
    assert images == [requested, built]


def test_a_push_without_data_trains_on_the_datasets_current_validated_objects(
    env: World, function: Any
) -> None:
    names = (
        "churn/one.csv",
        "churn/two.csv",
        "churn/unvalidated.csv",
        "quarantine/churn/bad.csv",
        "other/x.csv",
    )
    for name in names:
        env.ports.objects.write(DATA, name, "f1,label\n1,yes\n")
    # on_data_object's member documents: what was validated (gone.csv was validated, then deleted).
    for index, name in enumerate(("churn/one.csv", "churn/two.csv", "churn/gone.csv")):
        env.ledger.put_doc(
            "members", f"m{index}", {"dataset": "churn", "uri": f"gs://{DATA}/{name}", "batched": True}
        )
    run_id = "push-demo-0123456789ab"
    pushed = request(cause=Cause.PUSH, data_uris=(), dataset="", git=GitContext("acme/churn", COMMIT, "main"))
    assert send(function, run_id, pushed).status_code == 200
    [spec] = env.ports.training.submitted
    assert spec.args == ("--data", f"gs://{DATA}/churn/one.csv", "--data", f"gs://{DATA}/churn/two.csv")
    assert spec.labels["cause"] == "push"
    run = env.ledger.get_run(run_id)
    assert run is not None and run.cause["commit"] == COMMIT


def test_a_large_batch_goes_to_the_trainer_as_a_manifest(env: World, function: Any) -> None:
    uris = tuple(f"gs://{DATA}/churn/part-{index:04d}.csv" for index in range(training.MAX_ARG_URIS + 1))
    assert send(function, RUN, request(data_uris=uris)).status_code == 200
    [spec] = env.ports.training.submitted
    manifest = f"gs://{ARTIFACTS}/runs/{RUN}/data-uris.txt"
    assert spec.args == ("--data-list", manifest)
    listed = env.ports.objects.read_text(ARTIFACTS, f"runs/{RUN}/data-uris.txt").split()
    assert tuple(listed) == uris


def test_no_data_fails_the_run_with_a_notification_and_no_job(env: World, function: Any) -> None:
    assert send(function, RUN, request(cause=Cause.DRIFT, data_uris=())).status_code == 200
    assert env.ports.training.submitted == []
    run = env.ledger.get_run(RUN)
    assert run is not None and run.status is RunStatus.FAILED
    assert env.step(RUN, training.SUBMITTED).status is StepStatus.FAILED
    [failed] = env.notifications("training.failed")
    assert "no data to train on" in failed["data"]["text"]


def test_a_pipeline_job_model_is_refused_naming_the_missing_port_support(function: Any) -> None:
    config = chain_config(
        trainer={"image": DEFAULT_IMAGE, "kind": "pipeline_job", "pipelineTemplate": "gs://t/p.json"}
    )
    with world(config) as current:
        assert send(function, RUN, request()).status_code == 200
        assert current.ports.training.submitted == []
        [failed] = current.notifications("training.failed")
        assert "no PipelineJob support" in failed["data"]["text"]
        run = current.ledger.get_run(RUN)
        assert run is not None and run.status is RunStatus.FAILED


def test_an_unknown_model_fails_the_run(env: World, function: Any) -> None:
    assert send(function, RUN, request(model="nope")).status_code == 200
    run = env.ledger.get_run(RUN)
    assert run is not None and run.status is RunStatus.FAILED
    assert "no model 'nope'" in env.notifications("training.failed")[0]["data"]["text"]


def test_a_malformed_request_is_rejected_and_acknowledged(env: World, function: Any) -> None:
    response = deliver(function, TOPIC, "training.requested", RUN, {"cause": "whim"})
    assert (response.status_code, response.get_data(as_text=True)) == (200, "rejected")
    [rejected] = env.ledger.list_rejected()
    assert any("model" in problem for problem in rejected.problems)
    assert env.ports.training.submitted == []


# -- poll_run: the reconciler learns how the job ended ------------------------------------------------------


def test_poll_run_emits_one_training_state_when_the_job_ends(env: World, function: Any) -> None:
    send(function, RUN, request(git=GitContext("acme/churn", COMMIT, "main")))
    run = env.ledger.get_run(RUN)
    assert run is not None
    assert training.poll_run(env.runtime, run) == []  # queued: nothing to say yet
    [job] = env.ports.training.find_by_label("run-id", RUN)
    env.ports.training.finish(job.name)
    assert training.poll_run(env.runtime, run) == [f"training.state SUCCEEDED for {job.name}"]
    # An overlapping tick that read the run before the first one recorded the end: the claim holds.
    training.poll_run(env.runtime, run)
    assert training.poll_run(env.runtime, env.run(RUN)) == []
    events = env.events("mlops-training-states")
    assert len({event["event_id"] for event in events}) == 1
    state = parse_training_state(Envelope(**{k: v for k, v in events[0].items() if k != "occurred_at"}))
    assert (state.job, state.state, state.model, state.cause) == (job.name, "SUCCEEDED", "churn", Cause.DATA)
    assert state.output_dir == f"gs://{ARTIFACTS}/runs/{RUN}/model/"
    assert state.data_uris == URIS and state.git.commit == COMMIT and state.image == DEFAULT_IMAGE
    finished = env.step(RUN, training.FINISHED)
    assert finished is not None and finished.detail["result"]["state"] == "SUCCEEDED"


def test_poll_run_reports_a_failed_job_with_its_error(env: World, function: Any) -> None:
    send(function, RUN, request())
    [job] = env.ports.training.find_by_label("run-id", RUN)
    env.ports.training.finish(job.name, FakeJobOutcome(JobState.FAILED, "trainer: need at least 10 rows"))
    run = env.ledger.get_run(RUN)
    assert run is not None
    assert training.poll_run(env.runtime, run) == [f"training.state FAILED for {job.name}"]
    [event] = env.events("mlops-training-states")
    assert event["data"]["state"] == "FAILED"
    assert event["data"]["error"] == "trainer: need at least 10 rows"


def test_poll_run_ignores_runs_without_a_submitted_job(env: World) -> None:
    env.ledger.start_run("push-x-0123456789ab", cause={"cause": "push"})
    run = env.ledger.get_run("push-x-0123456789ab")
    assert run is not None
    assert training.poll_run(env.runtime, run) == []
    assert env.publisher.messages == []
