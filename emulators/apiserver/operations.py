"""Long-running operations: a store that answers ``google.longrunning.Operations`` for every emulator.

An operation is registered with a function that renders its current state, so it always reflects the
resource it tracks (a build finishing, a model upload done) without copying state around.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.longrunning import operations_pb2
from google.rpc import status_pb2

from emulators.apiserver.errors import CODES, ApiError, not_found
from emulators.apiserver.messages import pack

Render = Callable[[], operations_pb2.Operation]


@dataclass
class _Entry:
    render: Render
    cancel: Callable[[], None] | None


def operation(
    name: str,
    *,
    metadata: Any | None = None,
    done: bool = False,
    response: Any | None = None,
    error: tuple[str, str] | None = None,
) -> operations_pb2.Operation:
    """Build an Operation; ``error`` is ``(canonical code, message)``."""
    result = operations_pb2.Operation(name=name, done=done)
    if metadata is not None:
        result.metadata.CopyFrom(pack(metadata))
    if error is not None:
        code, message = error
        result.error.CopyFrom(status_pb2.Status(code=CODES[code][0], message=message))
    elif response is not None:
        result.response.CopyFrom(pack(response))
    return result


class OperationStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    def add(
        self, name: str, render: Render, cancel: Callable[[], None] | None = None
    ) -> operations_pb2.Operation:
        with self._lock:
            self._entries[name] = _Entry(render=render, cancel=cancel)
        return render()

    def get(self, name: str) -> operations_pb2.Operation:
        with self._lock:
            entry = self._entries.get(name)
        if entry is None:
            raise not_found(f"Operation {name} not found.")
        return entry.render()

    def cancel(self, name: str) -> None:
        with self._lock:
            entry = self._entries.get(name)
        if entry is None:
            raise not_found(f"Operation {name} not found.")
        if entry.cancel is None:
            raise ApiError("FAILED_PRECONDITION", f"Operation {name} cannot be cancelled.")
        entry.cancel()

    def delete(self, name: str) -> None:
        with self._lock:
            if self._entries.pop(name, None) is None:
                raise not_found(f"Operation {name} not found.")

    def list(self, parent: str) -> list[operations_pb2.Operation]:
        prefix = parent.rstrip("/") + "/operations/" if parent and parent != "operations" else ""
        with self._lock:
            entries = [(name, entry) for name, entry in self._entries.items() if name.startswith(prefix)]
        return [entry.render() for _, entry in sorted(entries)]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
