"""An HTTP delivery → one CloudEvent, for every shape a Pub/Sub-triggered function receives."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared import events
from shared.errors import InvalidInput
from shared.events.limits import MAX_PUSH_BODY_BYTES
from tests.helpers import push_envelope

pytestmark = pytest.mark.unit

TOPIC_PATH = "/projects/demo-project/topics/mlops-notifications"


def body(document: Any) -> bytes:
    return json.dumps(document).encode()


def test_a_raw_push_becomes_a_message_published_event_keeping_the_whole_body() -> None:
    push = {
        **push_envelope(b"{}", message_id="m-1", publish_time="2026-11-22T10:00:00Z"),
        "deliveryAttempt": 3,
    }
    event = events.event_from_http({"Content-Type": "application/json"}, body(push), TOPIC_PATH)
    assert event["id"] == "m-1"
    assert event["type"] == events.PUBSUB_PUBLISHED
    assert event["source"] == "//pubsub.googleapis.com/projects/demo-project/topics/mlops-notifications"
    assert event["time"] == "2026-11-22T10:00:00Z"
    assert (
        event.get_data() == push
    )  # subscription and deliveryAttempt are kept, unlike the framework's conversion
    assert events.pubsub_message(event.get_data()).delivery_attempt == 3


def test_a_push_without_message_id_gets_a_stable_id_from_its_bytes() -> None:
    push = push_envelope(b"{}")
    del push["message"]["messageId"], push["message"]["message_id"]
    raw = body(push)
    first = events.event_from_http({}, raw, "/")
    again = events.event_from_http({}, raw, "/")
    assert first["id"] == again["id"] == events.body_digest(raw)
    assert first["id"].startswith("sha256:")
    with pytest.raises(InvalidInput, match="messageId: required"):
        events.pubsub_message(first.get_data())  # the view still refuses it, so it is recorded as rejected


def test_binary_cloud_event() -> None:
    data = push_envelope(b"{}", message_id="m-10")
    headers = {
        "ce-specversion": "1.0",
        "ce-type": events.PUBSUB_PUBLISHED,
        "ce-source": "//pubsub.googleapis.com/projects/p/topics/t",
        "ce-id": "m-10",
        "ce-time": "2026-11-22T10:00:00Z",
        "Content-Type": "application/json",
    }
    event = events.event_from_http(headers, body(data), "/")
    assert (event["id"], event["source"]) == ("m-10", "//pubsub.googleapis.com/projects/p/topics/t")
    assert event.get_data() == data


def test_structured_cloud_event_with_data_or_data_base64() -> None:
    data = push_envelope(b"{}", message_id="m-9")
    document = {
        "specversion": "1.0",
        "type": events.PUBSUB_PUBLISHED,
        "source": "//pubsub.googleapis.com/projects/p/topics/t",
        "id": "m-9",
        "data": data,
    }
    headers = {"Content-Type": "application/cloudevents+json; charset=utf-8"}
    assert events.event_from_http(headers, body(document), "/").get_data() == data
    import base64

    encoded = {
        **{k: v for k, v in document.items() if k != "data"},
        "data_base64": base64.b64encode(body(data)).decode(),
    }
    assert events.event_from_http(headers, body(encoded), "/").get_data() == data


@pytest.mark.parametrize(
    ("headers", "raw", "problem"),
    [
        ({}, b"[" * 10_000 + b"]" * 10_000, "(body): JSON nested deeper than 64 levels"),
        ({}, b"not json", "(body): not JSON"),
        ({}, b"[1, 2]", "(body): must be an object, got list"),
        ({}, b" " * (MAX_PUSH_BODY_BYTES + 1), f"(body): at most {MAX_PUSH_BODY_BYTES} bytes"),
        (
            {"Content-Type": "application/cloudevents+json"},
            b'{"specversion": "1.0", "type": "t", "data": {}}',
            "id: required (a CloudEvents 1.0 context attribute)",
        ),
        (
            {"ce-specversion": "1.0", "ce-type": "t", "ce-source": "s", "ce-id": "i" * 600},
            b"{}",
            "ce-id: must be at most 512 bytes, got 600",
        ),
        (
            {"ce-specversion": "7.0", "ce-type": "t", "ce-source": "s", "ce-id": "1"},
            b"{}",
            "(attributes): Invalid specversion",
        ),
    ],
)
def test_deliveries_that_are_not_events_raise_invalid_input(
    headers: dict[str, str], raw: bytes, problem: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        events.event_from_http(headers, raw, "/")
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_cloud_event_info_never_raises_on_a_hostile_time() -> None:
    info = events.CloudEventInfo.of({"id": "1", "type": "t", "source": "s", "time": "9" * 20})
    assert info.time is None and info.id == "1"


def test_an_absent_time_is_not_replaced_by_the_current_time() -> None:
    push = push_envelope(b"{}", message_id="m-1")
    del push["message"]["publishTime"]
    event = events.event_from_http({}, body(push), "/")
    assert event.get("time") is None
    assert events.CloudEventInfo.of(event).time is None
