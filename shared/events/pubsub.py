"""Pub/Sub: a message from a push request, a ``messagePublished`` CloudEvent, or a pull.

The Pub/Sub spec (``PubsubMessage``): the server always sets ``messageId`` and ``publishTime``; ``data``
may be empty *if* the message has at least one attribute. In JSON an empty ``data`` is simply absent, so a
push without ``data`` but with attributes is a legal message with empty data; one with neither can never
have been published and is refused, as is one without ``messageId``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.errors import InvalidInput
from shared.events.common import identifier, invalid, parse_json
from shared.events.limits import (
    MAX_ATTRIBUTE_KEY_BYTES,
    MAX_ATTRIBUTE_VALUE_BYTES,
    MAX_ATTRIBUTES,
    MAX_MESSAGE_DATA_BYTES,
    MAX_ORDERING_KEY_BYTES,
)
from shared.problems import Problems

PUBSUB_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"

#: The longest base64 text that can decode to at most MAX_MESSAGE_DATA_BYTES bytes.
_MAX_ENCODED_DATA_CHARS = (MAX_MESSAGE_DATA_BYTES + 2) // 3 * 4


@dataclass(frozen=True)
class PubSubMessage:
    """A Pub/Sub message from a push envelope or a ``messagePublished`` CloudEvent's data."""

    message_id: str
    publish_time: datetime | None
    attributes: Mapping[str, str]
    data: bytes
    subscription: str
    ordering_key: str
    delivery_attempt: int
    raw: Mapping[str, Any] = field(repr=False)

    def text(self) -> str:
        try:
            return self.data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput("Pub/Sub message", ["message.data: not UTF-8 text"]) from None

    def json(self) -> Any:
        """The data as JSON, bounded in size and depth (see :func:`~shared.events.common.parse_json`)."""
        return parse_json(
            self.data, max_bytes=MAX_MESSAGE_DATA_BYTES, what="Pub/Sub message", field="message.data"
        )


def pubsub_message(body: Any) -> PubSubMessage:
    """Parse ``{"message": {...}, "subscription": ..., "deliveryAttempt": ...}`` (push or CloudEvent data)."""
    problems = Problems()
    envelope = problems.reader(body)
    message = envelope.child("message", required=True)
    id_field = "messageId" if message.has("messageId") else "message_id"
    message_id = identifier(message, id_field, required=False)
    if message.get(id_field) in (None, ""):
        message.add("messageId", "required (Pub/Sub sets it on every message)")
    if message.has("publishTime"):
        publish_time = message.timestamp("publishTime")
    else:
        publish_time = message.timestamp("publish_time")
    attributes = message.string_map(
        "attributes",
        max_entries=MAX_ATTRIBUTES,
        max_key_bytes=MAX_ATTRIBUTE_KEY_BYTES,
        max_value_bytes=MAX_ATTRIBUTE_VALUE_BYTES,
    )
    data = b""
    encoded = message.get("data")
    if encoded is None or encoded == "":
        # Legal when the message has attributes (empty data is left out of the JSON); never without.
        if isinstance(envelope.get("message"), Mapping) and not message.get("attributes"):
            message.add("data", "required: a Pub/Sub message has data or at least one attribute")
    elif not isinstance(encoded, str):
        message.add("data", "must be a base64 string")
    elif len(encoded) > _MAX_ENCODED_DATA_CHARS:
        message.add("data", f"at most {MAX_MESSAGE_DATA_BYTES} bytes, got about {len(encoded) * 3 // 4}")
    else:
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            message.add("data", "not valid base64")
    subscription = envelope.string("subscription", "")
    ordering_key = message.string("orderingKey", "", max_bytes=MAX_ORDERING_KEY_BYTES)
    attempt = envelope.int64("deliveryAttempt")
    problems.raise_if_any(invalid("Pub/Sub message"))
    return PubSubMessage(
        message_id, publish_time, attributes, data, subscription, ordering_key, attempt, body
    )
