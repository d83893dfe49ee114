"""The Pub/Sub adapter's retry decision: record + ack only what redelivery cannot fix; re-raise the rest."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from cloudevents.http import CloudEvent
from google.api_core import exceptions as google_exceptions

from shared.config import parse_config
from shared.errors import PermanentError, TransientError, http_status_for, is_permanent, is_transient
from shared.events import InvalidEvent
from shared.function import run_pubsub
from shared.ledger import InMemoryLedger, KeyReuseError
from shared.notify import RecordingTransport
from shared.publisher import InMemoryPublisher
from shared.runtime import Runtime, use
from tests.helpers import push_envelope

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 22, 10, 0, 5, tzinfo=UTC)


def runtime() -> Runtime:
    config = parse_config(
        {"apiVersion": "mlops.dev/v1", "kind": "Pipeline", "spec": {"project": "p"}}, "t", env={}
    )
    return Runtime(config, InMemoryLedger(), InMemoryPublisher(), RecordingTransport(), clock=lambda: NOW)


def event(message_id: str = "m-1") -> CloudEvent:
    data = push_envelope(json.dumps({"x": 1}), message_id=message_id, publish_time="2026-11-22T10:00:00Z")
    attributes = {
        "type": "google.cloud.pubsub.topic.v1.messagePublished",
        "source": "//pubsub/x",
        "id": message_id,
    }
    return CloudEvent(attributes, data)


def raising(error: Exception) -> Any:
    def handle(_message: Any, _runtime: Runtime) -> None:
        raise error

    return handle


@pytest.mark.parametrize(
    "error",
    [
        TransientError("webhook 503"),
        google_exceptions.ServiceUnavailable("try later"),
        KeyError("a bug"),  # a bug is retried and finally dead-lettered, never acknowledged unseen
    ],
)
def test_retryable_and_unexpected_errors_escape(error: Exception) -> None:
    with use(runtime()) as current, pytest.raises(type(error)):
        run_pubsub("f", event(), raising(error))
    assert current.ledger.list_rejected() == []


@pytest.mark.parametrize(
    "error",
    [InvalidEvent("thing", ["a: required"]), PermanentError("bad"), KeyReuseError("k", "h1", "h2")],
)
def test_permanent_errors_are_recorded_and_acknowledged(error: Exception) -> None:
    with use(runtime()) as current:
        assert run_pubsub("f", event("m-7"), raising(error)) == "rejected"
        [record] = current.ledger.list_rejected()
    assert record.event_id == "m-7"
    assert record.source.startswith("f:")


def test_success() -> None:
    seen: list[Any] = []
    with use(runtime()):
        assert run_pubsub("f", event(), lambda message, _rt: seen.append(message.json())) == "done"
    assert seen == [{"x": 1}]


def test_classification() -> None:
    assert is_transient(google_exceptions.TooManyRequests("slow down"))
    assert not is_transient(google_exceptions.NotFound("gone"))
    assert is_permanent(KeyReuseError("k", "a", "b")) and not is_permanent(KeyError("x"))
    assert http_status_for(PermanentError("x")) == 400
    assert http_status_for(TransientError("x")) == 503
