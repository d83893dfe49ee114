"""Errors that carry the retry decision.

A handler raises :class:`PermanentError` when the same input can never succeed (bad payload, validation,
a reused idempotency key): the event is recorded and acknowledged, so the retry machinery stops.
It raises :class:`TransientError` (or lets a transient Google API error escape) when a later attempt
may succeed: the event is redelivered.
"""

from __future__ import annotations

from collections.abc import Iterable

from google.api_core import exceptions as google_exceptions


class PipelineError(Exception):
    """Base of every error this project raises on purpose."""

    http_status = 500
    retryable = True


class PermanentError(PipelineError):
    """The input can never succeed: record, notify once, acknowledge."""

    http_status = 400
    retryable = False

    def __init__(self, message: str, problems: Iterable[str] = ()) -> None:
        self.problems = list(problems)
        super().__init__(message)


class Unauthorized(PermanentError):
    """The caller could not be verified (bad or missing signature/token)."""

    http_status = 401


class ConfigError(PermanentError):
    """The pipeline configuration is invalid; the message names the file and the fields."""

    http_status = 500


class TransientError(PipelineError):
    """A later attempt may succeed (rate limit, unavailable dependency, lease held elsewhere)."""

    http_status = 503
    retryable = True


class ExpiredEvent(PermanentError):
    """The event is older than the configured maximum age: recorded as expired and acknowledged."""

    http_status = 200


_TRANSIENT_GOOGLE = (
    google_exceptions.TooManyRequests,
    google_exceptions.ServiceUnavailable,
    google_exceptions.InternalServerError,
    google_exceptions.DeadlineExceeded,
    google_exceptions.GatewayTimeout,
    google_exceptions.BadGateway,
    google_exceptions.Aborted,
)


def is_transient(error: BaseException) -> bool:
    """True when retrying the same call later may succeed."""
    if isinstance(error, PipelineError):
        return error.retryable
    retryable = getattr(error, "retryable", None)  # e.g. the ledger's errors carry their own decision
    if isinstance(retryable, bool):
        return retryable
    if isinstance(error, _TRANSIENT_GOOGLE):
        return True
    if isinstance(error, google_exceptions.GoogleAPICallError):
        return False
    # Connection resets, timeouts and the like: worth another attempt.
    return isinstance(error, (ConnectionError, TimeoutError, OSError))


def is_permanent(error: BaseException) -> bool:
    """True only for errors that declare redelivery useless (``retryable = False``: invalid events, reused
    idempotency keys, ...). Anything else, a bug included, is retried and finally dead-lettered, never
    acknowledged unseen."""
    return getattr(error, "retryable", None) is False


def http_status_for(error: BaseException) -> int:
    """The HTTP status a function answers with for ``error``: 5xx means "retry", 4xx/2xx means "stop"."""
    if isinstance(error, PipelineError):
        return error.http_status
    status = getattr(error, "http_status", None)
    if isinstance(status, int):
        return status
    return 503 if is_transient(error) else 400
