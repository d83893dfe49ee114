"""Polling for the contract suites: one test waits on an emulator's clock and on a fake's observations."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def until(
    fetch: Callable[[], T], done: Callable[[T], bool], timeout: float = 60.0, interval: float = 0.1
) -> T:
    """Call ``fetch`` until ``done(value)``; the value, or AssertionError naming the last one seen."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not done after {timeout}s; last value: {value!r}")
        time.sleep(interval)
