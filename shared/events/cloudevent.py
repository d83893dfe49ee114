"""CloudEvents: the context attributes we use, and an HTTP delivery turned into one event.

An event-triggered function receives one of three HTTP shapes:

* a **binary** CloudEvent (Eventarc's default): ``ce-*`` headers, the body is the event data;
* a **structured** CloudEvent: ``Content-Type: application/cloudevents+json``, attributes and ``data`` in the
  body;
* a **raw Pub/Sub push** (a push subscription straight to the function): ``{"message", "subscription"}``.

:func:`event_from_http` reads all three with the same bounds (body size, JSON depth, id size) and raises
only :class:`~shared.errors.InvalidInput`; a raw push becomes a ``messagePublished`` CloudEvent whose data is
the push body itself, so nothing in it (``subscription``, ``deliveryAttempt``) is lost.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from shared.errors import InvalidInput
from shared.events.common import parse_json
from shared.events.limits import MAX_ID_BYTES, MAX_NAME_BYTES, MAX_PUSH_BODY_BYTES
from shared.events.pubsub import PUBSUB_PUBLISHED
from shared.events.timestamps import parse_timestamp
from shared.problems import Problems, utf8_size

if TYPE_CHECKING:
    from cloudevents.http import CloudEvent

_TOPIC_IN_PATH = re.compile(r"projects/[^/?]+/topics/[^/?]+")
#: Context attributes a CloudEvent must carry (CloudEvents 1.0, "Required Attributes").
_REQUIRED = ("id", "source", "type", "specversion")
#: Any other context attribute (a URI reference, a subject) stays under this size.
_MAX_ATTRIBUTE_BYTES = 4096


class Headers(Protocol):
    """HTTP headers: a plain mapping or werkzeug's ``Headers`` (anything with ``items()``)."""

    def items(self) -> Iterable[tuple[str, str]]: ...


@dataclass(frozen=True)
class CloudEventInfo:
    """The CloudEvent context attributes we use, from the SDK's event or a plain mapping."""

    id: str
    type: str
    source: str
    subject: str
    time: datetime | None

    @classmethod
    def of(cls, event: Any) -> CloudEventInfo:
        def attribute(name: str) -> str:
            getter = getattr(event, "get", None)
            value = getter(name) if callable(getter) else None
            return "" if value is None else str(value)

        return cls(
            id=attribute("id"),
            type=attribute("type"),
            source=attribute("source"),
            subject=attribute("subject"),
            time=parse_timestamp(attribute("time")) if attribute("time") else None,
        )


def body_digest(body: bytes) -> str:
    """A stable id for a delivery that has none of its own: the same bytes give the same id on redelivery."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


def event_from_http(headers: Headers, body: bytes, path: str = "/") -> CloudEvent:
    """The CloudEvent an HTTP delivery carries (binary, structured, or a raw Pub/Sub push).

    Header names are compared case-insensitively.
    """
    if len(body) > MAX_PUSH_BODY_BYTES:
        raise InvalidInput("HTTP delivery", [f"(body): at most {MAX_PUSH_BODY_BYTES} bytes, got {len(body)}"])
    lowered = {str(name).lower(): str(value) for name, value in headers.items()}
    content_type = lowered.get("content-type", "").split(";")[0].strip().lower()
    if "ce-specversion" in lowered:
        attributes: dict[str, Any] = {
            name[3:]: value for name, value in lowered.items() if name.startswith("ce-")
        }
        data = _json_body(body, "binary CloudEvent") if body.strip() else None
        _check_attributes(attributes, "binary CloudEvent", "ce-")
        return _cloud_event(attributes, data, "binary CloudEvent")
    if content_type == "application/cloudevents+json":
        document = _json_body(body, "structured CloudEvent")
        if not isinstance(document, Mapping):
            raise InvalidInput(
                "structured CloudEvent", [f"(body): must be an object, got {type(document).__name__}"]
            )
        attributes = {str(k): v for k, v in document.items() if k not in ("data", "data_base64")}
        _check_attributes(attributes, "structured CloudEvent", "")
        data = document.get("data")
        if "data_base64" in document:
            data = _base64_json(document["data_base64"])
        return _cloud_event(attributes, data, "structured CloudEvent")
    push = _json_body(body, "Pub/Sub push")
    if not isinstance(push, Mapping):
        raise InvalidInput("Pub/Sub push", [f"(body): must be an object, got {type(push).__name__}"])
    return _cloud_event(_push_attributes(push, body, path), dict(push), "Pub/Sub push")


def _cloud_event(attributes: Mapping[str, Any], data: Any, what: str) -> CloudEvent:
    from cloudevents.exceptions import GenericException
    from cloudevents.http import CloudEvent

    # An absent ``time`` stays absent: the SDK would default it to the current time, which is not when the
    # event happened and would defeat the age and clock-skew checks.
    merged: dict[str, Any] = {"time": None, **attributes}
    try:
        return CloudEvent(merged, data)
    except GenericException as error:  # e.g. a specversion the SDK does not know
        raise InvalidInput(what, [f"(attributes): {error}"]) from None


def _json_body(body: bytes, what: str) -> Any:
    return parse_json(body, max_bytes=MAX_PUSH_BODY_BYTES, what=what, field="(body)")


def _base64_json(encoded: Any) -> Any:
    if not isinstance(encoded, str):
        raise InvalidInput("structured CloudEvent", ["data_base64: must be a base64 string"])
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("structured CloudEvent", ["data_base64: not valid base64"]) from None
    return parse_json(raw, max_bytes=MAX_PUSH_BODY_BYTES, what="structured CloudEvent", field="data_base64")


def _check_attributes(attributes: Mapping[str, Any], what: str, prefix: str) -> None:
    problems = Problems()
    for name in _REQUIRED:
        value = attributes.get(name)
        if not isinstance(value, str) or not value:
            problems.add(prefix + name, "required (a CloudEvents 1.0 context attribute)")
    for name, value in attributes.items():
        limit = MAX_ID_BYTES if name == "id" else _MAX_ATTRIBUTE_BYTES
        if isinstance(value, str) and utf8_size(value) > limit:
            problems.add(prefix + name, f"must be at most {limit} bytes, got {utf8_size(value)}")
        elif not isinstance(value, (str, int, bool)) and value is not None:
            problems.add(prefix + name, f"must be a string, got {type(value).__name__}")
    problems.raise_if_any(lambda items: InvalidInput(what, items))


def _push_attributes(push: Mapping[str, Any], body: bytes, path: str) -> dict[str, str]:
    """What functions-framework derives for a raw push (id, source from the topic in the path, time)."""
    message = push.get("message")
    message = message if isinstance(message, Mapping) else {}
    message_id = message.get("messageId") or message.get("message_id")
    # A push without a usable messageId is still turned into an event, so that it is recorded (as
    # rejected, by the Pub/Sub view) under an id that is the same on every redelivery of those bytes.
    usable = isinstance(message_id, str) and 0 < utf8_size(message_id) <= MAX_ID_BYTES
    topic = _TOPIC_IN_PATH.search(path)
    publish_time = message.get("publishTime")
    attributes = {
        "specversion": "1.0",
        "id": message_id if usable and isinstance(message_id, str) else body_digest(body),
        "type": PUBSUB_PUBLISHED,
        "source": "//pubsub.googleapis.com/" + (topic.group(0) if topic else ""),
    }
    if isinstance(publish_time, str) and utf8_size(publish_time) <= MAX_NAME_BYTES:
        attributes["time"] = publish_time
    return attributes
