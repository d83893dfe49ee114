"""``on_training_state`` in-process through functions-framework with fakes: gates, registry, approval."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from shared.chain import evaluation
from shared.chain.contracts import Cause, GitContext, TrainingState
from shared.events import approval_decision
from shared.ledger import RunStatus, StepStatus
from shared.ports.registry import ModelUpload
from tests.functional.chain.training_support import (
    ARTIFACTS,
    COMMIT,
    PROJECT,
    SERVING_IMAGE,
    World,
    chain_config,
    client,
    deliver,
    world,
)

pytestmark = pytest.mark.functional

TOPIC = "mlops-training-states"
RUN = "push-acme-churn-0123456789ab"
JOB = f"projects/{PROJECT}/locations/us-central1/customJobs/42"
OUTPUT = f"gs://{ARTIFACTS}/runs/{RUN}/model/"
TOLERANT_GATES = [{"metric": "accuracy", "direction": "higher", "min": 0.8, "tolerance": 0.02}]


@pytest.fixture
def env() -> Iterator[World]:
    with world() as current:
        yield current


@pytest.fixture
def function() -> Any:
    return client("on_training_state")


def finished(state: str = "SUCCEEDED", error: str = "") -> TrainingState:
    return TrainingState(
        model="churn",
        job=JOB,
        state=state,
        cause=Cause.PUSH,
        output_dir=OUTPUT,
        error=error,
        image="us-docker.pkg.dev/demo-project/mlops/trainer@sha256:" + "a" * 64,
        data_uris=("gs://demo-data/churn/a.csv",),
        git=GitContext("acme/churn", COMMIT, "main"),
    )


def wrote_metrics(env: World, run_id: str = RUN, **metrics: Any) -> None:
    """What the trainer leaves in its model directory."""
    body = {"rows_train": 300, "features": ["f1", "f2"], "data": "gs://demo-data/churn/a.csv", **metrics}
    env.ports.objects.write(ARTIFACTS, f"runs/{run_id}/model/metrics.json", json.dumps(body))


def send(function: Any, state: TrainingState, run_id: str = RUN, message_id: str = "2001") -> Any:
    return deliver(function, TOPIC, "training.state", run_id, state.to_json(), f"state-{run_id}", message_id)


def crowned(env: World, metadata: dict[str, Any]) -> None:
    """A champion registered by hand (not by this pipeline), with its numbers in its metadata."""
    version = env.ports.registry.upload(ModelUpload("churn", "churn", "gs://hand/model/", metadata=metadata))
    env.ports.registry.merge_aliases("churn", version.version_id, add=["champion"])


def test_good_metrics_register_one_candidate_and_request_approval(env: World, function: Any) -> None:
    wrote_metrics(env, accuracy=0.91, f1_macro=0.9)
    first = send(function, finished())
    second = send(function, finished(), message_id="2002")
    assert (first.status_code, second.status_code) == (200, 200)
    [version] = env.ports.registry.list_versions("churn")
    assert version.labels == {"run-id": RUN, "cause": "push", "git-commit": COMMIT[:12]}
    assert "candidate" in version.aliases
    assert version.artifact_uri == OUTPUT and version.serving_image == SERVING_IMAGE
    assert version.metadata == {"metrics": {"accuracy": 0.91, "f1_macro": 0.9, "rows_train": 300.0}}
    requests = env.notifications("approval.requested")
    assert len({body["event_id"] for body in requests}) == 1  # re-published, same event: delivered once
    text = requests[0]["data"]["text"]
    assert f"publish an approval decision on projects/{PROJECT}/topics/mlops-approvals" in text
    assert "accuracy" in text and "0.91" in text
    assert requests[0]["data"]["context"]["version"] == version.version_id
    run = env.ledger.get_run(RUN)
    assert run is not None and run.status is RunStatus.RUNNING  # the approval continues it
    gate = run.step(evaluation.GATE)
    assert gate is not None and gate.detail["result"]["passed"] is True
    assert env.step(RUN, evaluation.REGISTERED).detail["result"]["version"] == version.version_id
    assert env.messages("mlops-approvals") == []  # manual policy: nothing approves by itself


def test_the_instructions_publish_a_valid_approval_decision() -> None:
    text = evaluation.how_to_approve(chain_config(), RUN, "churn", "3")
    message = text.split("--message '", 1)[1].split("'", 1)[0]
    decision = approval_decision(json.loads(message))
    assert (decision.run_id, decision.model, decision.version, decision.approved) == (RUN, "churn", "3", True)


def test_below_the_gate_notifies_with_the_numbers_and_fails_the_run(env: World, function: Any) -> None:
    wrote_metrics(env, accuracy=0.62)
    assert send(function, finished()).status_code == 200
    assert env.ports.registry.list_versions("churn") == []
    [rejected] = env.notifications("training.gate_failed")
    assert "accuracy: 0.62 is below the minimum 0.8" in rejected["data"]["text"]
    assert rejected["data"]["context"]["metrics"]["accuracy"] == 0.62
    run = env.ledger.get_run(RUN)
    assert run is not None and run.status is RunStatus.FAILED
    assert env.step(RUN, evaluation.GATE).detail["result"]["passed"] is False
    assert env.notifications("approval.requested") == []


@pytest.mark.parametrize(
    ("candidate", "passes"),
    [(0.94, True), (0.93, True), (0.92, False)],
)
def test_the_champion_read_back_from_the_registry_is_compared_with_tolerance(
    function: Any, candidate: float, passes: bool
) -> None:
    with world(chain_config(gates=TOLERANT_GATES)) as env:
        crowned(env, {"accuracy": 0.95})  # a hand-registered champion: flat numbers in its metadata
        wrote_metrics(env, accuracy=candidate)
        assert send(function, finished()).status_code == 200
        registered = env.ports.registry.find_versions("churn", {"run-id": RUN})
        assert bool(registered) is passes
        run = env.ledger.get_run(RUN)
        assert run is not None
        assert run.status is (RunStatus.RUNNING if passes else RunStatus.FAILED)
        gate = run.step(evaluation.GATE)
        assert gate is not None and gate.detail["result"]["champion"].endswith("/models/churn@1")
        if passes:
            assert "0.95" in env.notifications("approval.requested")[0]["data"]["text"]
        else:
            [rejected] = env.notifications("training.gate_failed")
            assert "worse than the champion's 0.95 (needs >= 0.93)" in rejected["data"]["text"]


def test_a_champion_registered_by_this_pipeline_is_read_from_its_metrics_metadata(
    function: Any,
) -> None:
    with world(chain_config(gates=TOLERANT_GATES)) as env:
        crowned(env, {"metrics": {"accuracy": 0.99}})
        wrote_metrics(env, accuracy=0.9)
        send(function, finished())
        assert (
            "worse than the champion's 0.99" in env.notifications("training.gate_failed")[0]["data"]["text"]
        )


def test_a_failed_job_is_announced_with_its_error_and_fails_the_run(env: World, function: Any) -> None:
    assert send(function, finished("FAILED", "trainer: need at least 10 rows, got 3")).status_code == 200
    [announced] = env.notifications("training.failed")
    assert "trainer: need at least 10 rows, got 3" in announced["data"]["text"]
    assert announced["data"]["severity"] == "error"
    run = env.ledger.get_run(RUN)
    assert run is not None and run.status is RunStatus.FAILED
    assert env.step(RUN, evaluation.JOB_FAILED).status is StepStatus.SUCCEEDED
    assert env.ports.registry.list_versions("churn") == []


def test_a_cancelled_job_fails_the_run_too(env: World, function: Any) -> None:
    send(function, finished("CANCELLED"))
    assert "ended CANCELLED" in env.notifications("training.failed")[0]["data"]["title"]
    run = env.ledger.get_run(RUN)
    assert run is not None and run.status is RunStatus.FAILED


def test_missing_metrics_fail_the_run_with_a_notification(env: World, function: Any) -> None:
    assert send(function, finished()).status_code == 200
    run = env.ledger.get_run(RUN)
    assert run is not None and run.status is RunStatus.FAILED
    assert env.step(RUN, evaluation.GATE).status is StepStatus.FAILED
    [announced] = env.notifications("training.failed")
    assert "metrics.json" in announced["data"]["text"]


def test_a_version_registered_by_an_earlier_attempt_is_not_uploaded_again(env: World, function: Any) -> None:
    wrote_metrics(env, accuracy=0.9)
    earlier = env.ports.registry.upload(
        ModelUpload("churn", "churn", OUTPUT, labels={"run-id": RUN}, aliases=("candidate",))
    )
    assert send(function, finished()).status_code == 200
    assert env.ports.registry.list_versions("churn") == [earlier]
    assert env.step(RUN, evaluation.REGISTERED).detail["result"]["version"] == earlier.version_id


def test_auto_approval_publishes_the_approval_decision_contract(function: Any) -> None:
    with world(chain_config(approval="auto")) as env:
        wrote_metrics(env, accuracy=0.9)
        send(function, finished())
        send(function, finished(), message_id="2002")
        [version] = env.ports.registry.list_versions("churn")
        [message] = env.messages("mlops-approvals")  # once: the second delivery finds the step done
        decision = approval_decision(message.json())  # exactly the shape humans publish
        assert (decision.run_id, decision.model, decision.version) == (RUN, "churn", version.version_id)
        assert decision.approved and decision.approver == evaluation.AUTO_APPROVER and decision.nonce
        assert message.attributes["type"] == "approval.decision"
        assert env.notifications("approval.requested") == []
        assert len(env.notifications("model.registered")) == 2  # same event twice: delivered once
        run = env.ledger.get_run(RUN)
        assert run is not None and run.status is RunStatus.RUNNING


def test_a_data_run_version_has_no_commit_label(env: World, function: Any) -> None:
    run_id = "data-churn-b1"
    wrote_metrics(env, run_id, accuracy=0.9)
    state = TrainingState(
        model="churn",
        job=JOB,
        state="SUCCEEDED",
        cause=Cause.DATA,
        output_dir=f"gs://{ARTIFACTS}/runs/{run_id}/model/",
    )
    send(function, state, run_id)
    [version] = env.ports.registry.list_versions("churn")
    assert version.labels == {"run-id": run_id, "cause": "data"}
