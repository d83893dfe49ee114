"""The real notification transport against local servers: the webhook sink over HTTP and a small SMTP peer."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server

from emulators.common.proc import free_port
from emulators.stack import sink
from shared.config import Channel, parse_config
from shared.errors import PermanentError, TransientError
from shared.events import new_envelope
from shared.notify import HttpTransport, parse_notification, render

pytestmark = pytest.mark.functional


@pytest.fixture(scope="module")
def sink_url() -> Iterator[str]:
    port = free_port()
    server = make_server("127.0.0.1", port, sink.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()


def channel(**fields: Any) -> Channel:
    config = parse_config(
        {
            "apiVersion": "mlops.dev/v1",
            "kind": "Pipeline",
            "spec": {"project": "p", "notifications": {"channels": [{"name": "c", **fields}]}},
        },
        "t.yaml",
        env={},
    )
    return config.channels[0]


NOTE = parse_notification(
    new_envelope("notification", "r-1", {"kind": "k", "title": "Hello"}, event_id="e-1")
)


def test_webhook_delivery_posts_json_with_headers(sink_url: str) -> None:
    target = channel(type="webhook", url=f"{sink_url}/hook/t1", headers={"X-Token": "abc"})
    HttpTransport().deliver(target, render(target, NOTE))
    [record] = requests.get(f"{sink_url}/_sink/requests", params={"prefix": "/hook/t1"}, timeout=5).json()
    assert record["method"] == "POST"
    assert record["headers"]["X-Token"] == "abc"
    assert record["body"]["notification"]["title"] == "Hello"


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (404, PermanentError),
        (400, PermanentError),
        (429, TransientError),
        (503, TransientError),
        (500, TransientError),
    ],
)
def test_http_status_decides_retry(sink_url: str, status: int, error: type[Exception]) -> None:
    target = channel(type="slack", url=f"{sink_url}/status/{status}/x")
    with pytest.raises(error, match=f"HTTP {status}"):
        HttpTransport().deliver(target, render(target, NOTE))


def test_unreachable_webhook_is_transient() -> None:
    target = channel(type="google_chat", url=f"http://127.0.0.1:{free_port()}/nobody", timeout="1s")
    with pytest.raises(TransientError, match="channel c"):
        HttpTransport().deliver(target, render(target, NOTE))


class _SmtpPeer(socketserver.StreamRequestHandler):
    """Just enough SMTP: records each message; answers MAIL FROM with the server's configured reply."""

    def handle(self) -> None:
        server: Any = self.server
        self.wfile.write(b"220 localhost ESMTP test\r\n")
        while True:
            line = self.rfile.readline().decode().strip()
            if not line:
                return
            verb = line.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                self.wfile.write(b"250 localhost\r\n")
            elif verb == "MAIL":
                self.wfile.write(server.mail_reply)
            elif verb == "RCPT":
                self.wfile.write(b"250 OK\r\n")
            elif verb == "DATA":
                self.wfile.write(b"354 go ahead\r\n")
                lines = []
                while (data := self.rfile.readline()) not in (b".\r\n", b""):
                    lines.append(data.decode())
                server.messages.append("".join(lines))
                self.wfile.write(b"250 queued\r\n")
            elif verb == "QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 OK\r\n")


@pytest.fixture
def smtp_server() -> Iterator[Any]:
    server: Any = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SmtpPeer)
    server.daemon_threads = True
    server.messages = []
    server.mail_reply = b"250 OK\r\n"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def email_channel(port: int) -> Channel:
    return channel(
        type="email",
        smtp={"host": "127.0.0.1", "port": port, "from": "ml@example.com", "to": ["oncall@example.com"]},
    )


def test_email_delivery(smtp_server: Any) -> None:
    target = email_channel(smtp_server.server_address[1])
    HttpTransport().deliver(target, render(target, NOTE))
    [message] = smtp_server.messages
    assert "Subject: [INFO] Hello" in message
    assert "To: oncall@example.com" in message


@pytest.mark.parametrize(
    ("reply", "error"), [(b"451 try later\r\n", TransientError), (b"550 no such sender\r\n", PermanentError)]
)
def test_smtp_replies_decide_retry(smtp_server: Any, reply: bytes, error: type[Exception]) -> None:
    smtp_server.mail_reply = reply
    target = email_channel(smtp_server.server_address[1])
    with pytest.raises(error, match="SMTP"):
        HttpTransport().deliver(target, render(target, NOTE))
    assert smtp_server.messages == []
