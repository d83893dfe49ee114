"""Webhook authentication: HMAC over the raw body, constant-time token checks, nothing parsed before it."""

from __future__ import annotations

import hashlib
import hmac
import time
from pathlib import Path
from typing import Any

import pytest
from werkzeug.datastructures import EnvironHeaders, Headers

from shared.errors import (
    ConfigError,
    InvalidInput,
    RejectionReason,
    Unauthorized,
    http_status_for,
    is_permanent,
    rejection_reason,
)
from shared.ingest.signatures import (
    MAX_BODY_BYTES,
    Delivery,
    PayloadTooLarge,
    Provider,
    WebhookSecretMissing,
    WebhookSecrets,
    authenticate,
    github_signature,
    header,
    verify_github,
    verify_gitlab,
)
from tests.unit.shared.ingest.payloads import raw_bytes, sample_paths

pytestmark = pytest.mark.unit

SECRET = "It's a Secret to Everybody"
TOKEN = "gitlab-token-9f8e7d"
SECRETS = WebhookSecrets(github=SECRET, gitlab=TOKEN)
BODY = b'{"ref":"refs/heads/main","after":"' + b"a" * 40 + b'"}'


def github_headers(body: bytes, event: str = "push", secret: str = SECRET, **extra: str) -> dict[str, str]:
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "X-Hub-Signature-256": github_signature(body, secret),
        "Content-Type": "application/json",
        **extra,
    }


def gitlab_headers(token: str = TOKEN, event: str = "Push Hook", **extra: str) -> dict[str, str]:
    return {"X-Gitlab-Event": event, "X-Gitlab-Token": token, **extra}


def expected_hex(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def assert_unauthorized(error: BaseException, *, secret: str = SECRET, body: bytes = BODY) -> None:
    """A 401 that is recorded as unauthorized and says nothing secret."""
    assert isinstance(error, Unauthorized)
    assert http_status_for(error) == 401
    assert is_permanent(error)
    assert rejection_reason(error) is RejectionReason.UNAUTHORIZED
    text = f"{error} {error.problems}"
    assert secret not in text
    assert expected_hex(body, secret) not in text


# -- GitHub --------------------------------------------------------------------------------------------------


def test_known_vector_from_githubs_documentation() -> None:
    # GitHub's "Validating webhook deliveries" example: secret and payload below give this exact header.
    signature = github_signature(b"Hello, World!", SECRET)
    assert signature == "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


@pytest.mark.parametrize("path", sample_paths("github-push.json"))
def test_real_push_payload_signed_by_the_sender_is_accepted(path: Path) -> None:
    body = raw_bytes(path)
    delivery = authenticate(body, github_headers(body), SECRETS)
    assert delivery == Delivery(Provider.GITHUB, "push", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
    assert delivery.is_push and not delivery.is_ping


@pytest.mark.parametrize("path", sample_paths("github-ping.json"))
def test_real_ping_payload_is_a_ping(path: Path) -> None:
    body = raw_bytes(path)
    delivery = authenticate(body, github_headers(body, event="ping"), SECRETS)
    assert delivery.is_ping and not delivery.is_push


@pytest.mark.parametrize("path", sample_paths("github-push.json"))
def test_real_payload_with_one_byte_changed_is_refused(path: Path) -> None:
    body = raw_bytes(path)
    headers = github_headers(body)
    tampered = body.replace(b"refs/heads/master", b"refs/heads/mastex", 1)
    assert tampered != body
    with pytest.raises(Unauthorized, match="does not match the body") as caught:
        authenticate(tampered, headers, SECRETS)
    assert_unauthorized(caught.value, body=tampered)


def test_reserialised_json_is_not_the_signed_body() -> None:
    # Signing covers the bytes on the wire; the same JSON with other whitespace is another body.
    headers = github_headers(BODY)
    with pytest.raises(Unauthorized):
        authenticate(BODY.replace(b",", b", "), headers, SECRETS)


def test_signature_made_with_another_secret_is_refused() -> None:
    with pytest.raises(Unauthorized) as caught:
        authenticate(BODY, github_headers(BODY, secret="not the secret"), SECRETS)
    assert_unauthorized(caught.value)


def test_one_flipped_hex_digit_is_refused() -> None:
    good = github_signature(BODY, SECRET)
    last = good[-1]
    flipped = good[:-1] + ("0" if last != "0" else "1")
    with pytest.raises(Unauthorized) as caught:
        verify_github(BODY, {"X-Hub-Signature-256": flipped}, SECRET)
    assert_unauthorized(caught.value)


def test_uppercase_hex_of_the_right_digest_is_accepted() -> None:
    signature = "sha256=" + expected_hex(BODY).upper()
    verify_github(BODY, {"X-Hub-Signature-256": signature}, SECRET)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "sha256=",
        "sha256=abc",
        "sha256=" + "g" * 64,
        "sha256=" + "a" * 65,
        "SHA256=" + "a" * 64,
        "sha512=" + "a" * 128,
        "sha256=" + "é" * 64,  # non-ASCII: compare_digest on str would raise TypeError (a 500)
        "sha256=" + "a" * 10_000,
    ],
    ids=lambda v: repr(v[:20]),
)
def test_malformed_signature_headers_are_401_not_crashes(value: str) -> None:
    with pytest.raises(Unauthorized) as caught:
        verify_github(BODY, {"X-Hub-Signature-256": value}, SECRET)
    assert_unauthorized(caught.value)
    if len(value) > 10:
        assert value[7:] not in str(caught.value)  # what the caller sent is not echoed back


def test_sha1_signature_is_not_accepted_even_when_correct() -> None:
    # No downgrade: the legacy X-Hub-Signature scheme is never consulted.
    sha1 = "sha1=" + hmac.new(SECRET.encode(), BODY, hashlib.sha1).hexdigest()
    with pytest.raises(Unauthorized, match="sha256="):
        verify_github(BODY, {"X-Hub-Signature-256": sha1}, SECRET)
    with pytest.raises(Unauthorized, match="missing"):
        verify_github(BODY, {"X-Hub-Signature": sha1}, SECRET)


def test_missing_signature_header_is_401() -> None:
    headers = github_headers(BODY)
    del headers["X-Hub-Signature-256"]
    with pytest.raises(Unauthorized, match="missing X-Hub-Signature-256") as caught:
        authenticate(BODY, headers, SECRETS)
    assert_unauthorized(caught.value)


def test_unconfigured_secret_is_a_configuration_error_not_a_bad_signature() -> None:
    with pytest.raises(WebhookSecretMissing) as caught:
        authenticate(BODY, github_headers(BODY), WebhookSecrets(gitlab=TOKEN))
    error = caught.value
    assert isinstance(error, ConfigError) and not isinstance(error, Unauthorized)
    assert http_status_for(error) == 500
    assert rejection_reason(error) is RejectionReason.CONFIG
    assert "GITHUB_WEBHOOK_SECRET" in str(error)
    # ...even for an unsigned request: the operator must hear about the missing secret first.
    with pytest.raises(WebhookSecretMissing):
        verify_github(BODY, {}, "")


@pytest.mark.parametrize("case", [str.lower, str.upper, str.swapcase], ids=["lower", "upper", "swapped"])
def test_header_names_are_found_in_any_case(case: Any) -> None:
    headers = {case(name): value for name, value in github_headers(BODY).items()}
    assert "X-Hub-Signature-256" not in headers and "X-GitHub-Event" not in headers  # really other casings
    assert authenticate(BODY, headers, SECRETS).delivery_id == "72d3162e-cc78-11e3-81ab-4c9367dc0958"


def test_werkzeug_headers_from_a_real_request_work() -> None:
    signature = github_signature(BODY, SECRET)
    environ = {
        "HTTP_X_GITHUB_EVENT": "push",
        "HTTP_X_GITHUB_DELIVERY": "d-42",
        "HTTP_X_HUB_SIGNATURE_256": signature,
        "CONTENT_TYPE": "application/json",
    }
    delivery = authenticate(BODY, EnvironHeaders(environ), SECRETS)
    assert delivery.delivery_id == "d-42"
    assert authenticate(
        BODY, Headers([("x-github-event", "push"), ("X-Hub-Signature-256", signature)]), SECRETS
    )


def test_the_same_header_twice_with_different_values_is_refused() -> None:
    good = github_signature(BODY, SECRET)
    headers = {
        "X-GitHub-Event": "push",
        "X-Hub-Signature-256": good,
        "x-hub-signature-256": "sha256=" + "0" * 64,
    }
    with pytest.raises(Unauthorized, match="different values"):
        authenticate(BODY, headers, SECRETS)
    repeated = Headers(
        [("X-GitHub-Event", "push"), ("X-Hub-Signature-256", good), ("X-Hub-Signature-256", good)]
    )
    assert authenticate(BODY, repeated, SECRETS).provider is Provider.GITHUB


def test_header_values_that_are_not_text_are_refused() -> None:
    with pytest.raises(Unauthorized, match="must be text"):
        header({"X-Hub-Signature-256": b"sha256=00"}, "x-hub-signature-256")  # type: ignore[dict-item]
    assert header({1: "x", "Other": "y"}, "x-missing") is None  # type: ignore[dict-item]


@pytest.mark.parametrize("body", ["{}", {"ref": "x"}, None, 42], ids=["str", "dict", "none", "int"])
def test_a_body_that_is_not_bytes_is_a_caller_bug(body: Any) -> None:
    with pytest.raises(TypeError, match="must be bytes"):
        authenticate(body, github_headers(BODY), SECRETS)


def test_bytearray_and_memoryview_bodies_are_the_same_bytes() -> None:
    headers = github_headers(BODY)
    assert authenticate(bytearray(BODY), headers, SECRETS).provider is Provider.GITHUB
    assert authenticate(memoryview(BODY), headers, SECRETS).provider is Provider.GITHUB  # type: ignore[arg-type]


def test_body_over_the_limit_is_413_before_any_verification() -> None:
    with pytest.raises(PayloadTooLarge) as caught:
        authenticate(b"x" * 101, {}, WebhookSecrets(), max_body_bytes=100)
    assert http_status_for(caught.value) == 413
    assert isinstance(caught.value, InvalidInput)
    assert MAX_BODY_BYTES == 25 * 1024 * 1024


def test_a_large_signed_body_verifies_quickly() -> None:
    body = b'{"commits": [' + b'"x",' * 2_000_000 + b'"y"]}'  # ~8 MB
    headers = github_headers(body)
    started = time.perf_counter()
    assert authenticate(body, headers, SECRETS).is_push
    assert time.perf_counter() - started < 2.0


def test_delivery_id_that_is_not_printable_is_invalid_after_authentication() -> None:
    headers = github_headers(BODY) | {"X-GitHub-Delivery": "id\x07with-bell"}
    with pytest.raises(InvalidInput, match="X-GitHub-Delivery"):
        authenticate(BODY, headers, SECRETS)


# -- GitLab --------------------------------------------------------------------------------------------------


def test_gitlab_token_is_accepted_with_its_idempotency_key() -> None:
    headers = gitlab_headers(**{"Idempotency-Key": "f5f1-retry-stable", "X-Gitlab-Event-UUID": "e-1"})
    delivery = authenticate(b"{}", headers, SECRETS)
    assert delivery == Delivery(Provider.GITLAB, "Push Hook", "f5f1-retry-stable")
    assert delivery.is_push


def test_gitlab_without_idempotency_key_uses_the_event_uuid() -> None:
    delivery = authenticate(b"{}", gitlab_headers(**{"x-gitlab-event-uuid": "e-77"}), SECRETS)
    assert delivery.delivery_id == "e-77"
    assert authenticate(b"{}", gitlab_headers(event="Tag Push Hook"), SECRETS).is_push
    assert not authenticate(b"{}", gitlab_headers(event="Merge Request Hook"), SECRETS).is_push


@pytest.mark.parametrize("token", ["wrong", TOKEN + "x", TOKEN[:-1], TOKEN.upper(), "tökén", " " + TOKEN])
def test_wrong_gitlab_tokens_are_401(token: str) -> None:
    with pytest.raises(Unauthorized, match="does not match") as caught:
        authenticate(b"{}", gitlab_headers(token=token), SECRETS)
    assert TOKEN not in str(caught.value)
    assert http_status_for(caught.value) == 401


def test_missing_gitlab_token_is_401_and_unconfigured_token_is_a_config_error() -> None:
    headers = gitlab_headers()
    del headers["X-Gitlab-Token"]
    with pytest.raises(Unauthorized, match="missing X-Gitlab-Token"):
        authenticate(b"{}", headers, SECRETS)
    with pytest.raises(WebhookSecretMissing, match="GITLAB_WEBHOOK_TOKEN"):
        authenticate(b"{}", gitlab_headers(), WebhookSecrets(github=SECRET))
    with pytest.raises(WebhookSecretMissing):
        verify_gitlab({}, "")


# -- who is calling ------------------------------------------------------------------------------------------


def test_a_request_naming_no_provider_is_401() -> None:
    with pytest.raises(Unauthorized, match="neither X-GitHub-Event nor X-Gitlab-Event"):
        authenticate(BODY, {"Content-Type": "application/json"}, SECRETS)


def test_a_request_naming_both_providers_is_401() -> None:
    headers = github_headers(BODY) | gitlab_headers()
    with pytest.raises(Unauthorized, match="both"):
        authenticate(BODY, headers, SECRETS)


def test_secrets_never_show_in_repr_and_come_from_the_environment() -> None:
    secrets = WebhookSecrets.from_environ(
        {"GITHUB_WEBHOOK_SECRET": SECRET, "GITLAB_WEBHOOK_TOKEN": TOKEN, "OTHER": "x"}
    )
    assert secrets == SECRETS
    assert SECRET not in repr(secrets) and TOKEN not in repr(secrets)
    assert WebhookSecrets.from_environ({}) == WebhookSecrets("", "")


def test_secrets_from_a_non_utf8_environment_still_verify() -> None:
    odd = "secret-\udcff"  # how os.environ decodes a byte that is not UTF-8
    body = b"{}"
    verify_github(body, {"X-Hub-Signature-256": github_signature(body, odd)}, odd)
    with pytest.raises(Unauthorized):
        verify_github(body, {"X-Hub-Signature-256": github_signature(body, "secret-")}, odd)
    verify_gitlab({"X-Gitlab-Token": odd}, odd)
    with pytest.raises(Unauthorized):
        verify_gitlab({"X-Gitlab-Token": "secret-"}, odd)
