"""One time budget per invocation, so that every call an invocation makes fits inside it.

Pub/Sub redelivers a message whose push request is not answered within the subscription's ack deadline, even
while the first delivery is still working, and finally dead-letters it. An invocation that outlives the ack
deadline therefore both duplicates work and can dead-letter a message it handled. The adapter opens a
:class:`Deadline` a safety margin inside the ack deadline; every network call takes its timeout from
:meth:`Deadline.timeout`, and :meth:`Deadline.watch` aborts a blocking socket operation that would run past it
(a peer that drips one byte every few seconds defeats per-read timeouts: the bound must be on the total).
"""

from __future__ import annotations

import contextvars
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

from shared.errors import DeadlineExceeded

#: Without an enclosing invocation (a script, a test) calls still get a finite budget.
DEFAULT_BUDGET_SECONDS = 60.0
#: What an invocation keeps back from the ack deadline to answer and record its outcome.
SAFETY_MARGIN_SECONDS = 5.0
#: The smallest budget an invocation is given, however short its ack deadline.
MINIMUM_BUDGET_SECONDS = 2.0


class Deadline:
    """A monotonic point in time after which the invocation must stop working and answer."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.budget = seconds
        self._end = clock() + seconds

    @classmethod
    def within_ack_deadline(cls, ack_deadline_seconds: float) -> Deadline:
        """The budget for a push delivery: the ack deadline less a margin (but never below a floor)."""
        margin = min(SAFETY_MARGIN_SECONDS, ack_deadline_seconds * 0.2)
        return cls(max(MINIMUM_BUDGET_SECONDS, ack_deadline_seconds - margin))

    def remaining(self) -> float:
        return max(0.0, self._end - self._clock())

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0.0

    def check(self, doing: str) -> None:
        """Raise :class:`DeadlineExceeded` when no time is left to start ``doing``."""
        if self.expired:
            raise DeadlineExceeded(f"invocation deadline ({self.budget:.1f}s) reached before {doing}")

    def timeout(self, cap: float | None = None, floor: float = 0.05) -> float:
        """A timeout for the next call: what is left of the budget, at most ``cap``, at least ``floor``."""
        left = self.remaining()
        if cap is not None:
            left = min(left, cap)
        return max(floor, left)

    @contextmanager
    def watch(self, doing: str) -> Iterator[SocketWatch]:
        """Abort the sockets registered in the block when the deadline passes; raise DeadlineExceeded then."""
        watch = SocketWatch()
        timer = threading.Timer(self.remaining(), watch.abort)
        timer.daemon = True
        timer.start()
        try:
            yield watch
        except Exception as error:
            if watch.aborted:
                raise DeadlineExceeded(
                    f"invocation deadline ({self.budget:.1f}s) reached while {doing}"
                ) from error
            raise
        finally:
            timer.cancel()
        if watch.aborted:
            raise DeadlineExceeded(f"invocation deadline ({self.budget:.1f}s) reached while {doing}")


class SocketWatch:
    """The sockets one watched block uses; :meth:`abort` shuts them down from the timer thread."""

    def __init__(self) -> None:
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self.aborted = False

    def register(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            if self.aborted:
                _shutdown(sock)
            self._sockets.append(sock)

    def abort(self) -> None:
        with self._lock:
            self.aborted = True
            for sock in self._sockets:
                _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    # shutdown() wakes a thread blocked in recv() on the same socket at once; close() alone may not.
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


_current: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar("deadline", default=None)


def current() -> Deadline:
    """The enclosing invocation's deadline, or a fresh default budget outside any invocation."""
    deadline = _current.get()
    return deadline if deadline is not None else Deadline(DEFAULT_BUDGET_SECONDS)


@contextmanager
def bounded(deadline: Deadline) -> Iterator[Deadline]:
    """Make ``deadline`` the one :func:`current` returns inside the block."""
    token = _current.set(deadline)
    try:
        yield deadline
    finally:
        _current.reset(token)
