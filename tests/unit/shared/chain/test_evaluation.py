"""The pure pieces of ``shared.chain.evaluation``: metrics, the champion's numbers, labels, approvals."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from shared.chain import evaluation
from shared.chain.contracts import Cause, GitContext, TrainingState
from shared.errors import InvalidInput
from shared.events import approval_decision
from shared.ports.registry import ModelVersion
from shared.publisher import encode

pytestmark = pytest.mark.unit

SHA = "ABCDEF0123456789abcdef0123456789abcdef01"


def state(cause: Cause, commit: str = "") -> TrainingState:
    return TrainingState("churn", "jobs/1", "SUCCEEDED", cause, git=GitContext("acme/churn", commit, "main"))


def test_only_finite_numbers_are_metrics() -> None:
    raw = {
        "accuracy": 0.9,
        "rows": 300,
        "ok": True,
        "features": ["f1"],
        "data": "gs://x",
        "nan": float("nan"),
    }
    assert evaluation.numeric_metrics(raw) == {"accuracy": 0.9, "rows": 300.0}


def test_the_champions_metrics_come_from_its_metadata() -> None:
    def version(metadata: dict[str, object]) -> ModelVersion:
        return ModelVersion("projects/p/locations/l/models/churn", "1", "churn", metadata=metadata)

    assert evaluation.champion_metrics(None) is None
    assert evaluation.champion_metrics(version({"metrics": {"accuracy": 0.9}})) == {"accuracy": 0.9}
    assert evaluation.champion_metrics(version({"accuracy": 0.8, "note": "by hand"})) == {"accuracy": 0.8}
    assert evaluation.champion_metrics(version({})) == {}


def test_metrics_are_read_beside_the_model() -> None:
    assert evaluation.metrics_location("gs://art/runs/r/model/") == ("art", "runs/r/model/metrics.json")
    assert evaluation.metrics_location("gs://art/runs/r/model") == ("art", "runs/r/model/metrics.json")
    with pytest.raises(InvalidInput, match="output_dir"):
        evaluation.metrics_location("")


@pytest.mark.parametrize("text", ["not json", "[1, 2]"])
def test_unreadable_metrics_are_a_permanent_error(text: str) -> None:
    with pytest.raises(InvalidInput, match=r"metrics\.json"):
        evaluation.parse_metrics(text, "gs://art/runs/r/model/metrics.json")


def test_version_labels_carry_the_commit_only_for_a_push() -> None:
    assert evaluation.version_labels("push-r", state(Cause.PUSH, SHA)) == {
        "run-id": "push-r",
        "cause": "push",
        "git-commit": "abcdef012345",
    }
    assert evaluation.version_labels("drift-r", state(Cause.DRIFT)) == {"run-id": "drift-r", "cause": "drift"}


def test_an_automatic_approval_is_the_approval_decision_contract_with_a_stable_nonce() -> None:
    when = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    body = evaluation.approval_body("push-r", "churn", "3", when)
    decision = approval_decision(body)
    assert decision.approved and decision.approver == evaluation.AUTO_APPROVER
    assert decision.decided_at == when
    later = evaluation.approval_body("push-r", "churn", "3", datetime(2026, 11, 23, tzinfo=UTC))
    assert later["nonce"] == body["nonce"]
    assert evaluation.approval_body("push-r", "churn", "4", when)["nonce"] != body["nonce"]


def test_a_bare_message_is_published_as_its_body_with_routing_attributes() -> None:
    body = {"run_id": "r", "model": "churn", "version": "1", "decision": "approve", "approver": "a"}
    message = evaluation.BareMessage(type="approval.decision", run_id="r", event_id="n-1", data={}, body=body)
    data, attributes = encode(message)
    assert json.loads(data) == body
    assert attributes["type"] == "approval.decision" and attributes["event_id"] == "n-1"
