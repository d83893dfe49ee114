"""Structured logs: one JSON object per line on stdout, the shape Cloud Logging parses from functions."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

_SECRET_HINTS = ("secret", "token", "password", "signature", "authorization")


def _scrub(fields: dict[str, Any]) -> dict[str, Any]:
    return {
        key: ("[redacted]" if any(hint in key.lower() for hint in _SECRET_HINTS) else value)
        for key, value in fields.items()
    }


def log(severity: str, message: str, **fields: Any) -> None:
    """Write one structured entry; keys that look like secrets are redacted."""
    entry = {
        "severity": severity.upper(),
        "message": message,
        "time": datetime.now(UTC).isoformat(),
        **_scrub(fields),
    }
    print(json.dumps(entry, default=str, sort_keys=False), file=sys.stdout, flush=True)


def info(message: str, **fields: Any) -> None:
    log("INFO", message, **fields)


def warning(message: str, **fields: Any) -> None:
    log("WARNING", message, **fields)


def error(message: str, **fields: Any) -> None:
    log("ERROR", message, **fields)
