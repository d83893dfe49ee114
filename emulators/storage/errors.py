"""Errors in the Cloud Storage JSON API's shape, built on the API emulators' :class:`ApiError`.

The JSON API answers with HTTP statuses the canonical codes do not map to (412 for a failed precondition,
416 for a bad range, 304 for a read whose not-match condition failed) and names a ``reason`` in an
``errors`` list; the storage client turns the status into its ``google.api_core`` exception (404 →
``NotFound``, 409 → ``Conflict``, 412 → ``PreconditionFailed``, 503 → ``ServiceUnavailable``...). So a
:class:`StorageError` is an :class:`ApiError` (canonical code, message) that also carries the status, the
reason and any headers; :func:`error_response` renders any ``ApiError`` — an injected fault too — that way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from werkzeug.wrappers import Response

from emulators.apiserver.errors import ApiError

JSON_CONTENT_TYPE = "application/json; charset=UTF-8"

# The canonical code of each status the emulator answers with, for the body's ``status`` and for gRPC-minded
# readers; the HTTP status the client sees is always the one the JSON API uses.
_CANONICAL = {
    304: "FAILED_PRECONDITION",
    400: "INVALID_ARGUMENT",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    409: "ALREADY_EXISTS",
    412: "FAILED_PRECONDITION",
    416: "OUT_OF_RANGE",
    500: "INTERNAL",
}

# The JSON API's ``reason`` for an error that names none (an injected fault, a bad page token).
_REASONS = {
    "INVALID_ARGUMENT": "invalid",
    "OUT_OF_RANGE": "invalid",
    "FAILED_PRECONDITION": "failedPrecondition",
    "NOT_FOUND": "notFound",
    "ALREADY_EXISTS": "conflict",
    "ABORTED": "conflict",
    "PERMISSION_DENIED": "forbidden",
    "UNAUTHENTICATED": "authError",
    "RESOURCE_EXHAUSTED": "rateLimitExceeded",
    "UNIMPLEMENTED": "notImplemented",
    "DEADLINE_EXCEEDED": "deadlineExceeded",
}


class StorageError(ApiError):
    """An error answered as the JSON API does: its own HTTP status, a ``reason``, optional headers."""

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        headers: Mapping[str, str] | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(code or _CANONICAL.get(status, "UNKNOWN"), message)
        self.status = status
        self.reason = reason
        self.headers = dict(headers or {})

    @property
    def http_status(self) -> int:
        return self.status


def error_body(error: ApiError) -> dict[str, Any]:
    """The apiserver's Google error body plus the JSON API's ``errors`` list with the reason."""
    body = error.rest_body()
    reason = error.reason if isinstance(error, StorageError) else _REASONS.get(error.code, "backendError")
    body["error"]["errors"] = [{"message": error.message, "domain": "global", "reason": reason}]
    return body


def error_response(error: ApiError) -> Response:
    headers = error.headers if isinstance(error, StorageError) else {}
    if error.http_status == 304:
        return Response(status=304, headers=headers)
    return json_response(error_body(error), status=error.http_status, headers=headers)


def json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        json.dumps(data), status=status, headers=dict(headers or {}), content_type=JSON_CONTENT_TYPE
    )


def bad_request(message: str, reason: str = "invalid") -> StorageError:
    return StorageError(400, reason, message)


def required(what: str) -> StorageError:
    return StorageError(400, "required", f"Required: {what}")


def parse_error(message: str) -> StorageError:
    return StorageError(400, "parseError", f"Parse Error: {message}")


def not_found(message: str) -> StorageError:
    return StorageError(404, "notFound", message)


def bucket_not_found(bucket: str) -> StorageError:
    return not_found(f"The specified bucket does not exist: {bucket}")


def object_not_found(bucket: str, name: str, generation: int | None = None) -> StorageError:
    suffix = f"#{generation}" if generation is not None else ""
    return not_found(f"No such object: {bucket}/{name}{suffix}")


def upload_not_found(upload_id: str) -> StorageError:
    return not_found(f"No such resumable upload session: {upload_id}")


def conflict(message: str, code: str = "ALREADY_EXISTS") -> StorageError:
    return StorageError(409, "conflict", message, code=code)


def precondition_failed() -> StorageError:
    return StorageError(
        412, "conditionNotMet", "At least one of the pre-conditions you specified did not hold."
    )


def not_modified() -> StorageError:
    return StorageError(304, "notModified", "Not Modified")


def method_not_allowed(method: str, path: str) -> StorageError:
    return StorageError(405, "methodNotAllowed", f"Method {method} is not allowed on {path}")


def range_not_satisfiable(header: str, size: int) -> StorageError:
    return StorageError(
        416,
        "requestedRangeNotSatisfiable",
        f"The requested range {header!r} cannot be satisfied for an object of {size} bytes.",
        headers={"Content-Range": f"bytes */{size}"},
    )


def internal_error() -> StorageError:
    return StorageError(500, "backendError", "Internal error in the storage emulator; see its log")
