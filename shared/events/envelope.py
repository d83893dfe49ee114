"""Our internal event: a fact with a type, the run it belongs to, and what caused it."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.events.common import JSON, identifier, invalid
from shared.events.limits import MAX_NAME_BYTES
from shared.events.pubsub import PubSubMessage
from shared.problems import Problems

SCHEMA_VERSION = "1"


@dataclass(frozen=True)
class Envelope:
    """Our internal event: a fact with a type, the run it belongs to, and what caused it.

    On Pub/Sub the body is this JSON, and ``type``, ``run_id``, ``event_id`` and ``schema_version`` are
    repeated as message attributes so subscribers can route without parsing.
    """

    type: str
    run_id: str
    event_id: str
    data: Mapping[str, Any]
    schema_version: str = SCHEMA_VERSION
    causation_id: str = ""
    occurred_at: datetime | None = None

    def to_json(self) -> JSON:
        return {
            "type": self.type,
            "run_id": self.run_id,
            "event_id": self.event_id,
            "schema_version": self.schema_version,
            "causation_id": self.causation_id,
            "occurred_at": (self.occurred_at or datetime.now(UTC)).isoformat().replace("+00:00", "Z"),
            "data": dict(self.data),
        }

    def attributes(self) -> dict[str, str]:
        return {
            "type": self.type,
            "run_id": self.run_id,
            "event_id": self.event_id,
            "schema_version": self.schema_version,
        }


def new_envelope(
    event_type: str, run_id: str, data: Mapping[str, Any], causation_id: str = "", event_id: str | None = None
) -> Envelope:
    """A fresh envelope; pass ``event_id`` derived from the cause to make re-emission idempotent."""
    return Envelope(
        type=event_type,
        run_id=run_id,
        event_id=event_id or uuid.uuid4().hex,
        data=data,
        causation_id=causation_id,
        occurred_at=datetime.now(UTC),
    )


def envelope(message: PubSubMessage) -> Envelope:
    """The internal event a Pub/Sub message carries (its data is the envelope's JSON)."""
    problems = Problems()
    body = problems.reader(message.json())
    event_type = body.string("type", "", required=True, max_bytes=MAX_NAME_BYTES)
    run_id = identifier(body, "run_id")
    event_id = identifier(body, "event_id")
    schema_version = body.string("schema_version", "", max_bytes=MAX_NAME_BYTES) or SCHEMA_VERSION
    if schema_version != SCHEMA_VERSION:
        body.add("schema_version", f"this release reads {SCHEMA_VERSION!r}, got {schema_version!r}")
    data = body.mapping("data", required=True)
    occurred_at = body.timestamp("occurred_at")
    causation_id = identifier(body, "causation_id", required=False)
    attribute_type = message.attributes.get("type")
    if attribute_type and event_type and attribute_type != event_type:
        problems.add("attributes.type", f"{attribute_type[:60]!r} differs from body type {event_type!r}")
    problems.raise_if_any(invalid("internal event"))
    return Envelope(
        type=event_type,
        run_id=run_id,
        event_id=event_id,
        data=data,
        schema_version=schema_version,
        causation_id=causation_id,
        occurred_at=occurred_at,
    )
