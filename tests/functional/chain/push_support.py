"""What the push and build-status tests share: the shipped configuration over fakes, signed webhooks, and
``cloud-builds`` messages rendered from a fake build the way Cloud Build publishes them."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import functions_framework

from shared.config import PipelineConfig, load_config
from shared.ingest.signatures import github_signature
from shared.ledger import InMemoryLedger
from shared.notify import RecordingTransport
from shared.ports import FakePorts, fake_ports
from shared.ports.builds import Build
from shared.publisher import InMemoryPublisher, PublishedMessage
from shared.runtime import Runtime, use
from tests.helpers import EVENTS_DIR, push_envelope

ROOT = Path(__file__).resolve().parents[3]
MAIN = str(ROOT / "main.py")
NOW = datetime(2026, 11, 22, 10, 0, 5, tzinfo=UTC)
PUBLISHED = "2026-11-22T10:00:00Z"
SECRET = "functional-webhook-secret"
GITLAB_TOKEN = "functional-gitlab-token"
#: The sample push's repository, commit and the run id they give.
REPO = "Codertocat/Hello-World"
COMMIT = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
RUN_ID = "push-codertocat-hello-world-6113728f27ae"
TRAINER_REPOSITORY = "us-central1-docker.pkg.dev/demo-project/mlops/trainer"
SERVER_REPOSITORY = "us-central1-docker.pkg.dev/demo-project/mlops/server"


def shipped_config() -> PipelineConfig:
    """``pipeline.yaml`` as shipped (no environment: every ``${VAR:-default}`` takes its default)."""
    return load_config(ROOT / "pipeline.yaml", env={})


@contextmanager
def fake_runtime(config: PipelineConfig | None = None) -> Iterator[Runtime]:
    ports = fake_ports(project="demo-project")
    runtime = Runtime(
        config or shipped_config(),
        InMemoryLedger(clock=lambda: NOW),
        InMemoryPublisher(),
        RecordingTransport(),
        ports=ports,
        clock=lambda: NOW,
    )
    with use(runtime):
        yield runtime


def fakes(runtime: Runtime) -> FakePorts:
    assert isinstance(runtime.ports, FakePorts)
    return runtime.ports


def published(runtime: Runtime, event_type: str = "") -> list[PublishedMessage]:
    """What was published, of ``event_type`` (everything when empty)."""
    publisher = runtime.publisher
    assert isinstance(publisher, InMemoryPublisher)
    return [m for m in publisher.messages if not event_type or m.attributes.get("type") == event_type]


def distinct(messages: list[PublishedMessage]) -> dict[str, PublishedMessage]:
    """By event id: a re-publication after a duplicate delivery is the same event (consumers dedupe)."""
    return {message.attributes["event_id"]: message for message in messages}


def client(function: str) -> Any:
    return functions_framework.create_app(function, MAIN, "http").test_client()


# -- webhooks ------------------------------------------------------------------------------------------------


def sample_push(**changes: Any) -> dict[str, Any]:
    """tests/events/github-push.json (a new branch ``master``), with ``changes`` applied at the top level."""
    payload: dict[str, Any] = json.loads((EVENTS_DIR / "github-push.json").read_text())
    payload.update(changes)
    return payload


def push_to_main(*paths: str, **changes: Any) -> dict[str, Any]:
    """The sample push, as a push to ``main`` (an existing branch) whose one commit changes ``paths``."""
    payload = sample_push(**{"ref": "refs/heads/main", "before": "1" * 40, "created": False, **changes})
    commit = copy.deepcopy(payload["commits"][0])
    commit.update(added=list(paths), modified=[], removed=[])
    payload["commits"] = [commit]
    return payload


def github_headers(
    body: bytes, *, event: str = "push", delivery: str = "delivery-1", secret: str = SECRET
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": github_signature(body, secret),
    }


def gitlab_push(*paths: str) -> dict[str, Any]:
    """A GitLab ``Push Hook`` of the sample commit to ``main`` (the shape GitLab documents)."""
    return {
        "object_kind": "push",
        "event_name": "push",
        "before": "1" * 40,
        "after": COMMIT,
        "ref": "refs/heads/main",
        "checkout_sha": COMMIT,
        "user_username": "jsmith",
        "project": {"path_with_namespace": "acme/ml", "git_http_url": "https://gitlab.example/acme/ml.git"},
        "commits": [
            {
                "id": COMMIT,
                "message": "Tune the trainer",
                "author": {"name": "J Smith", "email": "j@example.test"},
                "added": list(paths),
                "modified": [],
                "removed": [],
            }
        ],
        "total_commits_count": 1,
    }


# -- cloud-builds messages -----------------------------------------------------------------------------------


def build_resource(build: Build, base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``build`` as Cloud Build's REST JSON (what it publishes on ``cloud-builds``), over ``base``."""
    steps = [
        {"name": "gcr.io/cloud-builders/docker", "id": f"step-{index}", "status": status.value}
        for index, status in enumerate(build.step_statuses)
    ]
    if build.failing_step is not None:
        failing = steps[build.failing_step.index]
        failing.update(id=build.failing_step.id, name=build.failing_step.name)
        if build.failing_step.exit_code is not None:
            failing["exitCode"] = build.failing_step.exit_code
    resource = {
        **dict(base or {}),
        "id": build.id,
        "projectId": "demo-project",
        "status": build.status.value,
        "statusDetail": build.status_detail,
        "tags": list(build.tags),
        "substitutions": dict(build.substitutions),
        "logUrl": f"https://console.cloud.google.com/cloud-build/builds/{build.id}?project=demo-project",
        "steps": steps,
        "results": {"images": [{"name": image.name, "digest": image.digest} for image in build.images]},
        "createTime": "2026-11-22T09:59:00Z",
        "finishTime": "2026-11-22T09:59:58Z",
    }
    if build.failing_step is not None:
        resource["failureInfo"] = {"type": "USER_BUILD_STEP", "detail": build.status_detail}
    return resource


def build_delivery(resource: Mapping[str, Any], message_id: str = "cb-1") -> dict[str, Any]:
    """A push delivery of a ``cloud-builds`` message: data is the Build, attributes buildId and status."""
    return push_envelope(
        json.dumps(resource),
        {"buildId": str(resource.get("id", "")), "status": str(resource.get("status", ""))},
        message_id=message_id,
        publish_time=PUBLISHED,
        subscription="projects/demo-project/subscriptions/mlops-on_build_status--cloud-builds",
    )
