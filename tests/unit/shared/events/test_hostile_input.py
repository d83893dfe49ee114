"""Hostile payloads: parsing raises InvalidInput and nothing else, and every size is bounded explicitly.

Each case here once escaped as another exception (RecursionError, OverflowError) or passed unchecked into a
ledger key, and so was retried into the dead-letter topic instead of being recorded as rejected.
"""

from __future__ import annotations

import base64
import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import events
from shared.errors import InvalidInput
from shared.events.limits import (
    MAX_ATTRIBUTE_KEY_BYTES,
    MAX_ATTRIBUTE_VALUE_BYTES,
    MAX_ATTRIBUTES,
    MAX_ID_BYTES,
    MAX_JSON_DEPTH,
    MAX_MESSAGE_DATA_BYTES,
)
from shared.problems import to_timestamp
from tests.helpers import push_envelope

pytestmark = pytest.mark.unit

HYPOTHESIS = settings(max_examples=300, deadline=None, database=None)

#: Values a hostile or broken sender can put where a timestamp or an int64 belongs.
hostile_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.integers(min_value=-(10**4000), max_value=10**4000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=80),
    st.text(alphabet="0123456789", min_size=1, max_size=400),
    st.from_regex(
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,12})?([Zz]|[+-][0-9]{2}:[0-9]{2})"
    ),
    st.sampled_from(
        ["9" * 20, "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "NaN", "1e400", "x" * 5000]
    ),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=3),
)


def deeply_nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# ------------------------------------------------------------------------------------------ timestamps


@HYPOTHESIS
@given(hostile_values)
def test_timestamp_parsing_raises_only_value_error(value: Any) -> None:
    try:
        parsed = to_timestamp(value)
    except ValueError:
        assert events.parse_timestamp(value) is None  # the lenient form never raises
        return
    assert parsed.tzinfo is not None and parsed.utcoffset() is not None
    assert parsed.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert events.parse_timestamp(value) == parsed


@HYPOTHESIS
@given(hostile_values)
def test_publish_time_never_escapes_as_another_error(value: Any) -> None:
    body = push_envelope(b"{}")
    body["message"]["publishTime"] = value
    try:
        message = events.pubsub_message(body)
    except InvalidInput as error:
        assert any(problem.startswith("message.publishTime: ") for problem in error.problems)
    else:
        assert message.publish_time is None or message.publish_time.tzinfo is not None


@HYPOTHESIS
@given(hostile_values)
def test_int64_fields_never_escape_as_another_error(value: Any) -> None:
    data = {"bucket": "b", "name": "n", "generation": value}
    try:
        view = events.storage_object(data)
    except InvalidInput as error:
        assert [p for p in error.problems if p.startswith("generation: ")], error.problems
    else:
        assert -(2**63) <= view.generation < 2**63


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("9" * 20, "epoch seconds must be between 0 and 253402300799"),  # was OverflowError
        (10**20, "epoch seconds must be between 0 and 253402300799"),
        (-1, "epoch seconds must be between 0 and 253402300799"),
        (math.nan, "epoch seconds must be between 0 and 253402300799"),
        (math.inf, "epoch seconds must be between 0 and 253402300799"),
        ("9999-12-31T23:59:59-01:00", "out of range once converted to UTC"),  # was OverflowError
        ("2026-13-01T00:00:00Z", "not an RFC 3339 timestamp or epoch seconds"),
        ("x" * 10_000, "too long for a timestamp (10000 characters, at most 64)"),
        ([2026], "must be an RFC 3339 timestamp or epoch seconds, got list"),
    ],
)
def test_bad_timestamps_are_problems_naming_the_field(value: Any, reason: str) -> None:
    body = push_envelope(b"{}")
    body["message"]["publishTime"] = value
    with pytest.raises(InvalidInput) as caught:
        events.pubsub_message(body)
    [problem] = caught.value.problems
    assert problem.startswith(f"message.publishTime: {reason}")
    assert len(problem) < 200  # the value shown is cut short


def test_timestamps_that_are_fine() -> None:
    assert to_timestamp("2026-11-22T10:00:00.123456789Z") == datetime(
        2026, 11, 22, 10, 0, 0, 123456, tzinfo=UTC
    )
    assert to_timestamp("2026-11-22T11:00:00+01:00") == datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    assert to_timestamp(1763805600) == datetime(2025, 11, 22, 10, 0, tzinfo=UTC)
    assert to_timestamp("1763805600") == to_timestamp(1763805600.0)


# ------------------------------------------------------------------------------------------------ JSON


def test_json_nested_ten_thousand_deep_in_message_data_is_invalid_input() -> None:
    message = events.pubsub_message(push_envelope(deeply_nested(10_000)))
    with pytest.raises(InvalidInput) as caught:  # was RecursionError, retried into the dead-letter topic
        message.json()
    assert caught.value.problems == [f"message.data: JSON nested deeper than {MAX_JSON_DEPTH} levels"]


def test_json_depth_is_bounded_exactly() -> None:
    assert events.parse_json(deeply_nested(MAX_JSON_DEPTH), max_bytes=1000) is not None
    with pytest.raises(InvalidInput, match=f"nested deeper than {MAX_JSON_DEPTH} levels"):
        events.parse_json(deeply_nested(MAX_JSON_DEPTH + 1), max_bytes=1000)
    nested_objects = '{"a":' * (MAX_JSON_DEPTH + 1) + "1" + "}" * (MAX_JSON_DEPTH + 1)
    with pytest.raises(InvalidInput, match="nested deeper"):
        events.parse_json(nested_objects, max_bytes=10_000)


def test_json_depth_of_an_already_parsed_value_is_measured_without_recursion() -> None:
    deep: Any = {}
    for _ in range(100_000):
        deep = {"a": deep}
    with pytest.raises(InvalidInput, match="nested deeper"):
        events.check_json_value(deep, what="event data", field="(data)")


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b'{"a": NaN}', "(body): not JSON (NaN is not a JSON value)"),
        (b"[" + b"9" * 5000 + b"]", "(body): not JSON (Exceeds the limit"),
        (b"\xff\xfe\xfd", "(body): not JSON ("),
        (b'{"title": "\\ud800"}', "(body): a string holds a lone UTF-16 surrogate"),
        (b'{"\\udfff": 1}', "(body): a string holds a lone UTF-16 surrogate"),
        (b"{", "(body): not JSON (Expecting property name enclosed in double quotes at 1)"),
    ],
)
def test_json_that_is_refused(raw: bytes, problem: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        events.parse_json(raw, max_bytes=10_000)
    assert caught.value.problems[0].startswith(problem)


def test_json_over_the_size_limit_is_refused_before_parsing() -> None:
    with pytest.raises(InvalidInput) as caught:
        events.parse_json(b" " * 2001, max_bytes=2000)
    assert caught.value.problems == ["(body): at most 2000 bytes, got 2001"]


def test_a_valid_surrogate_pair_is_a_character_not_a_problem() -> None:
    assert events.parse_json(b'{"emoji": "\\ud83d\\ude00"}', max_bytes=100) == {"emoji": "\U0001f600"}


# ----------------------------------------------------------------------------------------------- limits


def test_a_message_id_over_the_limit_is_refused_naming_the_limit() -> None:
    huge = "7" * 1_100_000  # a 1.1 MB id made Firestore refuse the ledger key on every redelivery
    with pytest.raises(InvalidInput) as caught:
        events.pubsub_message(push_envelope(b"{}", message_id=huge))
    assert f"message.messageId: must be at most {MAX_ID_BYTES} bytes, got 1100000" in caught.value.problems


def test_attributes_follow_pubsub_limits() -> None:
    too_many = {f"k{i}": "v" for i in range(MAX_ATTRIBUTES + 1)}
    with pytest.raises(
        InvalidInput, match=rf"message\.attributes: at most {MAX_ATTRIBUTES} entries, got 101"
    ):
        events.pubsub_message(push_envelope(b"{}", attributes=too_many))
    long_key = "k" * (MAX_ATTRIBUTE_KEY_BYTES + 1)
    long_value = "v" * (MAX_ATTRIBUTE_VALUE_BYTES + 1)
    with pytest.raises(InvalidInput) as caught:
        events.pubsub_message(push_envelope(b"{}", attributes={long_key: "v", "type": long_value}))
    assert caught.value.problems == [
        f"message.attributes.{long_key}: key must be at most 256 bytes, got 257",
        "message.attributes.type: value must be at most 1024 bytes, got 1025",
    ]
    fine = {f"k{i}": "v" * MAX_ATTRIBUTE_VALUE_BYTES for i in range(MAX_ATTRIBUTES)}
    assert len(events.pubsub_message(push_envelope(b"{}", attributes=fine)).attributes) == MAX_ATTRIBUTES


def test_message_data_over_ten_megabytes_is_refused_before_decoding() -> None:
    body = push_envelope(b"")
    body["message"]["data"] = "A" * ((MAX_MESSAGE_DATA_BYTES // 3 + 2) * 4)
    with pytest.raises(InvalidInput, match=f"message.data: at most {MAX_MESSAGE_DATA_BYTES} bytes"):
        events.pubsub_message(body)


def test_ordering_key_limit() -> None:
    body = push_envelope(b"{}")
    body["message"]["orderingKey"] = "o" * 1025
    with pytest.raises(InvalidInput, match=r"message\.orderingKey: must be at most 1024 bytes, got 1025"):
        events.pubsub_message(body)


def test_data_may_be_absent_when_attributes_are_present_but_not_both() -> None:
    # The Pub/Sub spec: empty data is legal when the message has an attribute (JSON then omits "data").
    body = push_envelope(b"", attributes={"type": "notification"})
    del body["message"]["data"]
    message = events.pubsub_message(body)
    assert message.data == b"" and message.attributes == {"type": "notification"}
    del body["message"]["attributes"]
    with pytest.raises(InvalidInput) as caught:
        events.pubsub_message(body)
    assert caught.value.problems == [
        "message.data: required: a Pub/Sub message has data or at least one attribute"
    ]


def test_a_push_without_message_id_is_invalid() -> None:
    body = push_envelope(b"{}")
    del body["message"]["messageId"], body["message"]["message_id"]
    with pytest.raises(InvalidInput) as caught:
        events.pubsub_message(body)
    assert caught.value.problems == ["message.messageId: required (Pub/Sub sets it on every message)"]


def test_internal_event_ids_are_bounded() -> None:
    body = {"type": "notification", "run_id": "r" * 513, "event_id": "e" * 513, "data": {}}
    message = events.pubsub_message(push_envelope(json.dumps(body)))
    with pytest.raises(InvalidInput) as caught:
        events.envelope(message)
    assert caught.value.problems == [
        "run_id: must be at most 512 bytes, got 513",
        "event_id: must be at most 512 bytes, got 513",
    ]


def test_notification_labels_follow_google_cloud_label_limits() -> None:
    labels = {"k" * 64: "v", "model": "m" * 64, **{f"l{i}": "x" for i in range(10)}}
    envelope = events.new_envelope("notification", "r", {"kind": "k", "title": "t", "labels": labels})
    with pytest.raises(InvalidInput) as caught:
        events.parse_notification(envelope)
    assert caught.value.problems == [
        f"data.labels.{'k' * 64}: key must be at most 63 characters, got 64",
        "data.labels.model: value must be at most 63 characters, got 64",
    ]
    too_many = {f"l{i}": "x" for i in range(65)}
    with pytest.raises(InvalidInput, match=r"data\.labels: at most 64 entries, got 65"):
        events.parse_notification(
            events.new_envelope("notification", "r", {"kind": "k", "title": "t", "labels": too_many})
        )


def test_storage_names_and_delivery_ids_are_bounded() -> None:
    with pytest.raises(InvalidInput, match="name: must be at most 1024 bytes, got 1025"):
        events.storage_object({"bucket": "b", "name": "n" * 1025, "generation": "1"})
    push = {"ref": "refs/heads/main", "after": "a" * 40, "repository": {"full_name": "o/r"}}
    with pytest.raises(InvalidInput, match=r"\(delivery id\): must be at most 512 bytes, got 600"):
        events.github_push(push, delivery_id="d" * 600)
    assert events.github_push(push, delivery_id="d-1").delivery_id == "d-1"


def test_approval_and_drift_ids_are_bounded() -> None:
    with pytest.raises(InvalidInput, match="run_id: must be at most 512 bytes"):
        events.approval_decision(
            {"run_id": "r" * 600, "model": "m", "version": "1", "decision": "approve", "approver": "a"}
        )
    with pytest.raises(InvalidInput, match=r"incident\.incident_id: must be at most 512 bytes"):
        events.drift_alert({"incident": {"incident_id": "i" * 600, "state": "open"}})


def test_base64_data_of_a_deep_document_in_a_push_body_is_refused_by_the_view() -> None:
    encoded = base64.b64encode(deeply_nested(5000).encode()).decode()
    message = events.pubsub_message({"message": {"messageId": "1", "data": encoded}})
    with pytest.raises(InvalidInput, match="nested deeper"):
        events.envelope(message)
