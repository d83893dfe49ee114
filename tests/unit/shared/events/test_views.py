"""Event views: every captured real payload parses unchanged; bad payloads list every problem."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shared import events
from shared.events import InvalidEvent
from tests.helpers import EVENTS_DIR, SHARED_SAMPLES, load_event, push_envelope

pytestmark = pytest.mark.unit


def parse_sample(name: str, payload: Any) -> object:
    """Parse a sample with the view its file name says it is."""
    if name.startswith("github-push"):
        return events.github_push(payload, delivery_id="d-1")
    if name.startswith("github-ping"):
        return events.github_ping(payload, delivery_id="d-1")
    if name.startswith("storage-object-finalized"):
        return events.storage_object(payload)
    if name.startswith("pubsub-message-published"):
        return events.pubsub_message(payload)
    if name.startswith("cloud-build-event"):
        message = events.pubsub_message(
            push_envelope(json.dumps(payload), attributes={"buildId": "b-1", "status": "SUCCESS"})
        )
        return events.build_message(message)
    raise AssertionError(f"no view for sample {name}")


@pytest.mark.parametrize("path", sorted(EVENTS_DIR.glob("*.json")), ids=lambda p: p.name)
def test_captured_payloads_parse_unchanged(path: Path) -> None:
    payload = json.loads(path.read_text())
    before = json.dumps(payload, sort_keys=True)
    view = parse_sample(path.name, payload)
    assert view is not None
    assert json.dumps(payload, sort_keys=True) == before  # views never modify the payload


def test_the_shared_samples_folder_parses_too() -> None:
    if not SHARED_SAMPLES.is_dir():
        pytest.skip(f"{SHARED_SAMPLES} is not beside this checkout")
    names = sorted(p.name for p in SHARED_SAMPLES.glob("*.json"))
    assert names, "the samples folder is empty"
    for name in names:
        parse_sample(name, json.loads((SHARED_SAMPLES / name).read_text()))


def test_github_push_fields() -> None:
    push = events.github_push(load_event("github-push.json"), delivery_id="abc")
    assert push.provider == "github"
    assert push.repository == "Codertocat/Hello-World"
    assert push.branch == "master" and push.tag is None
    assert push.after.startswith("6113728f") and push.short_sha == "6113728"
    assert push.delivery_id == "abc"


def test_github_ping_fields() -> None:
    ping = events.github_ping(load_event("github-ping.json"))
    assert ping.hook_id > 0
    assert ping.zen


def test_storage_object_int64_as_string_or_number() -> None:
    data = load_event("storage-object-finalized-data.json")
    view = events.storage_object(data)
    assert view.generation == 1587627537231057
    assert view.size == 352
    assert view.key == "some-bucket/folder/Test.cs#1587627537231057"
    assert view.time_created == datetime(2020, 4, 23, 7, 38, 57, 230000, tzinfo=UTC)
    as_numbers = {**data, "generation": 1587627537231057, "size": 352, "metageneration": 1}
    assert events.storage_object(as_numbers).key == view.key


def test_storage_object_problems_are_all_listed() -> None:
    with pytest.raises(InvalidEvent) as caught:
        events.storage_object({"generation": "abc", "size": [1]})
    assert caught.value.problems == [
        "bucket: required",
        "name: required",
        "generation: must be an integer (string or number), got 'abc'",
        "size: must be an integer (string or number), got [1]",
    ]
    assert caught.value.retryable is False


def test_pubsub_message_published_data() -> None:
    message = events.pubsub_message(load_event("pubsub-message-published-data.json"))
    assert message.message_id == "message-id"
    assert message.text() == "test message 3"
    assert message.attributes == {"attr1": "attr1-value"}
    assert message.subscription == "projects/my-project/subscriptions/my-subscription"


def test_pubsub_message_as_converted_by_functions_framework() -> None:
    # functions-framework converts a raw push into {"message": {...}} without the subscription.
    converted = {
        "message": {
            "@type": "type.googleapis.com/google.pubsub.v1.PubsubMessage",
            "data": base64.b64encode(b"{}").decode(),
            "attributes": {"type": "notification"},
            "messageId": "42",
            "publishTime": "2026-11-22T10:00:00.123456789Z",
        }
    }
    message = events.pubsub_message(converted)
    assert message.message_id == "42"
    assert message.publish_time == datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=UTC)


def test_pubsub_bad_data() -> None:
    with pytest.raises(InvalidEvent, match="not valid base64"):
        events.pubsub_message({"message": {"messageId": "1", "data": "!!!"}})
    message = events.pubsub_message(push_envelope(b"not json"))
    with pytest.raises(InvalidEvent, match="not JSON"):
        message.json()


def test_build_message_from_real_shape() -> None:
    build = {
        "id": "b-7",
        "status": "FAILURE",
        "projectId": "p",
        "tags": ["run-r1", "image-trainer"],
        "results": {"images": [{"name": "gcr.io/p/trainer:abc", "digest": "sha256:00"}]},
        "failureInfo": {"type": "USER_BUILD_STEP", "detail": "step 1 failed"},
        "createTime": "2026-11-22T10:00:00.5Z",
    }
    message = events.pubsub_message(push_envelope(build, attributes={"buildId": "b-7", "status": "FAILURE"}))
    view = events.build_message(message)
    assert view.terminal
    assert view.tag_value("run") == "r1"
    assert view.built_images[0].digest == "sha256:00"
    assert view.failure == "step 1 failed"


def test_build_message_without_id_or_status() -> None:
    message = events.pubsub_message(push_envelope({"projectId": "p"}))
    with pytest.raises(InvalidEvent) as caught:
        events.build_message(message)
    assert len(caught.value.problems) == 2


def test_gitlab_push() -> None:
    body = {
        "object_kind": "push",
        "ref": "refs/heads/main",
        "before": "a" * 40,
        "after": "b" * 40,
        "user_username": "jsmith",
        "project": {
            "path_with_namespace": "group/repo",
            "git_http_url": "https://gitlab.example/group/repo.git",
        },
        "commits": [{"id": "b" * 40, "added": ["trainer/a.py"], "modified": [], "removed": ["old.txt"]}],
    }
    push = events.gitlab_push(body, delivery_id="uuid-1")
    assert push.repository == "group/repo"
    assert push.branch == "main"
    assert push.changed_paths == {"trainer/a.py", "old.txt"}
    with pytest.raises(InvalidEvent, match="object_kind"):
        events.gitlab_push({**body, "object_kind": "merge_request"})


def test_drift_alert() -> None:
    body = {
        "version": "1.2",
        "incident": {
            "incident_id": "0.abc",
            "state": "open",
            "policy_name": "churn drift",
            "started_at": 1763805600,
            "policy_user_labels": {"model": "churn"},
            "metric": {"type": "custom.googleapis.com/drift", "labels": {}},
            "resource": {"type": "global", "labels": {"project_id": "p"}},
            "observed_value": "0.4",
            "threshold_value": "0.2",
        },
    }
    alert = events.drift_alert(body)
    assert alert.is_open and alert.model == "churn"
    assert alert.started_at is not None and alert.started_at.year == 2025
    with pytest.raises(InvalidEvent, match=r"incident\.state"):
        events.drift_alert({"incident": {"incident_id": "1", "state": "maybe"}})


def test_approval_decision() -> None:
    decision = events.approval_decision(
        {
            "run_id": "r1",
            "model": "churn",
            "version": "3",
            "decision": "APPROVE",
            "approver": "ana@example.com",
        }
    )
    assert decision.approved
    with pytest.raises(InvalidEvent) as caught:
        events.approval_decision({"decision": "maybe"})
    assert "decision: expected approve or reject, got 'maybe'" in caught.value.problems
    assert "approver: required" in caught.value.problems


def test_envelope_round_trip_and_mismatch() -> None:
    original = events.new_envelope("notification", "run-1", {"kind": "x"}, causation_id="c")
    data, attributes = json.dumps(original.to_json()), original.attributes()
    parsed = events.envelope(events.pubsub_message(push_envelope(data, attributes=attributes)))
    assert (parsed.type, parsed.run_id, parsed.event_id, parsed.causation_id) == (
        "notification",
        "run-1",
        original.event_id,
        "c",
    )
    with pytest.raises(InvalidEvent, match="differs from body type"):
        events.envelope(events.pubsub_message(push_envelope(data, attributes={"type": "other"})))
    with pytest.raises(InvalidEvent, match="schema_version"):
        events.envelope(events.pubsub_message(push_envelope({**original.to_json(), "schema_version": "9"})))
