"""Signed webhook deliveries over real HTTP: a receiver checks them with the Standard Webhooks algorithm."""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from standardwebhooks import Webhook, WebhookVerificationError
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from emulators.common.proc import free_port
from shared.config import Channel, parse_config
from shared.events import new_envelope
from shared.notify import HttpTransport, parse_notification, render

pytestmark = pytest.mark.functional

SECRET = "whsec_" + base64.b64encode(b"a-32-byte-key-for-the-test-hook!").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"another-32-byte-key-for-a-hook!!").decode()
NOTE = parse_notification(
    new_envelope(
        "notification",
        "r-1",
        {"kind": "rollout.promoted", "title": "churn 7 promoted ✓", "text": "100% on the candidate"},
        event_id="rollout.r-1:promoted",
    )
)


class Receiver:
    """Records each request's raw body and headers (the bytes a verifier must use, not re-serialised JSON)."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, dict[str, str]]] = []

    @Request.application
    def __call__(self, request: Request) -> Response:
        self.received.append((request.get_data(), {key.lower(): value for key, value in request.headers}))
        return Response("{}", mimetype="application/json")


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, str]]:
    app = Receiver()
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{port}/hook"
    server.shutdown()


def channel(url: str, **fields: Any) -> Channel:
    document = {
        "apiVersion": "mlops.dev/v1",
        "kind": "Pipeline",
        "spec": {"project": "p", "notifications": {"channels": [{"name": "ops-hook", "url": url, **fields}]}},
    }
    return parse_config(document, "t.yaml", env={"OPS_HOOK_SECRET": SECRET}).channels[0]


def spec_verify(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    """The specification's verification, written out: HMAC-SHA256 of id.timestamp.body under the decoded
    key, compared in constant time with each ``v1,`` signature in the header."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    candidates = [item.split(",", 1) for item in headers["webhook-signature"].split(" ")]
    return any(version == "v1" and hmac.compare_digest(value, expected) for version, value in candidates)


def deliver(receiver: tuple[Receiver, str], target: Channel, at: float) -> tuple[bytes, dict[str, str]]:
    app, _ = receiver
    app.received.clear()
    HttpTransport(clock=lambda: at).deliver(target, render(target, NOTE))
    (request,) = app.received
    return request


def test_a_signed_delivery_verifies_with_the_specification_and_its_library(
    receiver: tuple[Receiver, str],
) -> None:
    target = channel(receiver[1], type="webhook", signingSecret="${OPS_HOOK_SECRET}")
    now = time.time()

    body, headers = deliver(receiver, target, now)

    assert headers["webhook-timestamp"] == str(int(now))
    assert headers["webhook-id"].startswith("msg_")
    assert spec_verify(SECRET, body, headers)
    payload = Webhook(SECRET).verify(body, headers)  # the official library: signature and time window
    assert (
        payload["event_id"] == "rollout.r-1:promoted"
        and payload["notification"]["kind"] == "rollout.promoted"
    )


def test_a_retry_keeps_the_id_and_signs_its_own_time(receiver: tuple[Receiver, str]) -> None:
    target = channel(receiver[1], type="webhook", signingSecret=SECRET)
    now = time.time()

    first_body, first = deliver(receiver, target, now - 60)
    second_body, second = deliver(receiver, target, now)

    assert first["webhook-id"] == second["webhook-id"]  # receivers deduplicate on it
    assert int(second["webhook-timestamp"]) - int(first["webhook-timestamp"]) == 60
    assert first["webhook-signature"] != second["webhook-signature"]
    assert spec_verify(SECRET, first_body, first) and spec_verify(SECRET, second_body, second)


def test_a_wrong_secret_a_changed_body_or_an_old_timestamp_fail(receiver: tuple[Receiver, str]) -> None:
    target = channel(receiver[1], type="webhook", signingSecret=SECRET)
    body, headers = deliver(receiver, target, time.time())

    assert not spec_verify(OTHER_SECRET, body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(OTHER_SECRET).verify(body, headers)
    tampered = body.replace(b"promoted", b"rolled_back")
    assert tampered != body and not spec_verify(SECRET, tampered, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(tampered, headers)

    stale_body, stale = deliver(receiver, target, time.time() - 3600)
    assert spec_verify(SECRET, stale_body, stale)  # correctly signed...
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(SECRET).verify(stale_body, stale)  # ...but outside the replay window


def test_without_a_secret_no_signature_headers_are_sent(receiver: tuple[Receiver, str]) -> None:
    target = channel(receiver[1], type="webhook", headers={"X-Token": "abc"})

    _, headers = deliver(receiver, target, time.time())

    assert headers["x-token"] == "abc"
    assert not {"webhook-id", "webhook-timestamp", "webhook-signature"} & set(headers)
