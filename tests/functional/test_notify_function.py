"""``notify`` in-process through functions-framework, fed real-shaped events in every delivery mode."""

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
from shared.errors import TransientError
from shared.events import new_envelope
from shared.ledger import InMemoryLedger
from shared.notify import RecordingTransport
from shared.publisher import InMemoryPublisher
from shared.runtime import Runtime, use
from tests.helpers import push_envelope

pytestmark = pytest.mark.functional

MAIN = str(Path(__file__).resolve().parents[2] / "main.py")
TOPIC_PATH = "/projects/demo-project/topics/mlops-notifications"
NOW = datetime(2026, 11, 22, 10, 0, 5, tzinfo=UTC)


@pytest.fixture
def runtime() -> Iterator[Runtime]:
    config = parse_config(
        {
            "apiVersion": "mlops.dev/v1",
            "kind": "Pipeline",
            "spec": {
                "project": "demo-project",
                "events": {"maxAge": "1h"},
                "notifications": {
                    "channels": [
                        {"name": "slack", "type": "slack", "url": "https://hooks.example/s"},
                        {"name": "audit", "type": "webhook", "url": "https://audit.example/in"},
                    ]
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


def notification_event(event_id: str = "evt-1", **data: Any) -> tuple[str, dict[str, str]]:
    body = {"kind": "build.succeeded", "severity": "info", "title": "Trainer image built", **data}
    envelope = new_envelope("notification", "run-1", body, event_id=event_id)
    return json.dumps(envelope.to_json()), envelope.attributes()


def test_raw_pubsub_push_is_delivered_to_every_channel(runtime: Runtime, client: Any) -> None:
    data, attributes = notification_event()
    response = client.post(
        TOPIC_PATH, json=push_envelope(data, attributes, publish_time="2026-11-22T10:00:00Z")
    )
    assert response.status_code == 200
    transport = runtime.transport
    assert isinstance(transport, RecordingTransport)
    assert [name for name, _ in transport.delivered] == ["slack", "audit"]


def test_duplicate_delivery_is_sent_once(runtime: Runtime, client: Any) -> None:
    data, attributes = notification_event()
    for message_id in ("m-1", "m-1", "m-2"):  # redelivery, then a republish of the same event
        body = push_envelope(data, attributes, message_id=message_id, publish_time="2026-11-22T10:00:00Z")
        assert client.post(TOPIC_PATH, json=body).status_code == 200
    assert isinstance(runtime.transport, RecordingTransport)
    assert len(runtime.transport.delivered) == 2


def test_structured_cloud_event(runtime: Runtime, client: Any) -> None:
    data, attributes = notification_event()
    event = {
        "specversion": "1.0",
        "type": "google.cloud.pubsub.topic.v1.messagePublished",
        "source": "//pubsub.googleapis.com/projects/demo-project/topics/mlops-notifications",
        "id": "m-9",
        "time": "2026-11-22T10:00:00Z",
        "datacontenttype": "application/json",
        "data": {
            "message": {
                "data": base64.b64encode(data.encode()).decode(),
                "attributes": attributes,
                "messageId": "m-9",
                "publishTime": "2026-11-22T10:00:00Z",
            },
            "subscription": "projects/demo-project/subscriptions/notify",
        },
    }
    response = client.post("/", json=event, headers={"Content-Type": "application/cloudevents+json"})
    assert response.status_code == 200
    assert isinstance(runtime.transport, RecordingTransport)
    assert len(runtime.transport.delivered) == 2


def test_binary_cloud_event(runtime: Runtime, client: Any) -> None:
    data, attributes = notification_event()
    body = push_envelope(data, attributes, message_id="m-10", publish_time="2026-11-22T10:00:00Z")
    headers = {
        "ce-specversion": "1.0",
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        "ce-source": "//pubsub.googleapis.com/projects/demo-project/topics/mlops-notifications",
        "ce-id": "m-10",
        "ce-time": "2026-11-22T10:00:00Z",
        "Content-Type": "application/json",
    }
    assert client.post("/", json=body, headers=headers).status_code == 200
    assert isinstance(runtime.transport, RecordingTransport)
    assert len(runtime.transport.delivered) == 2


def test_malformed_message_is_recorded_and_acknowledged(runtime: Runtime, client: Any) -> None:
    body = push_envelope(
        b"this is not json", {"type": "notification"}, message_id="bad-1", publish_time="2026-11-22T10:00:00Z"
    )
    response = client.post(TOPIC_PATH, json=body)
    assert response.status_code == 200  # acknowledged: redelivery could never succeed
    rejected = runtime.ledger.list_rejected()
    assert [(r.event_id, r.reason) for r in rejected] == [("bad-1", "invalid")]
    assert "not JSON" in rejected[0].problems[0]


def test_invalid_notification_lists_every_problem(runtime: Runtime, client: Any) -> None:
    envelope = new_envelope("notification", "run-1", {"severity": "loud"}, event_id="e-2")
    body = push_envelope(
        json.dumps(envelope.to_json()),
        envelope.attributes(),
        message_id="bad-2",
        publish_time="2026-11-22T10:00:00Z",
    )
    assert client.post(TOPIC_PATH, json=body).status_code == 200
    problems = runtime.ledger.list_rejected()[0].problems
    assert len(problems) == 3 and any("data.title" in p for p in problems)


def test_transient_failure_answers_500_so_pubsub_retries(runtime: Runtime, client: Any) -> None:
    assert isinstance(runtime.transport, RecordingTransport)
    runtime.transport.failures["audit"] = TransientError("HTTP 503 from the webhook")
    data, attributes = notification_event()
    body = push_envelope(data, attributes, publish_time="2026-11-22T10:00:00Z")
    assert client.post(TOPIC_PATH, json=body).status_code == 500
    del runtime.transport.failures["audit"]
    assert client.post(TOPIC_PATH, json=body).status_code == 200
    assert [name for name, _ in runtime.transport.delivered] == ["slack", "audit"]


def test_expired_event_is_recorded_and_acknowledged(runtime: Runtime, client: Any) -> None:
    data, attributes = notification_event()
    old = (NOW - timedelta(hours=2)).isoformat().replace("+00:00", "Z")
    body = push_envelope(data, attributes, message_id="old-1", publish_time=old)
    assert client.post(TOPIC_PATH, json=body).status_code == 200
    assert isinstance(runtime.transport, RecordingTransport)
    assert runtime.transport.delivered == []
    assert [(r.event_id, r.reason) for r in runtime.ledger.list_rejected()] == [("old-1", "expired")]
