"""What the approval tests share: the churn config with a service, a candidate waiting for approval."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any
from urllib.parse import urlencode

from shared.config import PipelineConfig, parse_config
from shared.ledger import StepStatus
from shared.ports.registry import ModelUpload, ModelVersion
from tests.functional.chain.training_support import (
    ARTIFACTS,
    DEFAULT_IMAGE,
    NOW,
    PROJECT,
    ROOT,
    SERVING_IMAGE,
    World,
)

RUN = "push-acme-churn-0123456789ab"
SERVICE = "churn-predictor"
BUILT_SERVER = "us-central1-docker.pkg.dev/demo-project/mlops/server@sha256:" + "b" * 64
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
ROLLOUTS = "mlops-rollout-requests"
APPROVALS = "mlops-approvals"


def approval_config(
    *, approvers: list[str] | None = None, approval: str = "manual", **spec: Any
) -> PipelineConfig:
    """The shipped churn setup, small, with its service and the approval triggers."""
    return parse_config(
        {
            "apiVersion": "mlops.dev/v1",
            "kind": "Pipeline",
            "spec": {
                "project": PROJECT,
                "topicPrefix": "mlops-",
                "events": {"maxAge": "1h"},
                "triggers": [
                    {"function": "on_approval", "event": "approval.decision"},
                    {"function": "on_build_status", "topic": "cloud-builds"},
                ],
                "artifacts": {
                    "bucket": ARTIFACTS,
                    "imageRepository": "us-central1-docker.pkg.dev/demo-project/mlops",
                },
                "push": {
                    "images": [
                        {"name": "trainer", "role": "trainer", "paths": ["trainer/**"]},
                        {"name": "server", "role": "server", "paths": ["server/**"]},
                    ]
                },
                "models": [
                    {
                        "name": "churn",
                        "trainer": {"image": DEFAULT_IMAGE},
                        "servingImage": "us-central1-docker.pkg.dev/demo-project/mlops/server:seed",
                        "gates": [{"metric": "accuracy", "direction": "higher", "min": 0.8}],
                        "approval": approval,
                        "approvers": approvers or [],
                    }
                ],
                "services": [{"name": SERVICE, "model": "churn"}],
                **spec,
            },
        },
        str(ROOT / "functional.yaml"),
        env={},
    )


def register_candidate(env: World, run_id: str = RUN, *, server_image: str = BUILT_SERVER) -> ModelVersion:
    """A run that ended as on_training_state leaves it: RUNNING, a candidate version, its server image."""
    version = env.ports.registry.upload(
        ModelUpload(
            "churn",
            "churn",
            f"gs://{ARTIFACTS}/runs/{run_id}/model/",
            serving_image=SERVING_IMAGE,
            labels={"run-id": run_id, "cause": "push"},
            aliases=("candidate",),
        )
    )
    env.ledger.start_run(run_id, cause={"cause": "push", "images": ["trainer", "server"]})
    if server_image:
        env.ledger.record_step(
            run_id, "image:server", StepStatus.SUCCEEDED, {"result": {"image": server_image}}
        )
    result = {"model": version.model, "version": version.version_id, "resource": version.resource_name}
    env.ledger.record_step(run_id, "registry:version", StepStatus.SUCCEEDED, {"result": result})
    return version


def decision_body(
    version: str, *, run_id: str = RUN, decision: str = "approve", approver: str = "alice", nonce: str = "n-1"
) -> dict[str, str]:
    return {
        "run_id": run_id,
        "model": "churn",
        "version": version,
        "decision": decision,
        "approver": approver,
        "reason": "looks good",
        "nonce": nonce,
        "decided_at": "2026-11-22T10:00:00Z",
    }


def rollouts(env: World) -> list[dict[str, Any]]:
    """The distinct ``rollout.requested`` events: a duplicate step re-publishes the same event (same id),
    which the consumer's own claim turns into a duplicate, so one id is one rollout."""
    distinct: dict[str, dict[str, Any]] = {}
    for event in env.events(ROLLOUTS):
        distinct.setdefault(event["event_id"], event)
    return list(distinct.values())


def slack_request(
    version: str,
    *,
    action: str = "approve",
    user: str = "U0ALICE",
    timestamp: int | None = None,
    secret: str = SECRET,
    run_id: str = RUN,
) -> tuple[bytes, dict[str, str]]:
    """A block_actions request as Slack sends it, signed per Slack's v0 scheme (computed here, not by
    slack_sdk, so the verifier is checked against the published scheme)."""
    value = json.dumps({"model": "churn", "run_id": run_id, "version": version}, separators=(",", ":"))
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "team_id": "T1"},
        "actions": [{"action_id": action, "block_id": "approval", "type": "button", "value": value}],
        "response_url": "https://hooks.slack.com/actions/T1/1/x",
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    stamp = str(int(NOW.timestamp()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    headers = {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    return body, headers


def chat_event(
    version: str, *, function: str = "approve", email: str = "alice@example.com"
) -> dict[str, Any]:
    """A Google Chat CARD_CLICKED event for one of our cardsV2 buttons."""
    parameters = {"run_id": RUN, "model": "churn", "version": version}
    return {
        "type": "CARD_CLICKED",
        "eventTime": "2026-11-22T10:00:01.000000Z",
        "user": {"name": "users/1234", "displayName": "Alice", "email": email, "type": "HUMAN"},
        "space": {"name": "spaces/AAA", "type": "ROOM"},
        "action": {
            "actionMethodName": function,
            "parameters": [{"key": key, "value": value} for key, value in parameters.items()],
        },
        "common": {"invokedFunction": function, "parameters": parameters},
    }
