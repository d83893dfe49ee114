"""The wire: HTTP POST for webhook channels, SMTP for email, each bounded by the invocation's deadline.

Every socket operation gets a timeout no longer than what is left of the deadline, and the whole exchange is
watched (:meth:`shared.deadline.Deadline.watch`): a peer that drips one byte every few seconds, which no
per-read timeout catches, is cut off when the deadline passes. The standard library's ``http.client`` is used
rather than ``requests`` because the watch needs the connection's socket, which ``requests`` does not expose
while it waits for the response headers (and it keeps the notify path's imports small). Proxies from the
environment are not used: functions reach webhooks directly.
"""

from __future__ import annotations

import http.client
import json
import os
import smtplib
import ssl
import time
from collections.abc import Callable, Mapping
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import urlsplit

from shared import deadline as deadlines
from shared.config import Channel
from shared.errors import DeadlineExceeded, PermanentError, TransientError
from shared.notify import signing
from shared.notify.channels import Rendered

#: The most of a webhook's answer that is read (it only goes into an error message).
MAX_RESPONSE_BYTES = 64 * 1024


class Transport(Protocol):
    """Delivers one rendered message; raises TransientError (retry) or PermanentError (give up)."""

    def deliver(self, channel: Channel, rendered: Rendered) -> None: ...


def _post(url: str, body: bytes, headers: Mapping[str, str], timeout: float, what: str) -> tuple[int, str]:
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    deadline = deadlines.current()
    connection: http.client.HTTPConnection
    with deadline.watch(what) as watch:
        per_call = deadline.timeout(timeout)
        if parts.scheme == "https":
            connection = http.client.HTTPSConnection(
                parts.hostname or "", parts.port, timeout=per_call, context=ssl.create_default_context()
            )
        else:
            connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=per_call)
        try:
            connection.connect()
            watch.register(connection.sock)
            connection.request("POST", target, body=body, headers=dict(headers))
            response = connection.getresponse()
            text = response.read(MAX_RESPONSE_BYTES).decode("utf-8", errors="replace")
            return response.status, text
        finally:
            connection.close()


class HttpTransport:
    """POSTs JSON to the channel's URL (Slack/Chat incoming webhooks, generic webhooks); SMTP for email.

    A channel with a signing secret is signed the Standard Webhooks way (:mod:`shared.notify.signing`) over
    the exact bytes sent, at ``clock()`` (unix seconds) of each attempt.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock

    def deliver(self, channel: Channel, rendered: Rendered) -> None:
        if channel.type == "email":
            self._send_email(channel, rendered)
            return
        assert channel.url is not None  # config validation guarantees it for HTTP channels
        headers = {"Content-Type": "application/json; charset=utf-8", **channel.headers}
        body = json.dumps(rendered.body).encode("utf-8")
        if channel.signing_secret:
            webhook_id = signing.message_id(channel.name, rendered.body, body)
            headers.update(signing.signature_headers(channel.signing_secret, webhook_id, body, self._clock()))
        try:
            status, text = _post(
                channel.url, body, headers, channel.timeout_seconds, f"posting to {channel.name}"
            )
        except DeadlineExceeded as error:
            raise DeadlineExceeded(f"channel {channel.name}: {error}") from error
        except (OSError, http.client.HTTPException, ValueError) as error:
            raise TransientError(f"channel {channel.name}: {type(error).__name__}: {error}") from error
        if status < 300:
            return
        detail = f"channel {channel.name}: HTTP {status} from the webhook: {text[:200]!r}"
        if status in (408, 425, 429) or status >= 500:
            raise TransientError(detail)
        raise PermanentError(detail, [detail])

    def _send_email(self, channel: Channel, rendered: Rendered) -> None:
        settings = channel.smtp
        assert settings is not None  # config validation guarantees it for email channels
        message = EmailMessage()
        message["Subject"] = rendered.subject
        message["From"] = settings.sender
        message["To"] = ", ".join(settings.recipients)
        message.set_content(rendered.text)
        deadline = deadlines.current()
        try:
            with deadline.watch(f"mailing {channel.name}") as watch:
                timeout = deadline.timeout(channel.timeout_seconds)
                with smtplib.SMTP(settings.host, settings.port, timeout=timeout) as smtp:
                    watch.register(smtp.sock)
                    if settings.starttls:
                        smtp.starttls()
                        watch.register(smtp.sock)
                    if settings.username:
                        password = os.environ.get(settings.password_env or "", "")
                        smtp.login(settings.username, password)
                    smtp.send_message(message)
        except DeadlineExceeded as error:
            raise DeadlineExceeded(f"channel {channel.name}: {error}") from error
        except smtplib.SMTPResponseException as error:
            detail = f"channel {channel.name}: SMTP {error.smtp_code} {error.smtp_error!r}"
            if 400 <= error.smtp_code < 500:
                raise TransientError(detail) from error
            raise PermanentError(detail, [detail]) from error
        except (OSError, smtplib.SMTPException) as error:
            raise TransientError(f"channel {channel.name}: {type(error).__name__}: {error}") from error


class RecordingTransport:
    """An in-memory transport for tests: records deliveries, can be told to fail a channel."""

    def __init__(self) -> None:
        self.delivered: list[tuple[str, Rendered]] = []
        self.failures: dict[str, Exception] = {}

    def deliver(self, channel: Channel, rendered: Rendered) -> None:
        failure = self.failures.get(channel.name)
        if failure is not None:
            raise failure
        self.delivered.append((channel.name, rendered))
