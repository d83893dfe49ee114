"""``on_approval`` in-process through functions-framework: the approvals topic → one rollout per decision."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from shared.chain.evaluation import approval_body
from shared.operator.cli import main as operator
from tests.functional.approval.support import (
    APPROVALS,
    RUN,
    approval_config,
    decision_body,
    register_candidate,
    rollouts,
)
from tests.functional.chain.training_support import NOW, PROJECT, PUBLISHED, World, client, world
from tests.helpers import push_envelope

pytestmark = pytest.mark.functional


@pytest.fixture
def env() -> Iterator[World]:
    with world(approval_config(approvers=["alice", "policy:*"])) as current:
        yield current


@pytest.fixture
def function() -> Any:
    return client("on_approval")


def publish(function: Any, body: dict[str, Any], message_id: str = "3001") -> Any:
    attributes = {"type": "approval.decision", "run_id": body.get("run_id", "")}
    push = push_envelope(json.dumps(body), attributes, message_id=message_id, publish_time=PUBLISHED)
    return function.post(f"/projects/{PROJECT}/topics/{APPROVALS}", json=push)


def test_a_decision_delivered_twice_requests_one_rollout(env: World, function: Any) -> None:
    version = register_candidate(env)
    body = decision_body(version.version_id)
    first, second = publish(function, body), publish(function, body, message_id="3002")
    assert (first.status_code, second.status_code) == (200, 200)
    assert (first.get_data(as_text=True), second.get_data(as_text=True)) == ("done", "done")
    [event] = rollouts(env)
    assert event["data"]["version"] == version.version_id and event["data"]["cause"] == "approval"
    assert env.step(RUN, "approval:decided").detail["result"]["channel"] == "pubsub"


def test_an_approver_off_the_list_is_recorded_as_rejected_and_changes_nothing(
    env: World, function: Any
) -> None:
    version = register_candidate(env)
    response = publish(function, decision_body(version.version_id, approver="mallory"))
    assert (response.status_code, response.get_data(as_text=True)) == (200, "rejected")
    assert rollouts(env) == [] and env.run(RUN).step("approval:decided") is None
    [record] = env.ledger.list_rejected()
    assert record.reason == "unauthorized" and "mallory may not decide" in record.problems[0]


def test_a_malformed_decision_is_rejected(env: World, function: Any) -> None:
    response = publish(function, {"run_id": RUN, "decision": "maybe"})
    assert response.get_data(as_text=True) == "rejected"
    [record] = env.ledger.list_rejected()
    assert record.reason == "invalid" and any("decision" in problem for problem in record.problems)


def test_the_automatic_approval_rolls_out_under_policy_auto(function: Any) -> None:
    with world(approval_config(approval="auto")) as env:
        version = register_candidate(env)
        body = approval_body(RUN, "churn", version.version_id, NOW)
        assert publish(function, body).get_data(as_text=True) == "done"
        assert publish(function, body, message_id="3002").get_data(as_text=True) == "done"
        [event] = rollouts(env)
        assert event["data"]["approved_by"] == "policy:auto"
        assert env.step(RUN, "approval:decided").detail["result"]["channel"] == "policy"


def test_the_operator_approve_publishes_the_contract_that_on_approval_applies(
    env: World, function: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    version = register_candidate(env)
    assert operator(["approve", RUN, "--by", "alice", "--reason", "ship it"]) == 0
    [message] = env.messages(APPROVALS)
    body = message.json()
    assert {
        k: body[k] for k in ("run_id", "model", "version", "decision", "approver", "reason", "channel")
    } == {
        "run_id": RUN,
        "model": "churn",
        "version": version.version_id,
        "decision": "approve",
        "approver": "alice",
        "reason": "ship it",
        "channel": "cli",
    }
    assert body["nonce"].startswith("cli-") and message.attributes["type"] == "approval.decision"
    assert json.loads(capsys.readouterr().out)["topic"] == APPROVALS
    assert publish(function, body).get_data(as_text=True) == "done"  # the same path as any decision
    assert len(rollouts(env)) == 1
    assert env.step(RUN, "approval:decided").detail["result"]["channel"] == "cli"


def test_the_operator_reject_publishes_a_rejection(env: World, capsys: pytest.CaptureFixture[str]) -> None:
    register_candidate(env)
    assert operator(["reject", RUN, "--by", "alice"]) == 0
    [message] = env.messages(APPROVALS)
    assert message.json()["decision"] == "reject"


def test_the_operator_refuses_a_run_without_a_candidate(
    env: World, capsys: pytest.CaptureFixture[str]
) -> None:
    assert operator(["approve", "push-nope-000000000000", "--by", "alice"]) == 2
    assert "no run 'push-nope-000000000000'" in capsys.readouterr().err
    assert env.messages(APPROVALS) == []
