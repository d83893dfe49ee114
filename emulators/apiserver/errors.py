"""Google API errors as the emulators raise them: a canonical status, mapped to HTTP and gRPC codes."""

from __future__ import annotations

from typing import Any

# Canonical code name → (gRPC number, HTTP status), as google.rpc.Code and the REST mapping define them.
CODES: dict[str, tuple[int, int]] = {
    "OK": (0, 200),
    "CANCELLED": (1, 499),
    "UNKNOWN": (2, 500),
    "INVALID_ARGUMENT": (3, 400),
    "DEADLINE_EXCEEDED": (4, 504),
    "NOT_FOUND": (5, 404),
    "ALREADY_EXISTS": (6, 409),
    "PERMISSION_DENIED": (7, 403),
    "RESOURCE_EXHAUSTED": (8, 429),
    "FAILED_PRECONDITION": (9, 400),
    "ABORTED": (10, 409),
    "OUT_OF_RANGE": (11, 400),
    "UNIMPLEMENTED": (12, 501),
    "INTERNAL": (13, 500),
    "UNAVAILABLE": (14, 503),
    "DATA_LOSS": (15, 500),
    "UNAUTHENTICATED": (16, 401),
}
_BY_NUMBER = {number: name for name, (number, _) in CODES.items()}


def canonical_code(code: str | int) -> str:
    """Normalise ``"not_found"``, ``"NOT_FOUND"``, ``5`` or ``"5"`` to ``"NOT_FOUND"`` (else ValueError)."""
    if isinstance(code, int) or (isinstance(code, str) and code.isdigit()):
        number = int(code)
        if number not in _BY_NUMBER:
            raise ValueError(f"unknown status code {code!r}")
        return _BY_NUMBER[number]
    name = str(code).strip().upper()
    if name not in CODES:
        raise ValueError(f"unknown status code {code!r}; use one of {', '.join(CODES)}")
    return name


class ApiError(Exception):
    """An error the API reports to its caller with a canonical status code."""

    def __init__(self, code: str | int, message: str) -> None:
        self.code = canonical_code(code)
        self.message = message
        super().__init__(f"{self.code}: {message}")

    @property
    def grpc_code(self) -> int:
        return CODES[self.code][0]

    @property
    def http_status(self) -> int:
        return CODES[self.code][1]

    def rest_body(self) -> dict[str, Any]:
        """The Google REST error shape the client libraries map to ``google.api_core.exceptions``."""
        return {"error": {"code": self.http_status, "message": self.message, "status": self.code}}


def not_found(message: str) -> ApiError:
    return ApiError("NOT_FOUND", message)


def invalid(message: str) -> ApiError:
    return ApiError("INVALID_ARGUMENT", message)


def already_exists(message: str) -> ApiError:
    return ApiError("ALREADY_EXISTS", message)


def failed_precondition(message: str) -> ApiError:
    return ApiError("FAILED_PRECONDITION", message)
