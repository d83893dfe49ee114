"""A webhook that drips its answer cannot hold an invocation past its deadline (total, not per byte)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from shared import deadline as deadlines
from shared.config import parse_config
from shared.errors import DeadlineExceeded, TransientError
from shared.events import new_envelope
from shared.notify import HttpTransport, parse_notification, render

pytestmark = pytest.mark.functional


@pytest.fixture
def dripping_webhook() -> Iterator[str]:
    """Reads the request, then answers one byte of its status line every 0.3 s (for up to 30 s)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                return
            with connection:
                connection.recv(65536)
                for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" * 10:
                    if stop.wait(0.3):
                        return
                    try:
                        connection.sendall(bytes([byte]))
                    except OSError:
                        break

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/hook"
    stop.set()
    server.close()


def test_dripping_webhook_is_cut_at_the_invocation_deadline(dripping_webhook: str) -> None:
    config = parse_config(
        {
            "apiVersion": "mlops.dev/v1",
            "kind": "Pipeline",
            "spec": {
                "project": "p",
                "notifications": {
                    "channels": [
                        {"name": "slow", "type": "webhook", "url": dripping_webhook, "timeout": "10s"}
                    ]
                },
            },
        },
        "t.yaml",
        env={},
    )
    channel = config.channels[0]
    note = parse_notification(new_envelope("notification", "r", {"kind": "k", "title": "t"}, event_id="e"))
    started = time.monotonic()
    with deadlines.bounded(deadlines.Deadline(1.5)), pytest.raises(DeadlineExceeded, match="channel slow"):
        HttpTransport().deliver(channel, render(channel, note))
    elapsed = time.monotonic() - started
    assert elapsed < 3.0, f"held {elapsed:.1f}s past a 1.5 s deadline"
    assert issubclass(DeadlineExceeded, TransientError)  # the event is redelivered, not dropped
