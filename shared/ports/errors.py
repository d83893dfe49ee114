"""Google API errors mapped, at the port boundary, onto the project's one error model (``shared.errors``).

Callers of a port never see ``google.api_core.exceptions``: they see a :class:`~shared.errors.TransientError`
(retrying later may succeed: 429, 5xx, deadline, ABORTED, a dropped connection) or a
:class:`~shared.errors.PermanentError` (the same call can never succeed: 400, 404, 403, 501), with the
original error kept as ``__cause__``. The subclasses below name the outcomes a caller may want to act on
rather than only record: a missing resource, a name already taken, a failed precondition, a lost race.

Over REST the client libraries pick the exception class from the HTTP code, so ABORTED and ALREADY_EXISTS
both arrive as a bare ``Conflict`` (409) and FAILED_PRECONDITION as ``BadRequest``; the canonical status in
the error body tells them apart (:func:`api_status`). Over gRPC the exact class arrives.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from google.api_core import exceptions as google_exceptions

from shared.errors import (
    DeadlineExceeded,
    InvalidInput,
    PermanentError,
    PipelineError,
    RejectionReason,
    TransientError,
)


class NotFound(PermanentError):
    """The resource the call needs does not exist (a read that may legitimately miss answers None instead)."""


class AlreadyExists(PermanentError):
    """A create-only call found the name taken."""


class PreconditionFailed(PermanentError):
    """A precondition the caller set (a generation, a state) did not hold: decide again, do not retry."""


class AccessDenied(PermanentError):
    """The service account may not do this: a deployment problem no retry can fix."""

    reason = RejectionReason.CONFIG


class Conflict(TransientError):
    """A concurrent change won the race (ABORTED, a stale etag): read again, then decide again."""


def api_status(error: google_exceptions.GoogleAPICallError) -> str:
    """The canonical status (``"ABORTED"``, ``"ALREADY_EXISTS"``, ...) of a Google API error, REST or gRPC."""
    code = getattr(error, "grpc_status_code", None)
    if code is not None and getattr(code, "name", None):
        return str(code.name)
    response: Any = getattr(error, "response", None)
    if response is not None:
        try:
            payload = response.json()
        except Exception:  # not JSON (a proxy's HTML page): fall back to the HTTP code below
            payload = None
        if isinstance(payload, list):
            payload = next((item for item in payload if isinstance(item, dict)), None)
        if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
            status = payload["error"].get("status")
            if isinstance(status, str) and status:
                return status
    return _HTTP_STATUS.get(int(error.code or 0), "UNKNOWN")


_HTTP_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",  # the retryable reading of a bare 409 when the body does not say
    412: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

_TRANSIENT_STATUSES = {
    "RESOURCE_EXHAUSTED",
    "UNAVAILABLE",
    "INTERNAL",
    "UNKNOWN",
    "CANCELLED",
    "DATA_LOSS",
}


def translate(error: BaseException, doing: str) -> PipelineError | None:
    """The project's error for ``error`` raised while ``doing``; None when it is not an outside failure
    (a bug stays a bug, so it is retried and finally dead-lettered, never acknowledged unseen)."""
    if isinstance(error, PipelineError):
        return error
    if isinstance(error, google_exceptions.GoogleAPICallError):
        return _from_api(error, doing)
    if isinstance(error, google_exceptions.RetryError):
        return DeadlineExceeded(f"{doing}: gave up retrying: {error}")
    if isinstance(error, (concurrent.futures.TimeoutError, TimeoutError)):
        return DeadlineExceeded(f"{doing}: timed out")
    if _is_requests_timeout(error):
        return DeadlineExceeded(f"{doing}: timed out: {error}")
    # OSError covers what sockets raise below the HTTP libraries (unreachable network, TLS failures); the
    # adapters touch no files, so it is never a local bug here (shared.errors.is_transient agrees).
    if _is_transport_error(error) or isinstance(error, OSError):
        return TransientError(f"{doing}: {type(error).__name__}: {error}")
    return None


def _from_api(error: google_exceptions.GoogleAPICallError, doing: str) -> PipelineError:
    status = api_status(error)
    message = f"{doing}: {status}: {error.message or error}"
    if status == "DEADLINE_EXCEEDED" or isinstance(error, google_exceptions.DeadlineExceeded):
        return DeadlineExceeded(message)
    if status == "ABORTED":
        return Conflict(message)
    if status in _TRANSIENT_STATUSES:
        return TransientError(message)
    if status == "NOT_FOUND":
        return NotFound(message)
    if status == "ALREADY_EXISTS":
        return AlreadyExists(message)
    if status in ("FAILED_PRECONDITION", "OUT_OF_RANGE") or isinstance(
        error, google_exceptions.PreconditionFailed
    ):
        return PreconditionFailed(message)
    if status in ("PERMISSION_DENIED", "UNAUTHENTICATED"):
        return AccessDenied(message)
    if status == "INVALID_ARGUMENT":
        return InvalidInput(doing, [str(error.message or error)])
    return PermanentError(message)


def _is_requests_timeout(error: BaseException) -> bool:
    import requests

    return isinstance(error, requests.exceptions.Timeout)


def _is_transport_error(error: BaseException) -> bool:
    """A request that got no answer (reset, refused, DNS): worth another attempt."""
    import requests
    from google.auth import exceptions as auth_exceptions

    return isinstance(error, (requests.exceptions.RequestException, auth_exceptions.TransportError))


@contextmanager
def boundary(doing: str) -> Iterator[None]:
    """Translate what the Google client raises inside the block (see :func:`translate`)."""
    try:
        yield
    except PipelineError:
        raise
    except Exception as error:
        mapped = translate(error, doing)
        if mapped is None:
            raise
        raise mapped from error
