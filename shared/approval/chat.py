"""Google Chat: a ``CARD_CLICKED`` event from an Approve / Reject card button, with its bearer token.

Google Chat calls the app's HTTP endpoint (``on_chat_approval``) with ``Authorization: Bearer <token>``.
Which verifier runs (exactly one; without either variable every request is refused):

* **production** — ``CHAT_AUDIENCE`` set (the app's endpoint URL, as configured under "Authentication
  Audience: HTTP endpoint URL"): the token is a Google-signed ID token, verified with google-auth's
  :func:`google.oauth2.id_token.verify_oauth2_token` (signature against Google's certificates, expiry,
  ``aud`` = ``CHAT_AUDIENCE``, issuer ``accounts.google.com``) and it must be issued to
  ``chat@system.gserviceaccount.com`` with a verified email;
* **local** — ``CHAT_VERIFICATION_TOKEN`` set: the bearer token must equal it (constant-time). Never set it
  in production: it would let anyone who learns it decide.

The button's ``action.function`` (``approve`` / ``reject``) and parameters (run id, model, version) come back
as ``common.invokedFunction`` + ``common.parameters`` (and, in the older shape, ``action.actionMethodName`` +
``action.parameters``). The person is ``user.email`` (else ``chat:<user.name>``). The answer is a new
message in the thread: ``{"actionResponse": {"type": "NEW_MESSAGE"}, "text": ...}``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.approval.actions import DECISIONS, candidate_parameters
from shared.errors import InvalidInput, Unauthorized
from shared.events.common import parse_json

AUDIENCE_VARIABLE = "CHAT_AUDIENCE"
TOKEN_VARIABLE = "CHAT_VERIFICATION_TOKEN"
CHAT_ISSUER_EMAIL = "chat@system.gserviceaccount.com"
MAX_EVENT_BYTES = 256 * 1024


@dataclass(frozen=True)
class ChatClick:
    decision: str
    parameters: Mapping[str, str]
    email: str
    user_name: str  # users/123...
    event_time: str

    @property
    def nonce(self) -> str:
        """The decision's nonce: Chat events carry no id, so one is derived from who clicked what, when."""
        seed = "\n".join(
            [self.user_name, self.email, self.decision, self.event_time, *sorted(self.parameters.values())]
        )
        return "chat-" + hashlib.sha256(seed.encode("utf-8", "surrogatepass")).hexdigest()[:32]

    @property
    def identities(self) -> tuple[str, ...]:
        """How ``approvers`` may name this person: the email, or ``chat:users/<id>``."""
        names = [self.email] if self.email else []
        if self.user_name:
            names.append(f"chat:{self.user_name}")
        return tuple(names)


def verify(headers: Any, environ: Mapping[str, str] | None = None) -> str:
    """Check the bearer token; returns which verifier accepted it (``static`` or ``google``)."""
    env = os.environ if environ is None else environ
    header = str(headers.get("Authorization") or "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Google Chat event", ["Authorization: a Bearer token is required"])
    token = token.strip()
    static = env.get(TOKEN_VARIABLE, "")
    if static:
        if hmac.compare_digest(
            token.encode("utf-8", "surrogatepass"), static.encode("utf-8", "surrogatepass")
        ):
            return "static"
        raise Unauthorized("Google Chat event", ["Authorization: the token does not match"])
    audience = env.get(AUDIENCE_VARIABLE, "")
    if not audience:
        raise Unauthorized(
            "Google Chat event",
            [f"no verifier configured: set {AUDIENCE_VARIABLE} (or locally {TOKEN_VARIABLE})"],
        )
    verify_google_token(token, audience)
    return "google"


def verify_google_token(token: str, audience: str) -> Mapping[str, Any]:
    """A Google-signed ID token for ``audience`` issued to Google Chat; its claims."""
    from google.auth.transport import requests as google_requests
    from google.oauth2 import id_token

    try:
        claims = id_token.verify_oauth2_token(  # type: ignore[no-untyped-call]
            token, google_requests.Request(), audience
        )
    except ValueError as error:  # bad signature, expired, wrong audience or issuer
        raise Unauthorized("Google Chat event", [f"Authorization: {error}"]) from None
    if claims.get("email") != CHAT_ISSUER_EMAIL or claims.get("email_verified") is not True:
        raise Unauthorized("Google Chat event", [f"Authorization: not issued to {CHAT_ISSUER_EMAIL}"])
    return dict(claims)


def parse_click(body: bytes) -> ChatClick | None:
    """The click in a verified event; None for any other event (a message, ADDED_TO_SPACE...)."""
    event = parse_json(body, max_bytes=MAX_EVENT_BYTES, what="Google Chat event")
    if not isinstance(event, dict) or event.get("type") != "CARD_CLICKED":
        return None
    common = _mapping(event.get("common"))
    action = _mapping(event.get("action"))
    function = common.get("invokedFunction") or action.get("actionMethodName")
    if function not in DECISIONS:
        return None
    parameters: dict[str, Any] = dict(_mapping(common.get("parameters")))
    listed = action.get("parameters")
    for item in listed if isinstance(listed, list) else []:
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            parameters.setdefault(item["key"], item.get("value"))
    user = _mapping(event.get("user"))
    email, name = _text(user.get("email")), _text(user.get("name"))
    if not email and not name:
        raise InvalidInput("Google Chat event", ["user: an email or a name is required"])
    return ChatClick(
        decision=str(function),
        parameters=candidate_parameters(parameters, "common.parameters"),
        email=email.lower(),
        user_name=name,
        event_time=_text(event.get("eventTime")),
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def answer(text: str) -> dict[str, Any]:
    """A new message in the thread, telling the person what happened."""
    return {"actionResponse": {"type": "NEW_MESSAGE"}, "text": text}
