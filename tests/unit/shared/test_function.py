"""The Pub/Sub adapter's retry decision: record + ack only what redelivery cannot fix; re-raise the rest."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
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


def runtime(events: dict[str, Any] | None = None) -> Runtime:
    spec: dict[str, Any] = {"project": "p", **({"events": events} if events else {})}
    config = parse_config({"apiVersion": "mlops.dev/v1", "kind": "Pipeline", "spec": spec}, "t", env={})
    return Runtime(config, InMemoryLedger(), InMemoryPublisher(), RecordingTransport(), clock=lambda: NOW)


def event(
    message_id: str = "m-1", publish_time: str = "2026-11-22T10:00:00Z", data: Any = None
) -> CloudEvent:
    if data is None:
        data = push_envelope(json.dumps({"x": 1}), message_id=message_id, publish_time=publish_time)
    attributes = {
        "type": "google.cloud.pubsub.topic.v1.messagePublished",
        "source": "//pubsub/x",
        "id": message_id,
    }
    return CloudEvent(attributes, data)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


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
    ("error", "reason"),
    [
        (InvalidEvent("thing", ["a: required"]), "invalid"),
        (PermanentError("bad"), "refused"),
        (KeyReuseError("k", "h1", "h2"), "key_reuse"),
    ],
)
def test_permanent_errors_are_recorded_and_acknowledged(error: Exception, reason: str) -> None:
    with use(runtime()) as current:
        assert run_pubsub("f", event("m-7"), raising(error)) == "rejected"
        [record] = current.ledger.list_rejected()
    assert record.event_id == "m-7"
    assert record.reason == reason  # the RejectionReason's value, as the docs list them
    assert record.source.startswith("f:")


def test_an_event_published_in_the_future_beyond_the_skew_is_expired() -> None:
    seen: list[Any] = []
    with use(runtime()) as current:
        late = event("m-future", publish_time=iso(NOW + timedelta(minutes=10)))
        assert run_pubsub("f", late, lambda message, _rt: seen.append(message)) == "expired"
        within = event("m-soon", publish_time=iso(NOW + timedelta(minutes=4)))
        assert run_pubsub("f", within, lambda message, _rt: seen.append(message)) == "done"
        [record] = current.ledger.list_rejected()
    assert [m.message_id for m in seen] == ["m-soon"]
    assert (record.event_id, record.reason) == ("m-future", "expired")
    assert list(record.problems) == [
        "event published 2026-11-22T10:10:05+00:00 is 600s in the future, "
        "over spec.events.maxClockSkew (300s)"
    ]


def test_the_clock_skew_is_configurable() -> None:
    with use(runtime({"maxClockSkew": "0s"})):
        assert (
            run_pubsub("f", event(publish_time=iso(NOW + timedelta(seconds=2))), raising(KeyError()))
            == "expired"
        )
    with use(runtime({"maxClockSkew": "1h"})):
        assert (
            run_pubsub("f", event(publish_time=iso(NOW + timedelta(minutes=50))), lambda _m, _r: None)
            == "done"
        )


def test_a_deep_payload_already_parsed_is_recorded_not_a_recursion_error() -> None:
    deep: Any = {}
    for _ in range(20_000):
        deep = {"a": deep}
    with use(runtime()) as current:
        assert (
            run_pubsub("f", event("m-deep", data=deep), raising(AssertionError("never called"))) == "rejected"
        )
        [record] = current.ledger.list_rejected()
    assert record.event_id == "m-deep"
    assert list(record.problems) == ["(data): JSON nested deeper than 64 levels"]
    assert isinstance(record.payload, str) and "not recorded" in record.payload


def test_an_oversized_id_is_recorded_under_a_digest() -> None:
    huge = "9" * 1_100_000
    with use(runtime()) as current:
        assert run_pubsub("f", event(huge), raising(AssertionError("never called"))) == "rejected"
        assert run_pubsub("f", event(huge), raising(AssertionError("never called"))) == "rejected"
        [record] = current.ledger.list_rejected()  # the same id twice: one record
    assert record.event_id.startswith("sha256:") and len(record.event_id) == 71
    assert list(record.problems) == ["message.messageId: must be at most 512 bytes, got 1100000"]


def test_bytes_data_is_parsed_with_the_same_bounds() -> None:
    raw = ("[" * 5000 + "]" * 5000).encode()
    with use(runtime()) as current:
        assert run_pubsub("f", event("m-b", data=raw), raising(AssertionError("never called"))) == "rejected"
        [record] = current.ledger.list_rejected()
    assert list(record.problems) == ["(data): JSON nested deeper than 64 levels"]
    assert record.payload == raw.decode()


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


def test_each_invocation_runs_inside_its_subscriptions_ack_deadline() -> None:
    from shared import deadline as deadlines

    spec: dict[str, Any] = {
        "project": "p",
        "topics": {"notification": "notifications"},
        "triggers": [{"function": "notify", "event": "notification", "retry": {"ackDeadline": "20s"}}],
    }
    config = parse_config({"apiVersion": "mlops.dev/v1", "kind": "Pipeline", "spec": spec}, "t", env={})
    test_runtime = Runtime(
        config, InMemoryLedger(), InMemoryPublisher(), RecordingTransport(), clock=lambda: NOW
    )
    budgets: list[float] = []

    def handle(_message: Any, _runtime: Runtime) -> None:
        budgets.append(deadlines.current().budget)

    with use(test_runtime):
        assert run_pubsub("notify", event(), handle) == "done"
        assert run_pubsub("other", event(message_id="m-2"), handle) == "done"
    assert budgets == [16.0, 25.0]  # 20 s less 20 %; an unwired function gets the default 30 s less 5 s
    assert deadlines.current().budget == deadlines.DEFAULT_BUDGET_SECONDS  # scoped to the invocation


def test_log_entries_carry_the_requests_trace() -> None:
    import io
    import json as json_module
    from contextlib import redirect_stdout

    from shared import log

    trace = "105445aa7843bc8bf206b12000100000"
    assert log.use_trace({"X-Cloud-Trace-Context": f"{trace}/1;o=1"}, "p") == f"projects/p/traces/{trace}"
    out = io.StringIO()
    with redirect_stdout(out):
        log.info("hello", run_id="r-1")
    entry = json_module.loads(out.getvalue())
    assert entry[log.TRACE_FIELD] == f"projects/p/traces/{trace}" and entry["run_id"] == "r-1"
    w3c = "4bf92f3577b34da6a3ce929d0e0e4736"
    assert log.use_trace({"traceparent": f"00-{w3c}-00f067aa0ba902b7-01"}, "p").endswith(w3c)
    assert log.use_trace({}, "p") == ""  # the next request without a trace clears it
    out = io.StringIO()
    with redirect_stdout(out):
        log.info("no trace")
    assert log.TRACE_FIELD not in json_module.loads(out.getvalue())
