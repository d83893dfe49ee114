"""Who sent a git webhook: GitHub's ``X-Hub-Signature-256`` and GitLab's ``X-Gitlab-Token``, checked first.

:func:`authenticate` runs on the raw request body and headers *before* the body is parsed, so a forged or
unsigned request costs one HMAC and starts nothing. It answers a :class:`Delivery` (provider, event name,
delivery id) or raises:

* :class:`~shared.errors.Unauthorized` (HTTP 401) — a missing, malformed or wrong signature/token, or a
  request that names no provider. Messages say what was wrong with the request and never contain the
  configured secret, the expected digest or the value the caller sent.
* :class:`WebhookSecretMissing` (a :class:`~shared.errors.ConfigError`, HTTP 500) — the deployment has no
  secret for the provider that called. That is the operator's mistake, not the sender's, so it is not
  reported as a bad signature (the sender would be told its correct signature is wrong).
* :class:`PayloadTooLarge` (HTTP 413) — a body larger than any webhook GitHub or GitLab sends.

Why the standard library: GitHub's scheme is HMAC-SHA256 of the raw body, hex, prefixed ``sha256=``;
``hmac.new`` + ``hmac.compare_digest`` is the whole algorithm. ``githubkit``'s ``webhooks.verify`` does the
same with ``hmac`` but falls back to SHA-1 for any header not starting with ``sha256=``, raises ``TypeError``
(a 500, not a 401) on a non-ASCII header, and its import pulls pydantic models (~0.45 s measured, 74 MB
installed) into a function that must answer in well under a second.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from shared.errors import ConfigError, InvalidInput, Unauthorized

GITHUB_EVENT_HEADER = "X-GitHub-Event"
GITHUB_DELIVERY_HEADER = "X-GitHub-Delivery"
GITHUB_SIGNATURE_HEADER = "X-Hub-Signature-256"
GITLAB_EVENT_HEADER = "X-Gitlab-Event"
GITLAB_TOKEN_HEADER = "X-Gitlab-Token"
# GitLab 17.4+ sends Idempotency-Key, the same on every retry of one event; older versions only the
# per-event X-Gitlab-Event-UUID.
GITLAB_IDEMPOTENCY_HEADER = "Idempotency-Key"
GITLAB_EVENT_UUID_HEADER = "X-Gitlab-Event-UUID"

GITHUB_SECRET_VARIABLE = "GITHUB_WEBHOOK_SECRET"
GITLAB_TOKEN_VARIABLE = "GITLAB_WEBHOOK_TOKEN"

#: GitHub drops webhook payloads above 25 MB; nothing legitimate is larger.
MAX_BODY_BYTES = 25 * 1024 * 1024

_SIGNATURE_PREFIX = "sha256="
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")
# Event names and delivery ids are echoed into logs and ledger records: keep them short and printable.
_PRINTABLE = re.compile(r"[\x21-\x7e][\x20-\x7e]{0,199}")


class Provider(enum.StrEnum):
    GITHUB = "github"
    GITLAB = "gitlab"


class WebhookSecretMissing(ConfigError):
    """No secret is configured for the provider that called: a deployment error, distinct from a bad
    signature (HTTP 500, reason ``config``)."""

    def __init__(self, provider: Provider, variable: str) -> None:
        self.provider = provider
        self.variable = variable
        super().__init__(
            f"{provider.value} webhooks cannot be verified: {variable} is not set (configure the same secret "
            f"here and in the {provider.value} webhook settings)"
        )


class PayloadTooLarge(InvalidInput):
    """A body larger than any webhook the providers send (HTTP 413)."""

    http_status = 413

    def __init__(self, size: int, limit: int) -> None:
        super().__init__("webhook request", [f"body is {size} bytes; webhooks are at most {limit} bytes"])


class HeaderSource(Protocol):
    """Request headers: a plain mapping, or werkzeug's ``Headers`` (which is not a ``Mapping``)."""

    def items(self) -> Iterable[tuple[str, str]]: ...


@dataclass(frozen=True)
class WebhookSecrets:
    """The configured secrets; an empty string means "not configured". Never shown by ``repr``."""

    github: str = field(default="", repr=False)
    gitlab: str = field(default="", repr=False)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> WebhookSecrets:
        """From ``GITHUB_WEBHOOK_SECRET`` and ``GITLAB_WEBHOOK_TOKEN`` (values used exactly as given)."""
        return cls(
            github=environ.get(GITHUB_SECRET_VARIABLE, ""),
            gitlab=environ.get(GITLAB_TOKEN_VARIABLE, ""),
        )


@dataclass(frozen=True)
class Delivery:
    """An authenticated webhook request: who sent it, which event, and the sender's delivery id."""

    provider: Provider
    event: str  # GitHub: "push", "ping"...; GitLab: "Push Hook", "Tag Push Hook"...
    delivery_id: str  # "" when the sender gave none

    @property
    def is_ping(self) -> bool:
        """GitHub's ``ping``, sent when a webhook is created (GitLab has none: its test sends a push)."""
        return self.provider is Provider.GITHUB and self.event == "ping"

    @property
    def is_push(self) -> bool:
        """A push of a branch or a tag (GitHub sends both as ``push``)."""
        if self.provider is Provider.GITHUB:
            return self.event == "push"
        return self.event in ("Push Hook", "Tag Push Hook")


def header(headers: HeaderSource, name: str) -> str | None:
    """The value of header ``name`` in any letter case; None when absent.

    Several *different* values under one name (a proxy appended its own, or a plain dict holding two
    casings) are ambiguous for an authentication header: :class:`~shared.errors.Unauthorized`.
    """
    wanted = name.casefold()
    found: set[str] = set()
    for key, value in headers.items():
        if isinstance(key, str) and key.casefold() == wanted:
            if not isinstance(value, str):
                raise Unauthorized(f"{name} header must be text")
            found.add(value)
    if len(found) > 1:
        raise Unauthorized(f"{name} header given {len(found)} times with different values")
    return next(iter(found), None)


def github_signature(body: bytes, secret: str) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body`` (for senders: tests and the demo)."""
    if not secret:
        raise WebhookSecretMissing(Provider.GITHUB, GITHUB_SECRET_VARIABLE)
    return _SIGNATURE_PREFIX + hmac.new(_utf8(secret), _raw(body), hashlib.sha256).hexdigest()


def verify_github(body: bytes, headers: HeaderSource, secret: str) -> None:
    """Check ``X-Hub-Signature-256`` against HMAC-SHA256 of the raw ``body`` with ``secret``."""
    if not secret:
        raise WebhookSecretMissing(Provider.GITHUB, GITHUB_SECRET_VARIABLE)
    raw = _raw(body)
    given = header(headers, GITHUB_SIGNATURE_HEADER)
    if given is None or not given.strip():
        raise Unauthorized(f"missing {GITHUB_SIGNATURE_HEADER} header (is a secret set on the webhook?)")
    given = given.strip()
    hex_part = given[len(_SIGNATURE_PREFIX) :]
    # The format is public, so checking it first leaks nothing; it also keeps compare_digest on bytes
    # (it raises TypeError for non-ASCII str) and refuses SHA-1 "sha1=" signatures outright.
    if not given.startswith(_SIGNATURE_PREFIX) or not _HEX_DIGEST.fullmatch(hex_part):
        raise Unauthorized(f"{GITHUB_SIGNATURE_HEADER} must be 'sha256=' followed by 64 hex digits")
    expected = hmac.new(_utf8(secret), raw, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, bytes.fromhex(hex_part)):
        raise Unauthorized(f"{GITHUB_SIGNATURE_HEADER} does not match the body")


def verify_gitlab(headers: HeaderSource, token: str) -> None:
    """Check ``X-Gitlab-Token`` against the configured token, in constant time."""
    if not token:
        raise WebhookSecretMissing(Provider.GITLAB, GITLAB_TOKEN_VARIABLE)
    given = header(headers, GITLAB_TOKEN_HEADER)
    if given is None or given == "":
        raise Unauthorized(f"missing {GITLAB_TOKEN_HEADER} header (is a secret token set on the webhook?)")
    # Compare fixed-length digests: compare_digest on the raw values would leak the token's length through
    # timing (and refuses non-ASCII str); hashing first also accepts any text the caller sends.
    given_digest = hashlib.sha256(_utf8(given)).digest()
    if not hmac.compare_digest(given_digest, hashlib.sha256(_utf8(token)).digest()):
        raise Unauthorized(f"{GITLAB_TOKEN_HEADER} does not match")


def authenticate(
    body: bytes, headers: HeaderSource, secrets: WebhookSecrets, *, max_body_bytes: int = MAX_BODY_BYTES
) -> Delivery:
    """Who sent this request, verified; raises before anything in ``body`` is looked at."""
    raw = _raw(body)
    if len(raw) > max_body_bytes:
        raise PayloadTooLarge(len(raw), max_body_bytes)
    github_event = header(headers, GITHUB_EVENT_HEADER)
    gitlab_event = header(headers, GITLAB_EVENT_HEADER)
    if github_event is not None and gitlab_event is not None:
        raise Unauthorized(f"both {GITHUB_EVENT_HEADER} and {GITLAB_EVENT_HEADER} given: which sender is it?")
    if github_event is not None:
        verify_github(raw, headers, secrets.github)
        return Delivery(
            Provider.GITHUB,
            _text(github_event, GITHUB_EVENT_HEADER),
            _text(header(headers, GITHUB_DELIVERY_HEADER) or "", GITHUB_DELIVERY_HEADER),
        )
    if gitlab_event is not None:
        verify_gitlab(headers, secrets.gitlab)
        delivery = header(headers, GITLAB_IDEMPOTENCY_HEADER) or header(headers, GITLAB_EVENT_UUID_HEADER)
        return Delivery(
            Provider.GITLAB,
            _text(gitlab_event, GITLAB_EVENT_HEADER),
            _text(delivery or "", GITLAB_IDEMPOTENCY_HEADER),
        )
    raise Unauthorized(
        f"not a GitHub or GitLab webhook: neither {GITHUB_EVENT_HEADER} nor {GITLAB_EVENT_HEADER} is given"
    )


def _raw(body: bytes) -> bytes:
    # The signature covers the bytes on the wire: re-encoding a decoded str could differ from them, so a str
    # here is a bug in the caller, not bad input.
    if isinstance(body, (bytearray, memoryview)):
        return bytes(body)
    if not isinstance(body, bytes):
        raise TypeError(f"the raw request body must be bytes, got {type(body).__name__}")
    return body


def _utf8(text: str) -> bytes:
    # "surrogatepass": a secret read from a non-UTF-8 environment holds lone surrogates; they must still
    # encode, the same way every time, rather than crash the check.
    return text.encode("utf-8", "surrogatepass")


def _text(value: str, name: str) -> str:
    """A header value fit for logs (checked only after the request is authenticated)."""
    if value and not _PRINTABLE.fullmatch(value):
        raise InvalidInput("webhook request", [f"{name}: must be printable ASCII, at most 200 characters"])
    return value
