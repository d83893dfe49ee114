"""Adapters from an incoming event to a domain call, with the retry decision made in one place.

* a :class:`~shared.errors.PermanentError` (or any error whose ``retryable`` is False) is recorded in the
  ledger's rejected events with every problem, logged, and acknowledged (2xx): redelivery cannot help;
* an event older than ``spec.events.maxAge`` is recorded as ``expired`` and acknowledged;
* anything else (transient errors, and bugs too) escapes, so functions-framework answers 500 and Pub/Sub
  redelivers with backoff, then dead-letters after the subscription's maximum delivery attempts. Nothing is
  dropped silently.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from shared import log
from shared.errors import ExpiredEvent, is_permanent, is_transient
from shared.events import CloudEventInfo, InvalidEvent, PubSubMessage, pubsub_message
from shared.runtime import Runtime, get_runtime

PubSubHandler = Callable[[PubSubMessage, Runtime], None]


def _event_data(event: Any) -> Any:
    getter = getattr(event, "get_data", None)
    data = getter() if callable(getter) else getattr(event, "data", None)
    if isinstance(data, (bytes, bytearray)):
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError):
            return data.decode("utf-8", errors="replace")
    return data


def check_age(published: datetime | None, runtime: Runtime) -> None:
    """Raise :class:`ExpiredEvent` when the event is older than the configured maximum age."""
    if published is None:
        return
    age = (runtime.clock() - published).total_seconds()
    if age > runtime.config.max_event_age_seconds:
        raise ExpiredEvent(
            f"event published {published.isoformat()} is {age:.0f}s old, "
            f"over spec.events.maxAge ({runtime.config.max_event_age_seconds:.0f}s)"
        )


def _payload_for_record(data: Any) -> dict[str, Any] | str:
    if isinstance(data, Mapping):
        return dict(data)
    return data if isinstance(data, str) else repr(data)


def run_pubsub(function_name: str, event: Any, handle: PubSubHandler) -> str:
    """Run ``handle`` for a Pub/Sub CloudEvent; returns the outcome (``done``/``rejected``/``expired``)."""
    runtime = get_runtime()
    info = CloudEventInfo.of(event)
    data = _event_data(event)
    event_id = info.id
    try:
        message = pubsub_message(data)
        event_id = message.message_id or info.id
        check_age(message.publish_time or info.time, runtime)
        handle(message, runtime)
    except Exception as error:
        if not is_permanent(error):
            log.log(
                "WARNING" if is_transient(error) else "ERROR",
                "failure, the event will be redelivered (then dead-lettered)",
                function=function_name,
                event_id=event_id,
                error=f"{type(error).__name__}: {error}",
            )
            raise
        reason = "expired" if isinstance(error, ExpiredEvent) else "invalid"
        if not isinstance(error, (InvalidEvent, ExpiredEvent)):
            reason = type(error).__name__
        problems = list(getattr(error, "problems", []) or [str(error)])
        source = f"{function_name}:{info.source}"
        recorded = runtime.ledger.record_rejected(
            event_id or "unknown", reason, problems, source, _payload_for_record(data)
        )
        log.error(
            "event rejected and acknowledged" if reason != "expired" else "expired event acknowledged",
            function=function_name,
            event_id=event_id,
            reason=reason,
            problems=problems,
            first_time=recorded,
        )
        return "expired" if reason == "expired" else "rejected"
    return "done"
