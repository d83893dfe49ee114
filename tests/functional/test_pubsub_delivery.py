"""Hostile and malformed Pub/Sub deliveries, through functions-framework: each one ends as a recorded
rejection acknowledged with 2xx (never the framework's 400, never a 500 that retries into the dead-letter
topic), and well-formed deliveries keep working."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import functions_framework
import pytest

from shared.config import parse_config
from shared.events import body_digest, new_envelope
from shared.ledger import InMemoryLedger
from shared.notify import RecordingTransport
from shared.publisher import InMemoryPublisher
from shared.runtime import Runtime, use
from tests.helpers import push_envelope

pytestmark = pytest.mark.functional

MAIN = str(Path(__file__).resolve().parents[2] / "main.py")
TOPIC_PATH = "/projects/demo-project/topics/mlops-notifications"
NOW = datetime(2026, 11, 22, 10, 0, 5, tzinfo=UTC)
PUBLISHED = "2026-11-22T10:00:00Z"


@pytest.fixture
def runtime() -> Iterator[Runtime]:
    config = parse_config(
        {
            "apiVersion": "mlops.dev/v1",
            "kind": "Pipeline",
            "spec": {
                "project": "demo-project",
                "notifications": {
                    "channels": [{"name": "audit", "type": "webhook", "url": "https://a.example"}]
                },
            },
        },
        "functional.yaml",
        env={},
    )
    test_runtime = Runtime(
        config, InMemoryLedger(), InMemoryPublisher(), RecordingTransport(), clock=lambda: NOW
    )
    with use(test_runtime):
        yield test_runtime


@pytest.fixture
def client() -> Any:
    return functions_framework.create_app("notify", MAIN, "cloudevent").test_client()


def notification(event_id: str = "evt-1") -> tuple[str, dict[str, str]]:
    envelope = new_envelope("notification", "run-1", {"kind": "k", "title": "T"}, event_id=event_id)
    return json.dumps(envelope.to_json()), envelope.attributes()


def rejected(runtime: Runtime) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(r.event_id, r.reason, tuple(r.problems)) for r in runtime.ledger.list_rejected()]


def delivered(runtime: Runtime) -> int:
    assert isinstance(runtime.transport, RecordingTransport)
    return len(runtime.transport.delivered)


def test_a_push_without_message_id_is_recorded_and_acknowledged(runtime: Runtime, client: Any) -> None:
    data, attributes = notification()
    body = push_envelope(data, attributes, publish_time=PUBLISHED)
    del body["message"]["messageId"], body["message"]["message_id"]
    raw = json.dumps(body).encode()
    for _ in range(2):  # redelivered: the same record, not a second one
        response = client.post(TOPIC_PATH, data=raw, content_type="application/json")
        assert (
            response.status_code == 200
        )  # was the framework's 400: a nack, retried into the dead-letter topic
    assert rejected(runtime) == [
        (body_digest(raw), "invalid", ("message.messageId: required (Pub/Sub sets it on every message)",))
    ]
    assert delivered(runtime) == 0


def test_a_push_without_data_or_attributes_is_recorded_and_acknowledged(
    runtime: Runtime, client: Any
) -> None:
    body = push_envelope(b"", message_id="no-data", publish_time=PUBLISHED)
    del body["message"]["data"], body["message"]["attributes"]
    assert client.post(TOPIC_PATH, json=body).status_code == 200
    assert rejected(runtime) == [
        (
            "no-data",
            "invalid",
            ("message.data: required: a Pub/Sub message has data or at least one attribute",),
        )
    ]


def test_a_push_without_data_but_with_attributes_is_a_legal_empty_message(
    runtime: Runtime, client: Any
) -> None:
    # Legal Pub/Sub (empty data is omitted from JSON), so it reaches notify, which cannot read an empty body.
    body = push_envelope(b"", {"type": "notification"}, message_id="empty", publish_time=PUBLISHED)
    del body["message"]["data"]
    assert client.post(TOPIC_PATH, json=body).status_code == 200
    [(event_id, reason, problems)] = rejected(runtime)
    assert (event_id, reason) == ("empty", "invalid")
    assert problems[0].startswith("message.data: not JSON")


def test_a_body_nested_ten_thousand_deep_is_recorded_and_acknowledged(runtime: Runtime, client: Any) -> None:
    raw = b"[" * 10_000 + b"]" * 10_000
    response = client.post(TOPIC_PATH, data=raw, content_type="application/json")
    assert response.status_code == 200  # was a RecursionError in the framework's conversion: 500, retried
    assert rejected(runtime) == [
        (body_digest(raw), "invalid", ("(body): JSON nested deeper than 64 levels",))
    ]
    [record] = runtime.ledger.list_rejected()
    assert record.source == f"notify:{TOPIC_PATH}"


def test_message_data_nested_ten_thousand_deep_is_recorded_and_acknowledged(
    runtime: Runtime, client: Any
) -> None:
    body = push_envelope(
        "[" * 10_000 + "]" * 10_000, {"type": "notification"}, message_id="deep", publish_time=PUBLISHED
    )
    assert client.post(TOPIC_PATH, json=body).status_code == 200  # was RecursionError: 500, retried 5 times
    assert rejected(runtime) == [("deep", "invalid", ("message.data: JSON nested deeper than 64 levels",))]


def test_a_publish_time_of_twenty_digits_is_recorded_and_acknowledged(runtime: Runtime, client: Any) -> None:
    data, attributes = notification()
    body = push_envelope(data, attributes, message_id="t-20", publish_time="9" * 20)
    assert client.post(TOPIC_PATH, json=body).status_code == 200  # was OverflowError: 500, retried 5 times
    [(event_id, reason, problems)] = rejected(runtime)
    assert (event_id, reason) == ("t-20", "invalid")
    assert problems[0].startswith("message.publishTime: epoch seconds must be between 0 and 253402300799")


def test_a_megabyte_message_id_is_recorded_under_a_digest(runtime: Runtime, client: Any) -> None:
    data, attributes = notification()
    huge = "7" * 1_100_000
    body = push_envelope(data, attributes, message_id=huge, publish_time=PUBLISHED)
    assert client.post(TOPIC_PATH, json=body).status_code == 200
    [(event_id, reason, problems)] = rejected(runtime)
    assert event_id.startswith("sha256:") and reason == "invalid"
    assert "message.messageId: must be at most 512 bytes, got 1100000" in problems
    assert delivered(runtime) == 0


def test_an_event_published_ten_minutes_in_the_future_is_expired(runtime: Runtime, client: Any) -> None:
    data, attributes = notification()
    future = (NOW + timedelta(minutes=10)).isoformat().replace("+00:00", "Z")
    body = push_envelope(data, attributes, message_id="future-1", publish_time=future)
    assert client.post(TOPIC_PATH, json=body).status_code == 200
    [(event_id, reason, problems)] = rejected(runtime)
    assert (event_id, reason) == ("future-1", "expired")
    assert "in the future, over spec.events.maxClockSkew (300s)" in problems[0]
    assert delivered(runtime) == 0


def test_a_structured_cloud_event_without_an_id_is_recorded_and_acknowledged(
    runtime: Runtime, client: Any
) -> None:
    event = {"specversion": "1.0", "type": "google.cloud.pubsub.topic.v1.messagePublished", "data": {}}
    raw = json.dumps(event).encode()
    response = client.post("/", data=raw, content_type="application/cloudevents+json")
    assert response.status_code == 200
    [(event_id, reason, problems)] = rejected(runtime)
    assert (event_id, reason) == (body_digest(raw), "invalid")
    assert "id: required (a CloudEvents 1.0 context attribute)" in problems
    assert "source: required (a CloudEvents 1.0 context attribute)" in problems


def test_well_formed_deliveries_still_work_in_every_mode(runtime: Runtime, client: Any) -> None:
    data, attributes = notification()
    push = push_envelope(data, attributes, message_id="ok-1", publish_time=PUBLISHED)
    assert client.post(TOPIC_PATH, json=push).status_code == 200
    data2, attributes2 = notification("evt-2")
    binary = push_envelope(data2, attributes2, message_id="ok-2", publish_time=PUBLISHED)
    headers = {
        "ce-specversion": "1.0",
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        "ce-source": "//pubsub.googleapis.com/projects/demo-project/topics/mlops-notifications",
        "ce-id": "ok-2",
        "ce-time": PUBLISHED,
    }
    assert client.post("/", json=binary, headers=headers).status_code == 200
    data3, attributes3 = notification("evt-3")
    structured = {
        "specversion": "1.0",
        "type": "google.cloud.pubsub.topic.v1.messagePublished",
        "source": "//pubsub.googleapis.com/projects/demo-project/topics/mlops-notifications",
        "id": "ok-3",
        "data": {
            "message": {
                "data": base64.b64encode(data3.encode()).decode(),
                "attributes": attributes3,
                "messageId": "ok-3",
            },
            "subscription": "projects/demo-project/subscriptions/notify",
        },
    }
    response = client.post("/", data=json.dumps(structured), content_type="application/cloudevents+json")
    assert response.status_code == 200
    assert delivered(runtime) == 3
    assert rejected(runtime) == []


def test_only_post_is_a_delivery(runtime: Runtime, client: Any) -> None:
    assert client.get(TOPIC_PATH).status_code == 405
    assert rejected(runtime) == []
