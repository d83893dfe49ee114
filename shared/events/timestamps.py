"""Event times: RFC 3339 (up to 9 fractional digits, ``Z`` or an offset) or epoch seconds, always UTC.

The strict rule (:func:`shared.problems.to_timestamp`) raises only ``ValueError`` with a reason, whatever
it is given; :func:`parse_timestamp` is its lenient form for optional context (a CloudEvent's ``time``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.problems import MAX_EPOCH_SECONDS, MAX_TIMESTAMP_CHARS, to_timestamp

__all__ = ["MAX_EPOCH_SECONDS", "MAX_TIMESTAMP_CHARS", "parse_timestamp", "to_timestamp"]


def parse_timestamp(value: Any) -> datetime | None:
    """An aware UTC datetime, or None when ``value`` is not a timestamp (never raises)."""
    try:
        return to_timestamp(value)
    except ValueError:
        return None
