"""The invocation deadline: a total bound on blocking socket work, not a per-read one."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from shared import deadline as deadlines
from shared.deadline import Deadline
from shared.errors import DeadlineExceeded

pytestmark = pytest.mark.unit


def test_budget_sits_inside_the_ack_deadline() -> None:
    assert 24.0 <= Deadline.within_ack_deadline(30).remaining() <= 25.0
    assert Deadline.within_ack_deadline(10).remaining() <= 8.0
    assert Deadline.within_ack_deadline(1).remaining() >= 1.9  # the floor


def test_timeout_is_capped_by_what_is_left() -> None:
    deadline = Deadline(2.0)
    assert deadline.timeout(10.0) <= 2.0
    assert deadline.timeout(0.5) == 0.5
    assert Deadline(0).timeout(10) == 0.05  # never zero: zero would mean non-blocking sockets
    with pytest.raises(DeadlineExceeded, match="before claiming"):
        Deadline(0).check("claiming")


def test_current_is_scoped() -> None:
    outer = deadlines.current()
    assert outer.budget == deadlines.DEFAULT_BUDGET_SECONDS
    inner = Deadline(3)
    with deadlines.bounded(inner):
        assert deadlines.current() is inner
    assert deadlines.current() is not inner


@pytest.fixture
def dripping_peer() -> Iterator[int]:
    """Accepts a connection and sends one byte every 0.2 s for up to 20 s: per-read timeouts never fire."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def serve() -> None:
        connection, _ = server.accept()
        with connection:
            for _ in range(100):
                if stop.wait(0.2):
                    return
                try:
                    connection.sendall(b"H")
                except OSError:
                    return

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1]
    stop.set()
    server.close()


def test_watch_cuts_a_dripping_peer_at_the_deadline(dripping_peer: int) -> None:
    deadline = Deadline(1.0)
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match="reading"), deadline.watch("reading") as watch:
        sock = socket.create_connection(("127.0.0.1", dripping_peer), timeout=deadline.timeout(5))
        watch.register(sock)
        while sock.recv(1):
            pass
    assert time.monotonic() - started < 2.5
