"""Adapters from an incoming event to a domain call, with the retry decision made in one place.

* a :class:`~shared.errors.PermanentError` is recorded in the ledger's rejected events with its
  :class:`~shared.errors.RejectionReason` and every problem, logged, and acknowledged (2xx): redelivery
  cannot help. Parsing raises nothing else, whatever the input holds (deep JSON, huge numbers, oversized
  ids), so hostile input ends as a record, not in the dead-letter topic;
* an event older than ``spec.events.maxAge``, or published more than ``spec.events.maxClockSkew`` in the
  future, is recorded as ``expired`` and acknowledged;
* every invocation runs inside a :class:`~shared.deadline.Deadline` a margin inside its subscription's ack
  deadline, and every call it makes takes its timeout from it (a :class:`~shared.errors.DeadlineExceeded`
  is transient: the event comes back);
* anything else (transient errors, and bugs too) escapes, so functions-framework answers 500 and Pub/Sub
  redelivers with backoff, then dead-letters after the subscription's maximum delivery attempts. Nothing is
  dropped silently.

Why Pub/Sub-triggered functions are registered as HTTP functions (``@functions_framework.http`` calling
:func:`pubsub_endpoint`) rather than ``@functions_framework.cloud_event``: for a CloudEvent function the
framework converts the request itself before our code runs (``functions_framework/__init__.py``,
``_cloud_event_view_func_wrapper``: ``cloudevents.http.from_http``, then
``event_conversion.background_event_to_cloud_event``). A raw push without ``messageId`` or ``data`` fails
``event_conversion._is_raw_pubsub_payload`` and is answered ``400`` with ``flask.abort`` — a nack, so Pub/Sub
retries it into the dead-letter topic and the ledger never sees it — and a body nested 10,000 deep raises
``RecursionError`` inside ``from_http``. As an HTTP function we see the raw body first and
:func:`shared.events.event_from_http` reads all three shapes (binary and structured CloudEvents, raw
push) with explicit bounds; every request ends as ``done``, a recorded rejection (2xx) or a 5xx for retry.
(Rejected alternatives: WSGI middleware in front of the framework exists only in our local function host,
not in Cloud Functions, which builds the framework's app itself; ``functions_framework.errorhandler(400)``
runs after the conversion failed, would parse the body again, and could only guess that a
``RecursionError`` was the input's fault. The decorator's signature type wins over the deployment's, so
an Eventarc trigger still delivers its binary CloudEvents to the HTTP function.) The framework parses the
body up to three times (``from_http``, ``get_json`` in the conversion); we parse it once and walk it once
for depth.
Measured through the test client with a no-op handler: a 1 KB notification push costs about the same
either way (0.7 to 2 ms per request on a busy 2-core machine), 1 MB of data about 10 ms either way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared import deadline as deadlines
from shared import log
from shared.config import RetryPolicy
from shared.deadline import Deadline
from shared.errors import (
    ExpiredEvent,
    InvalidInput,
    RejectionReason,
    http_status_for,
    is_permanent,
    is_transient,
    rejection_reason,
)
from shared.events import (
    CloudEventInfo,
    PubSubMessage,
    body_digest,
    check_json_value,
    event_from_http,
    parse_json,
    pubsub_message,
)
from shared.events.limits import MAX_ID_BYTES, MAX_PUSH_BODY_BYTES
from shared.problems import utf8_size
from shared.runtime import Runtime, get_runtime

if TYPE_CHECKING:
    from flask import Request

PubSubHandler = Callable[[PubSubMessage, Runtime], None]

#: At most this much of an unreadable body goes to its rejected record (the ledger keeps 100,000 characters
#: and marks the record truncated).
_RECORDED_BODY_BYTES = 400_000
_MAX_SOURCE_CHARS = 512
_RECORD_TIMEOUT_SECONDS = 10.0


def pubsub_endpoint(function_name: str, request: Request, handle: PubSubHandler) -> tuple[str, int]:
    """The HTTP entry point of a Pub/Sub-triggered function: any delivery shape in, an HTTP status out.

    A delivery that is not even an event (not JSON, too large, too deep, a CloudEvent without its required
    attributes) is recorded as rejected and acknowledged here; everything else goes to :func:`run_pubsub`.
    """
    log.use_trace(request.headers, get_runtime().config.project)
    if request.method != "POST":
        return "deliveries are POSTed", 405
    body = request.get_data(cache=True)
    try:
        event = event_from_http(request.headers, body, request.path)
    except InvalidInput as error:
        runtime = get_runtime()
        header_id = request.headers.get("ce-id", "")
        event_id = header_id if 0 < utf8_size(header_id) <= MAX_ID_BYTES else body_digest(body)
        text = body[:_RECORDED_BODY_BYTES].decode("utf-8", errors="replace")
        outcome = _reject(function_name, runtime, event_id, request.path, error, text)
        return outcome, 200
    return run_pubsub(function_name, event, handle), 200


def _event_data(raw: Any) -> Any:
    """The event's data as JSON: parsed (bounded) when it arrived as bytes, checked when already parsed."""
    if isinstance(raw, (bytes, bytearray, str)):
        text = bytes(raw) if isinstance(raw, bytearray) else raw
        return parse_json(text, max_bytes=MAX_PUSH_BODY_BYTES, what="event data", field="(data)")
    if raw is not None:
        check_json_value(raw, what="event data", field="(data)")
    return raw


def check_age(published: datetime | None, runtime: Runtime) -> None:
    """Raise :class:`ExpiredEvent` when the event is older than ``spec.events.maxAge``, or published further
    in the future than ``spec.events.maxClockSkew`` (a wrong or forged clock: it would never age out)."""
    if published is None:
        return
    config = runtime.config
    age = (runtime.clock() - published).total_seconds()
    if age > config.max_event_age_seconds:
        raise ExpiredEvent(
            f"event published {published.isoformat()} is {age:.0f}s old, "
            f"over spec.events.maxAge ({config.max_event_age_seconds:.0f}s)"
        )
    if -age > config.max_clock_skew_seconds:
        raise ExpiredEvent(
            f"event published {published.isoformat()} is {-age:.0f}s in the future, "
            f"over spec.events.maxClockSkew ({config.max_clock_skew_seconds:.0f}s)"
        )


def invocation_deadline(function_name: str, runtime: Runtime) -> Deadline:
    """The time budget of one delivery: inside the shortest ack deadline of the function's subscriptions,
    so the work is answered before Pub/Sub gives up on it and redelivers work that is still running."""
    ack_deadlines = [
        trigger.retry.ack_deadline_seconds
        for trigger in runtime.config.triggers
        if trigger.function == function_name
    ]
    return Deadline.within_ack_deadline(min(ack_deadlines, default=RetryPolicy().ack_deadline_seconds))


def run_pubsub(function_name: str, event: Any, handle: PubSubHandler) -> str:
    """Run ``handle`` for a Pub/Sub CloudEvent; returns the outcome (``done``/``rejected``/``expired``)."""
    runtime = get_runtime()
    with deadlines.bounded(invocation_deadline(function_name, runtime)):
        return _run_pubsub(function_name, event, handle, runtime)


def _run_pubsub(function_name: str, event: Any, handle: PubSubHandler, runtime: Runtime) -> str:
    info = CloudEventInfo.of(event)
    getter = getattr(event, "get_data", None)
    raw = getter() if callable(getter) else getattr(event, "data", None)
    event_id = info.id
    try:
        data = _event_data(raw)
        message = pubsub_message(data)
        event_id = message.message_id or event_id
        check_age(message.publish_time or info.time, runtime)
        handle(message, runtime)
    except Exception as error:
        if not is_permanent(error):
            log.log(
                "WARNING" if is_transient(error) else "ERROR",
                "failure, the event will be redelivered (then dead-lettered)",
                function=function_name,
                event_id=event_id[:MAX_ID_BYTES],
                error=f"{type(error).__name__}: {error}",
            )
            raise
        return _reject(function_name, runtime, event_id, info.source, error, _payload_for_record(raw))
    return "done"


def _payload_for_record(raw: Any) -> dict[str, Any] | str:
    """The payload as delivered, when it is JSON the ledger can store; otherwise bounded text."""
    if isinstance(raw, (bytes, bytearray)):
        return bytes(raw[:_RECORDED_BODY_BYTES]).decode("utf-8", errors="replace")
    if isinstance(raw, str):
        return raw[:_RECORDED_BODY_BYTES]
    if isinstance(raw, Mapping):
        try:
            check_json_value(raw, what="event data", field="(data)")
        except InvalidInput as error:
            return f"(payload not recorded: {error})"
        return dict(raw)
    return f"(payload of type {type(raw).__name__})"


def _record_id(event_id: str, payload: dict[str, Any] | str) -> str:
    """The rejected record's id: the event's own id when it can be a ledger key, else a stable digest."""
    if event_id and utf8_size(event_id) <= MAX_ID_BYTES:
        return event_id
    if event_id:
        return body_digest(event_id.encode("utf-8", "surrogatepass"))
    return body_digest(repr(payload).encode("utf-8", "surrogatepass"))


def _reject(
    function_name: str,
    runtime: Runtime,
    event_id: str,
    source: str,
    error: Exception,
    payload: dict[str, Any] | str,
) -> str:
    """Record a permanent failure once, log it, and return the outcome to acknowledge with."""
    reason = rejection_reason(error)
    problems = list(getattr(error, "problems", []) or [str(error)])
    record_id = _record_id(event_id, payload)
    recorded = runtime.ledger.record_rejected(
        record_id,
        reason.value,
        problems,
        f"{function_name}:{source}"[:_MAX_SOURCE_CHARS],
        payload,
        timeout=deadlines.current().timeout(_RECORD_TIMEOUT_SECONDS),
    )
    expired = reason is RejectionReason.EXPIRED
    log.error(
        "expired event acknowledged" if expired else "event rejected and acknowledged",
        function=function_name,
        event_id=record_id,
        reason=reason.value,
        problems=problems,
        first_time=recorded,
    )
    return "expired" if expired else "rejected"


# -- CloudEvent-triggered functions (Cloud Storage ``object.v1.finalized`` through Eventarc) ----------------

#: ``handle(event, data, runtime)``: the CloudEvent's context attributes and its data as bounded JSON.
CloudEventHandler = Callable[[CloudEventInfo, Any, Runtime], None]


def cloudevent_endpoint(function_name: str, request: Request, handle: CloudEventHandler) -> tuple[str, int]:
    """The HTTP entry point of a CloudEvent-triggered function that is not fed by Pub/Sub (a storage event).

    The same decisions as :func:`pubsub_endpoint`: a delivery that is not a CloudEvent, a permanent error and
    an expired event are recorded as rejected and acknowledged (200); anything else escapes, so the caller
    (Eventarc, the storage emulator) retries with backoff and then dead-letters. Registered as an HTTP
    function for the reason the module docstring gives.
    """
    log.use_trace(request.headers, get_runtime().config.project)
    if request.method != "POST":
        return "deliveries are POSTed", 405
    body = request.get_data(cache=True)
    try:
        event = event_from_http(request.headers, body, request.path)
    except InvalidInput as error:
        runtime = get_runtime()
        header_id = request.headers.get("ce-id", "")
        event_id = header_id if 0 < utf8_size(header_id) <= MAX_ID_BYTES else body_digest(body)
        text = body[:_RECORDED_BODY_BYTES].decode("utf-8", errors="replace")
        return _reject(function_name, runtime, event_id, request.path, error, text), 200
    return run_cloudevent(function_name, event, handle), 200


def run_cloudevent(function_name: str, event: Any, handle: CloudEventHandler) -> str:
    """Run ``handle`` for a CloudEvent inside the invocation deadline; returns the outcome, like
    :func:`run_pubsub`. The event's age is its ``time`` attribute (for storage: the object's ``updated``)."""
    runtime = get_runtime()
    with deadlines.bounded(invocation_deadline(function_name, runtime)):
        info = CloudEventInfo.of(event)
        getter = getattr(event, "get_data", None)
        raw = getter() if callable(getter) else getattr(event, "data", None)
        try:
            data = _event_data(raw)
            check_age(info.time, runtime)
            handle(info, data, runtime)
        except Exception as error:
            if not is_permanent(error):
                log.log(
                    "WARNING" if is_transient(error) else "ERROR",
                    "failure, the event will be redelivered (then dead-lettered)",
                    function=function_name,
                    event_id=info.id[:MAX_ID_BYTES],
                    error=f"{type(error).__name__}: {error}",
                )
                raise
            return _reject(function_name, runtime, info.id, info.source, error, _payload_for_record(raw))
        return "done"


# -- HTTP-triggered functions (webhooks) ---------------------------------------------------------------------

#: A webhook sender gives up after about 10 s (GitHub's limit); the work is answered well inside that.
HTTP_BUDGET_SECONDS = 8.0
# Reasons whose request body is worth keeping in the rejected record: the caller was verified (or nothing
# needed verifying) and the body itself is the problem. Unverified bodies are never stored.
_BODY_KEPT_FOR = frozenset({RejectionReason.INVALID, RejectionReason.REFUSED, RejectionReason.KEY_REUSE})


class RequestTooLarge(InvalidInput):
    """A request body over the function's limit, refused before it is read (HTTP 413)."""

    http_status = 413

    def __init__(self, size: int | None, limit: int) -> None:
        shown = f"{size} bytes" if size is not None else f"over {limit} bytes"
        super().__init__("HTTP request", [f"body is {shown}; at most {limit} bytes are accepted"])


@dataclass(frozen=True)
class HttpRequest:
    """What an HTTP handler gets: the request line, its headers and the raw body, read within the limit."""

    method: str
    path: str
    headers: Any  # werkzeug ``Headers`` (case-insensitive; not a Mapping)
    body: bytes  # exactly the bytes received: signatures are computed over them


#: ``(JSON body, HTTP status)``: functions-framework (Flask) sends a dict as a JSON response.
HttpAnswer = tuple[dict[str, Any], int]
HttpHandler = Callable[[HttpRequest, Runtime], HttpAnswer]


def run_http(
    function_name: str,
    request: Request,
    handle: HttpHandler,
    *,
    max_body_bytes: int,
    budget_seconds: float = HTTP_BUDGET_SECONDS,
) -> HttpAnswer:
    """Run ``handle`` for an HTTP request (a webhook) inside a deadline; the retry decision is the status.

    A body over ``max_body_bytes`` is refused from its ``Content-Length`` before it is read (413). A
    :class:`~shared.errors.PermanentError` is recorded in the ledger's rejected events (the body kept only
    for reasons where the caller was not the problem — never an unverified body) and answered with
    :func:`~shared.errors.http_status_for` (401, 400, 413...): the sender should not retry. A transient
    error, or a bug, is answered 5xx: the sender may retry, and the handler's steps make that safe.
    """
    log.use_trace(request.headers, get_runtime().config.project)
    if request.method != "POST":
        return {"error": "requests are POSTed"}, 405
    runtime = get_runtime()
    with deadlines.bounded(Deadline(budget_seconds)):
        body = b""
        try:
            body = _read_body(request, max_body_bytes)
            return handle(HttpRequest(request.method, request.path, request.headers, body), runtime)
        except Exception as error:
            return _http_failure(function_name, runtime, request.path, body, error)


def _read_body(request: Request, limit: int) -> bytes:
    declared = request.content_length
    if declared is not None and declared > limit:
        raise RequestTooLarge(declared, limit)
    body = request.stream.read(limit + 1)  # a chunked body has no Content-Length: stop one byte past
    if len(body) > limit:
        raise RequestTooLarge(None, limit)
    return body


def _http_failure(
    function_name: str, runtime: Runtime, path: str, body: bytes, error: Exception
) -> HttpAnswer:
    status = http_status_for(error)
    if not is_permanent(error):
        log.log(
            "WARNING" if is_transient(error) else "ERROR",
            "failure, answered for a retry",
            function=function_name,
            status=status,
            error=f"{type(error).__name__}: {error}",
        )
        shown = str(error) if is_transient(error) else type(error).__name__  # a bug's text stays in the log
        return {"error": "not done, try again later", "detail": shown}, status
    reason = rejection_reason(error)
    if reason in _BODY_KEPT_FOR and status != 413:
        payload: dict[str, Any] | str = body[:_RECORDED_BODY_BYTES].decode("utf-8", errors="replace")
    else:
        payload = f"(body of {len(body)} bytes not recorded: {reason.value})"
    try:
        _reject(function_name, runtime, body_digest(body), path, error, payload)
    except Exception as record_error:  # the refusal must be on record before the sender is told to stop
        log.warning(
            "could not record a refused request; answered for a retry",
            function=function_name,
            error=f"{type(record_error).__name__}: {record_error}",
        )
        return {"error": "not done, try again later"}, 503
    problems = list(getattr(error, "problems", []) or [str(error)])
    return {"error": str(error), "reason": reason.value, "problems": problems}, status
