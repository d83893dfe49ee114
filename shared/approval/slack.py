"""Slack interactivity: a signed ``block_actions`` request from an Approve / Reject button.

Slack POSTs ``application/x-www-form-urlencoded`` with one field, ``payload`` (JSON), to the app's
interactivity URL (``on_chat_approval``). Before anything is parsed:

1. the signature — ``X-Slack-Signature: v0=HMAC-SHA256(signing secret, "v0:" + timestamp + ":" + raw body)``
   with ``X-Slack-Request-Timestamp`` within 300 s of now — is checked by ``slack_sdk``'s
   :class:`~slack_sdk.signature.SignatureVerifier` (constant-time comparison; imported only here), with the
   secret from ``SLACK_SIGNING_SECRET``;
2. a replay inside that window is refused: each verified ``(timestamp, signature)`` is remembered in the
   ledger as a create-only document ``slack-requests/<digest>``; a second one conflicts. (Only verified
   requests are remembered, so nobody can fill the ledger with forgeries.)

Forged, stale or replayed → :class:`~shared.errors.Unauthorized` (401, recorded as rejected, nothing else
changes). The answer to a verified click (``response_type: ephemeral``, ``replace_original: false``: only
the person sees it) is the response body and is also posted to the interaction's ``response_url`` (a
Slack host only), since Slack displays a ``block_actions`` acknowledgement's body to nobody.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from shared import deadline as deadlines
from shared import log
from shared.approval.actions import DECISIONS, parse_button_value
from shared.config import Channel, ChannelFilter
from shared.errors import ConfigError, InvalidInput, Unauthorized
from shared.events.common import parse_json
from shared.ledger import DocConflictError
from shared.notify.channels import Rendered

if TYPE_CHECKING:
    from shared.runtime import Runtime

SECRET_VARIABLE = "SLACK_SIGNING_SECRET"
WINDOW_SECONDS = 300  # Slack's documented window, and slack_sdk's
SEEN = "slack-requests"  # ledger collection of verified (timestamp, signature) pairs
MAX_PAYLOAD_BYTES = 256 * 1024
CALL_SECONDS = 5.0


@dataclass(frozen=True)
class SlackClick:
    """A verified click on one of our buttons."""

    decision: str  # approve | reject
    parameters: Mapping[str, str]  # run_id, model, version
    user_id: str
    username: str
    nonce: str  # unique per request: derived from its signature
    response_url: str = ""  # where Slack takes a message for the person (https://hooks.slack.com/...)

    @property
    def identities(self) -> tuple[str, ...]:
        """How ``approvers`` may name this person: ``slack:<user id>`` (stable) or ``slack:<username>``."""
        names = [f"slack:{self.user_id}"]
        if self.username:
            names.append(f"slack:{self.username}")
        return tuple(names)


def is_slack(headers: Any) -> bool:
    return bool(headers.get("X-Slack-Signature") or headers.get("X-Slack-Request-Timestamp"))


def verify(headers: Any, body: bytes, now: datetime, secret: str | None = None) -> tuple[str, str]:
    """Check the signature and the window; returns ``(timestamp, signature)``. Unauthorized otherwise."""
    from slack_sdk.signature import Clock, SignatureVerifier

    signing_secret = secret if secret is not None else os.environ.get(SECRET_VARIABLE, "")
    if not signing_secret.strip():
        raise ConfigError(f"{SECRET_VARIABLE} is not set: Slack requests cannot be verified")
    timestamp = str(headers.get("X-Slack-Request-Timestamp") or "")
    signature = str(headers.get("X-Slack-Signature") or "")
    if not timestamp or not signature:
        raise Unauthorized("Slack request", ["X-Slack-Request-Timestamp and X-Slack-Signature are required"])
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise Unauthorized("Slack request", ["X-Slack-Request-Timestamp: not a Unix time"])
    if abs(now.timestamp() - int(timestamp)) > WINDOW_SECONDS:
        raise Unauthorized("Slack request", [f"stale: timestamp outside the {WINDOW_SECONDS} s window"])

    class _Now(Clock):  # the runtime's clock, so tests and the window agree
        def now(self) -> float:
            return now.timestamp()

    if not SignatureVerifier(signing_secret, clock=_Now()).is_valid(body, timestamp, signature):
        raise Unauthorized("Slack request", ["X-Slack-Signature does not match the body"])
    return timestamp, signature


def remember(runtime: Runtime, timestamp: str, signature: str) -> str:
    """Refuse a replay: the first sight of this signed request creates its document, a replay conflicts.
    Returns the request's digest (the decision's nonce)."""
    digest = hashlib.sha256(f"{timestamp}\n{signature}".encode()).hexdigest()[:40]
    now = runtime.clock()
    try:
        runtime.ledger.put_doc(
            SEEN,
            digest,
            {
                "timestamp": timestamp,
                "seen_at": now.isoformat(),
                # For a Firestore TTL policy on this field: nothing older than the window can be replayed.
                "expires_at": (now + timedelta(seconds=2 * WINDOW_SECONDS)).isoformat(),
            },
            create_only=True,
            timeout=deadlines.current().timeout(CALL_SECONDS),
        )
    except DocConflictError:
        raise Unauthorized("Slack request", ["replayed: this signed request was already received"]) from None
    return digest


def parse_click(body: bytes, nonce: str) -> SlackClick | None:
    """The click in a verified body; None for an interaction that is not one of our buttons."""
    try:
        form = parse_qs(body.decode("utf-8"), strict_parsing=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput("Slack interaction", ["body: not a form"]) from None
    raw = (form.get("payload") or [""])[0]
    if not raw:
        raise InvalidInput("Slack interaction", ["payload: required"])
    payload = parse_json(raw, max_bytes=MAX_PAYLOAD_BYTES, what="Slack interaction", field="payload")
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        return None
    actions = payload.get("actions")
    ours = [
        action
        for action in (actions if isinstance(actions, list) else [])
        if isinstance(action, dict) and action.get("action_id") in DECISIONS
    ]
    if not ours:
        return None
    action = ours[0]
    value = action.get("value")
    parameters = parse_button_value(value if isinstance(value, str) else "", "payload.actions[].value")
    user = payload.get("user")
    user = user if isinstance(user, dict) else {}
    user_id = user.get("id")
    if not isinstance(user_id, str) or not user_id:
        raise InvalidInput("Slack interaction", ["payload.user.id: required"])
    username = user.get("username") or user.get("name") or ""
    response_url = payload.get("response_url")
    return SlackClick(
        decision=str(action["action_id"]),
        parameters=parameters,
        user_id=user_id,
        username=username if isinstance(username, str) else "",
        nonce=f"slack-{nonce}",
        response_url=response_url if isinstance(response_url, str) and _slack_url(response_url) else "",
    )


def _slack_url(url: str) -> bool:
    """Only Slack's own https hosts: the URL comes from a verified body, but we never POST elsewhere."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return parts.scheme == "https" and (host == "slack.com" or host.endswith(".slack.com"))


def tell(runtime: Runtime, click: SlackClick, text: str) -> None:
    """Post the answer to the interaction's ``response_url`` too: Slack shows a ``block_actions``
    acknowledgement's body to nobody, the response URL is how the person learns the outcome. Best effort:
    the decision is made already, so a failure here is logged, not retried."""
    if not click.response_url:
        return
    channel = Channel("slack-response", "slack", click.response_url, ChannelFilter(), timeout_seconds=2.0)
    try:
        runtime.transport.deliver(channel, Rendered(channel.name, body=answer(text)))
    except Exception as error:
        log.warning("could not answer on Slack's response_url", error=f"{type(error).__name__}: {error}")


def answer(text: str) -> dict[str, Any]:
    """The response body Slack shows the person who clicked (only them)."""
    return {"response_type": "ephemeral", "replace_original": False, "text": text}
