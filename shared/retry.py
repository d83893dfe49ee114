"""Bounded in-process retry with jitter for transient errors; after the last attempt the error escapes
so the event is redelivered by Pub/Sub (which has its own backoff)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from shared import deadline as deadlines
from shared.errors import is_transient

T = TypeVar("T")


def with_retry(
    call: Callable[[], T],
    attempts: int = 3,
    base_delay: float = 0.2,
    max_delay: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``call``; on a transient error wait (full jitter, exponential) and retry, ``attempts`` in all."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as error:
            if attempt == attempts or not is_transient(error):
                raise
            pause = random.uniform(0, min(max_delay, base_delay * 2 ** (attempt - 1)))
            if deadlines.current().remaining() <= pause:
                raise  # no time left for another attempt inside this invocation
            sleep(pause)
    raise AssertionError("unreachable")  # pragma: no cover
