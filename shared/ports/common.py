"""Pieces every port shares: time budgets, label rules, read retries and timestamp conversion.

Every port method takes ``timeout: float | None``: the seconds the whole method may take (a method that makes
several calls shares them out), ``None`` meaning :data:`DEFAULT_TIMEOUT_SECONDS` — never "wait forever". A
caller with an invocation deadline passes what is left of it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from shared.errors import DeadlineExceeded, InvalidInput

#: The budget of one port method when the caller gives none.
DEFAULT_TIMEOUT_SECONDS = 30.0

_LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")
MAX_LABELS = 64


class Budget:
    """The time one port method may spend, shared by the calls it makes."""

    def __init__(self, timeout: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        seconds = DEFAULT_TIMEOUT_SECONDS if timeout is None else float(timeout)
        self._clock = clock
        self._end = clock() + seconds
        self.seconds = seconds

    def left(self, doing: str) -> float:
        """Seconds left for the next call; :class:`DeadlineExceeded` when none are."""
        remaining: float = self._end - self._clock()
        if remaining <= 0:
            raise DeadlineExceeded(f"{doing}: no time left of the {self.seconds:.1f}s budget")
        return remaining


def read_retry(seconds: float) -> Any:
    """A retry for idempotent calls (reads, conditional writes) that never outlasts ``seconds``: the
    clients' own defaults retry for up to ten minutes, far past any invocation deadline."""
    from google.api_core import retry as retries

    return retries.Retry(
        predicate=retries.if_transient_error,
        initial=0.1,
        maximum=1.0,
        multiplier=2.0,
        timeout=seconds,
    )


def label_problems(labels: Mapping[str, str], where: str) -> list[str]:
    """Every way ``labels`` break Google Cloud's label rules (lowercase ASCII keys and values, at most 64)."""
    problems: list[str] = []
    if len(labels) > MAX_LABELS:
        problems.append(f"{where}: at most {MAX_LABELS} labels, got {len(labels)}")
    for key, value in labels.items():
        if not isinstance(key, str) or not _LABEL_KEY.fullmatch(key):
            problems.append(
                f"{where}: key {key!r} must be lowercase letters, digits, '_' or '-', start with a letter, "
                "at most 63 characters"
            )
        if not isinstance(value, str) or not _LABEL_VALUE.fullmatch(value):
            problems.append(
                f"{where}: value {value!r} of {key!r} must be lowercase letters, digits, '_' or '-', at most "
                "63 characters"
            )
    return problems


def check(what: str, problems: list[str]) -> None:
    """Raise :class:`InvalidInput` naming every problem, if there are any."""
    if problems:
        raise InvalidInput(what, problems)


def label_value(text: str) -> str:
    """``text`` made a valid label value (lowercase, other characters as '-', at most 63 characters)."""
    return re.sub(r"[^a-z0-9_-]", "-", text.lower())[:63]


def as_utc(value: Any) -> datetime | None:
    """A timezone-aware UTC datetime from what the clients return (datetime, protobuf Timestamp or None)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        # proto-plus answers the epoch for an unset timestamp
        return None if value.timestamp() == 0 else value.astimezone(UTC)
    if hasattr(value, "ToDatetime"):
        if not value.seconds and not value.nanos:
            return None
        converted: datetime = value.ToDatetime(tzinfo=UTC)
        return converted
    return None
