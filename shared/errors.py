"""One error model: every error this project raises on purpose says whether a retry can help.

* :class:`PermanentError` — the same input can never succeed (bad payload, validation, a reused idempotency
  key, a bad signature). The event is recorded in the ledger's ``rejected`` collection with its
  :class:`RejectionReason` and acknowledged, so the retry machinery stops.
* :class:`TransientError` — a later attempt may succeed (rate limit, unavailable dependency, a lease held by
  another delivery, a lost optimistic race). The event is redelivered.

Google API errors are classified by :func:`is_transient`. Anything else (a bug) is neither: it is retried and
finally dead-lettered, never acknowledged unseen.

``http_status`` is what an HTTP-triggered function answers (``shared.function.run_http``): 4xx stops a webhook
sender's retries, 5xx asks for one. Pub/Sub-triggered functions always acknowledge a permanent error with 2xx
after recording it (on a push subscription any non-2xx is a retry).
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Iterable


class RejectionReason(enum.StrEnum):
    """Why an event was acknowledged without being handled (the ``reason`` of a ``rejected`` record)."""

    INVALID = "invalid"  # the payload cannot be understood; ``problems`` lists every bad field
    EXPIRED = "expired"  # older than spec.events.maxAge (or published implausibly far in the future)
    UNAUTHORIZED = "unauthorized"  # a signature or token did not verify
    KEY_REUSE = "key_reuse"  # an idempotency key came back with a different payload
    CONFIG = "config"  # the pipeline configuration cannot handle this event
    REFUSED = "refused"  # the domain refused it on purpose (e.g. a template that fails on this event)


class PipelineError(Exception):
    """Base of every error this project raises on purpose."""

    http_status = 500
    retryable = True


class PermanentError(PipelineError):
    """The input can never succeed: record, notify once, acknowledge."""

    http_status = 400
    retryable = False
    reason = RejectionReason.REFUSED

    def __init__(self, message: str, problems: Iterable[str] = ()) -> None:
        self.problems = list(problems) or [message]
        super().__init__(message)


class InvalidInput(PermanentError):
    """A payload (event, request body, file) that cannot be understood; ``problems`` names every field."""

    reason = RejectionReason.INVALID

    def __init__(self, what: str, problems: Iterable[str]) -> None:
        self.what = what
        items = list(problems)
        super().__init__(f"invalid {what}: " + "; ".join(items), items)


class Unauthorized(PermanentError):
    """The caller could not be verified (bad or missing signature/token)."""

    http_status = 401
    reason = RejectionReason.UNAUTHORIZED


class ConfigError(PermanentError):
    """The pipeline configuration is invalid; the message names the file and the fields."""

    http_status = 500
    reason = RejectionReason.CONFIG


class ExpiredEvent(PermanentError):
    """The event is older than the configured maximum age: recorded as expired and acknowledged."""

    http_status = 200
    reason = RejectionReason.EXPIRED


class TransientError(PipelineError):
    """A later attempt may succeed (rate limit, unavailable dependency, lease held elsewhere)."""

    http_status = 503
    retryable = True


class DeadlineExceeded(TransientError):
    """The invocation's time budget ran out before the work finished; the event is redelivered."""

    http_status = 503


#: The Google API errors worth another attempt (google.api_core.exceptions' class names).
_TRANSIENT_GOOGLE = (
    "TooManyRequests",
    "ServiceUnavailable",
    "InternalServerError",
    "DeadlineExceeded",
    "GatewayTimeout",
    "BadGateway",
    "Aborted",
)


def is_transient(error: BaseException) -> bool:
    """True when retrying the same call later may succeed."""
    if isinstance(error, PipelineError):
        return error.retryable
    # google.api_core is not imported for this (about 100 ms of grpc at cold start): an error of its classes
    # can only exist once something else has imported it.
    google = sys.modules.get("google.api_core.exceptions")
    if google is not None:
        if isinstance(error, tuple(getattr(google, name) for name in _TRANSIENT_GOOGLE)):
            return True
        if isinstance(error, google.GoogleAPICallError):
            return False
    # Connection resets, timeouts and the like: worth another attempt.
    return isinstance(error, (ConnectionError, TimeoutError, OSError))


def is_permanent(error: BaseException) -> bool:
    """True only for a :class:`PermanentError`: redelivery is useless. Anything else, a bug included, is
    retried and finally dead-lettered, never acknowledged unseen."""
    return isinstance(error, PermanentError)


def rejection_reason(error: BaseException) -> RejectionReason:
    """The ``rejected`` record's reason for a permanent error."""
    return error.reason if isinstance(error, PermanentError) else RejectionReason.REFUSED


def http_status_for(error: BaseException) -> int:
    """The HTTP status an HTTP function answers for ``error``: 5xx means "retry", 4xx/2xx means "stop"."""
    if isinstance(error, PipelineError):
        return error.http_status
    return 503 if is_transient(error) else 500
