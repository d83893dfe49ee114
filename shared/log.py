"""Structured logs: one JSON object per line on stdout, the shape Cloud Logging parses from functions."""

from __future__ import annotations

import contextvars
import json
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

#: Cloud Logging's field that links an entry to its request's trace (and groups a request's entries).
TRACE_FIELD = "logging.googleapis.com/trace"
_trace: contextvars.ContextVar[str] = contextvars.ContextVar("trace", default="")
_CLOUD_TRACE = re.compile(r"^([0-9a-fA-F]{32})(?:/|$)")  # X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=1
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")  # W3C traceparent

_SECRET_HINTS = ("secret", "token", "password", "signature", "authorization")


def _scrub(fields: dict[str, Any]) -> dict[str, Any]:
    return {
        key: ("[redacted]" if any(hint in key.lower() for hint in _SECRET_HINTS) else value)
        for key, value in fields.items()
    }


def use_trace(headers: Mapping[str, str] | Any, project: str) -> str:
    """Take the request's trace id (``X-Cloud-Trace-Context`` or W3C ``traceparent``, which Cloud Run and
    Eventarc send) for every entry this request logs; a request without one clears the previous one's."""
    trace_id = ""
    cloud = _CLOUD_TRACE.match(str(headers.get("X-Cloud-Trace-Context") or ""))
    if cloud:
        trace_id = cloud.group(1).lower()
    else:
        w3c = _TRACEPARENT.match(str(headers.get("traceparent") or "").strip())
        if w3c:
            trace_id = w3c.group(1)
    value = f"projects/{project}/traces/{trace_id}" if trace_id and project else ""
    _trace.set(value)
    return value


def log(severity: str, message: str, **fields: Any) -> None:
    """Write one structured entry; keys that look like secrets are redacted."""
    entry = {
        "severity": severity.upper(),
        "message": message,
        "time": datetime.now(UTC).isoformat(),
        **_scrub(fields),
    }
    trace = _trace.get()
    if trace:
        entry[TRACE_FIELD] = trace
    print(json.dumps(entry, default=str, sort_keys=False), file=sys.stdout, flush=True)


def info(message: str, **fields: Any) -> None:
    log("INFO", message, **fields)


def warning(message: str, **fields: Any) -> None:
    log("WARNING", message, **fields)


def error(message: str, **fields: Any) -> None:
    log("ERROR", message, **fields)
