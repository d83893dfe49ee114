"""Standard Webhooks signing of the generic webhook channel: the `signingSecret` option, the signature."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from shared.config import Channel, parse_config
from shared.errors import ConfigError
from shared.notify.signing import message_id, signature_headers

pytestmark = pytest.mark.unit

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()


def channel(env: dict[str, str] | None = None, **fields: Any) -> Channel:
    document = {
        "apiVersion": "mlops.dev/v1",
        "kind": "Pipeline",
        "spec": {
            "project": "p",
            "notifications": {"channels": [{"name": "hook", "url": "https://example.test/hook", **fields}]},
        },
    }
    return parse_config(document, "t.yaml", env=env or {}).channels[0]


def problems(**fields: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        channel(**fields)
    return str(caught.value)


def test_the_secret_comes_from_the_environment_and_never_shows_in_a_repr() -> None:
    configured = channel({"HOOK_SECRET": SECRET}, type="webhook", signingSecret="${HOOK_SECRET}")

    assert configured.signing_secret == SECRET
    assert SECRET not in repr(configured)


def test_no_secret_or_an_empty_one_means_unsigned() -> None:
    assert channel(type="webhook").signing_secret is None
    # ${VAR:-} with VAR unset: the channel is deployed unsigned rather than refused.
    assert channel(type="webhook", signingSecret="${HOOK_SECRET:-}").signing_secret is None


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"type": "slack", "signingSecret": SECRET}, "only a webhook channel signs"),
        ({"type": "webhook", "signingSecret": "hunter2-hunter2-hunter2-hunter2"}, "whsec_ then base64"),
        ({"type": "webhook", "signingSecret": "whsec_not base64!"}, "whsec_ must be followed by base64"),
        ({"type": "webhook", "signingSecret": "whsec_" + base64.b64encode(b"short").decode()}, "got 5"),
        (
            {"type": "webhook", "signingSecret": SECRET, "headers": {"Webhook-Signature": "v1,forged"}},
            "Webhook-Signature: set by signingSecret",
        ),
    ],
)
def test_bad_secrets_are_refused_without_quoting_them(fields: dict[str, Any], expected: str) -> None:
    message = problems(**fields)

    assert "signingSecret" in message or "headers" in message
    assert expected in message
    secret = fields["signingSecret"]
    assert secret.removeprefix("whsec_") not in message


def test_the_signature_matches_the_specifications_published_vector() -> None:
    # The vector every Standard Webhooks library tests against (secret, id, timestamp, body -> signature).
    headers = signature_headers(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        b'{"test": 2432232314}',
        1614265330.9,
    )

    assert headers == {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }


def test_the_message_id_is_stable_per_event_and_channel_and_has_no_dots() -> None:
    body = {"event_id": "build.b-1:failed", "run_id": "r-1"}
    first = message_id("hook", body, b"{...}")

    assert first == message_id("hook", dict(body), b"other bytes")  # a retry: same event, same channel
    assert first != message_id("other-hook", body, b"{...}")
    assert first != message_id("hook", {"event_id": "build.b-2:failed"}, b"{...}")
    assert first.startswith("msg_") and "." not in first and first.isascii() and len(first) == 36
    # Without an event id the bytes identify the delivery.
    assert message_id("hook", {}, b"a") == message_id("hook", None, b"a") != message_id("hook", {}, b"b")
