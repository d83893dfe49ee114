"""The decision over fakes: who may decide, which candidate may be decided on, one rollout each."""

from __future__ import annotations

import pytest

from shared.approval.decide import Channel, DecisionRefused, Refusal, allowed, decide, newer_candidates
from shared.chain.evaluation import AUTO_APPROVER, approval_body
from shared.chainconfig import ModelSpec
from shared.events import approval_decision
from shared.ledger import RunStatus, StepStatus
from shared.ports.registry import ModelUpload
from tests.functional.approval.support import (
    BUILT_SERVER,
    RUN,
    SERVICE,
    approval_config,
    decision_body,
    register_candidate,
    rollouts,
)
from tests.functional.chain.training_support import NOW, World, world

pytestmark = pytest.mark.unit


def model_spec(approvers: list[str], approval: str = "manual") -> ModelSpec:
    spec = approval_config(approvers=approvers, approval=approval).chain.model("churn")
    assert spec is not None
    return spec


@pytest.mark.parametrize(
    ("approvers", "identities", "expected"),
    [
        ([], ["anyone"], True),
        (["alice@example.com"], ["ALICE@example.com"], True),
        (["alice@example.com"], ["bob@example.com"], False),
        (["*@example.com"], ["bob@example.com"], True),
        (["*@example.com"], ["bob@example.org"], False),
        (["slack:U0ALICE"], ["slack:U0BOB", "slack:bob"], False),
        (["slack:U0ALICE"], ["slack:U0ALICE", "slack:alice"], True),
    ],
)
def test_the_allow_list(approvers: list[str], identities: list[str], expected: bool) -> None:
    assert allowed(model_spec(approvers), identities) is expected


def test_the_automatic_approver_only_under_policy_auto() -> None:
    assert allowed(model_spec([], "auto"), [AUTO_APPROVER]) is True
    assert allowed(model_spec([], "manual"), [AUTO_APPROVER]) is False
    assert allowed(model_spec(["alice"], "auto"), [AUTO_APPROVER]) is True


def test_newer_candidates_are_labelled_versions_after_ours() -> None:
    with world(approval_config()) as env:
        first = register_candidate(env)
        hand = env.ports.registry.upload(ModelUpload("churn", "churn", "gs://hand/model/"))  # not a candidate
        assert newer_candidates(env.ports.registry.list_versions("churn"), first.version_id) == []
        second = register_candidate(env, "data-churn-b2")
        found = newer_candidates(env.ports.registry.list_versions("churn"), first.version_id)
        assert [v.version_id for v in found] == [second.version_id] and hand.version_id != second.version_id


def refused(env: World, body: dict[str, str], refusal: Refusal, *identities: str) -> str:
    with pytest.raises(DecisionRefused) as caught:
        decide(env.runtime, approval_decision(body), Channel.PUBSUB, identities)
    assert caught.value.refusal is refusal
    return str(caught.value)


def nothing_happened(env: World) -> None:
    assert rollouts(env) == []
    assert env.run(RUN).step("approval:decided") is None


def test_an_approval_requests_one_rollout_with_the_runs_server_image() -> None:
    with world(approval_config()) as env:
        version = register_candidate(env)
        decided = decide(env.runtime, approval_decision(decision_body(version.version_id)), Channel.PUBSUB)
        assert decided.rollout_requested and not decided.duplicate
        [event] = rollouts(env)
        assert event["run_id"] == RUN and event["type"] == "rollout.requested"
        assert event["data"] == {
            "service": SERVICE,
            "model": "churn",
            "version": version.version_id,
            "version_resource": version.resource_name,
            "artifact_uri": version.artifact_uri,
            "image": BUILT_SERVER,
            "cause": "approval",
            "approved_by": "alice",
            "nonce": "n-1",
        }
        step = env.step(RUN, "approval:decided")
        assert step.status is StepStatus.SUCCEEDED
        assert {k: step.detail["result"][k] for k in ("decision", "approver", "channel")} == {
            "decision": "approve",
            "approver": "alice",
            "channel": "pubsub",
        }
        assert len(env.notifications("approval.approved")) == 1


def test_a_double_decision_starts_one_rollout_and_says_so() -> None:
    with world(approval_config()) as env:
        version = register_candidate(env)
        decide(env.runtime, approval_decision(decision_body(version.version_id)), Channel.SLACK)
        again = decide(
            env.runtime,
            approval_decision(decision_body(version.version_id, approver="bob", nonce="n-2")),
            Channel.PUBSUB,
        )
        assert again.duplicate and "already approved by alice" in again.message
        assert len({event["event_id"] for event in rollouts(env)}) == 1


def test_the_automatic_approval_nonce_is_accepted_under_policy_auto() -> None:
    with world(approval_config(approval="auto")) as env:
        version = register_candidate(env)
        body = approval_body(RUN, "churn", version.version_id, NOW)
        decision = approval_decision(body)
        decided = decide(env.runtime, decision, Channel.POLICY)
        assert decided.rollout_requested
        [event] = rollouts(env)
        assert event["data"]["approved_by"] == AUTO_APPROVER and event["data"]["nonce"] == body["nonce"]


def test_the_automatic_approver_is_refused_for_a_manual_model() -> None:
    with world(approval_config()) as env:
        version = register_candidate(env)
        body = approval_body(RUN, "churn", version.version_id, NOW)
        assert "needs a human approval" in refused(env, body, Refusal.NOT_ALLOWED)
        nothing_happened(env)


def test_an_approver_off_the_list_changes_nothing() -> None:
    with world(approval_config(approvers=["alice@example.com"])) as env:
        version = register_candidate(env)
        body = decision_body(version.version_id, approver="mallory@example.com")
        assert "mallory@example.com may not decide" in refused(env, body, Refusal.NOT_ALLOWED)
        nothing_happened(env)
        assert "candidate" in env.ports.registry.list_versions("churn")[0].aliases


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"version": "9"}, "no version 9 of model churn"),
        ({"model": "fraud"}, "no model 'fraud'"),
        ({"run_id": "data-churn-other"}, "is not run data-churn-other's candidate"),
    ],
)
def test_an_unknown_candidate_is_refused(change: dict[str, str], expected: str) -> None:
    with world(approval_config()) as env:
        version = register_candidate(env)
        body = {**decision_body(version.version_id), **change}
        assert expected in refused(env, body, Refusal.UNKNOWN)
        nothing_happened(env)


def test_a_superseded_candidate_is_refused_with_the_newer_one_named() -> None:
    with world(approval_config()) as env:
        old = register_candidate(env)
        newer = register_candidate(env, "data-churn-b2")
        message = refused(env, decision_body(old.version_id), Refusal.SUPERSEDED)
        assert f"superseded by version {newer.version_id} (run data-churn-b2)" in message
        nothing_happened(env)


def test_a_rejection_marks_the_candidate_and_cancels_the_run_then_an_approval_is_refused() -> None:
    with world(approval_config()) as env:
        version = register_candidate(env)
        decided = decide(
            env.runtime, approval_decision(decision_body(version.version_id, decision="reject")), Channel.CLI
        )
        assert not decided.rollout_requested and "rejected" in decided.message
        [stored] = env.ports.registry.list_versions("churn")
        assert "candidate" not in stored.aliases and f"rejected-{version.version_id}" in stored.aliases
        assert env.run(RUN).status is RunStatus.CANCELLED
        [told] = env.notifications("approval.rejected")
        assert told["data"]["severity"] == "warning" and "looks good" in told["data"]["text"]
        message = refused(env, decision_body(version.version_id, nonce="n-2"), Refusal.ALREADY_DECIDED)
        assert "already rejected by alice" in message
        assert rollouts(env) == []


def test_an_ended_run_without_a_decision_is_refused() -> None:
    with world(approval_config()) as env:
        version = register_candidate(env)
        env.ledger.finish_run(RUN, RunStatus.FAILED)
        assert "has ended (FAILED)" in refused(
            env, decision_body(version.version_id), Refusal.ALREADY_DECIDED
        )


def test_no_service_for_the_model_records_the_approval_and_rolls_nothing_out() -> None:
    config = approval_config(services=[])
    with world(config) as env:
        version = register_candidate(env)
        decided = decide(env.runtime, approval_decision(decision_body(version.version_id)), Channel.PUBSUB)
        assert (
            not decided.rollout_requested
            and "no service in spec.services serves model churn" in decided.message
        )
        assert rollouts(env) == [] and env.step(RUN, "approval:decided").status is StepStatus.SUCCEEDED


def test_without_a_server_image_on_the_run_the_newest_built_one_is_used() -> None:
    with world(approval_config()) as env:
        version = register_candidate(env, server_image="")
        env.ledger.put_doc("pointers", "image-server", {"image": BUILT_SERVER.replace("b" * 64, "c" * 64)})
        decide(env.runtime, approval_decision(decision_body(version.version_id)), Channel.PUBSUB)
        assert rollouts(env)[0]["data"]["image"].endswith("c" * 64)
