"""Fault injection for the in-memory fakes: make the next call(s) of a method raise, as the emulators'
admin API does for the real adapters, so callers' retry and rollback paths can be tested without a server."""

from __future__ import annotations

import threading
from collections import defaultdict


class Faults:
    """Errors queued per method name; a fake calls :meth:`take` first thing in every method."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queued: dict[str, list[Exception]] = defaultdict(list)
        self.calls: dict[str, int] = defaultdict(int)

    def fail_next(self, method: str, error: Exception, count: int = 1) -> None:
        """The next ``count`` calls of ``method`` raise ``error`` (one of the ``shared.errors`` classes)."""
        with self._lock:
            self._queued[method].extend([error] * count)

    def take(self, method: str) -> None:
        """Count the call; raise the next queued error for ``method``, if any."""
        with self._lock:
            self.calls[method] += 1
            queued = self._queued.get(method)
            error = queued.pop(0) if queued else None
        if error is not None:
            raise error
