"""Standard Webhooks signatures (https://www.standardwebhooks.com/) for the generic webhook channel.

A channel with ``signingSecret`` (``whsec_`` + base64 key, checked by :mod:`shared.config`) sends three more
headers, so any Standard Webhooks library verifies what it receives:

* ``webhook-id`` — :func:`message_id`: derived from the notification's event id and the channel, so every
  retry of one delivery carries the same id (receivers deduplicate on it). It is a digest rather than the raw
  ids because the specification forbids ``.`` in it (event ids may hold dots, or text no header can carry);
  the body still has ``event_id`` and ``run_id`` in the clear.
* ``webhook-timestamp`` — the attempt's time, unix seconds (each retry is signed anew: stale ones fail).
* ``webhook-signature`` — ``v1,`` + base64 HMAC-SHA256 of ``{id}.{timestamp}.{body}`` under the decoded key.

The signing is the specification's reference Python library (``standardwebhooks``: stdlib only, imported here
on the signing path alone), not our own HMAC code.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

ID_PREFIX = "msg_"


def message_id(channel: str, body: Mapping[str, Any] | None, raw: bytes) -> str:
    """``msg_`` + 32 base32 characters: the same for every attempt of one notification to one channel."""
    event_id = body.get("event_id") if body is not None else None
    # A body without an event id (a custom renderer) is identified by its bytes, which retries repeat.
    source = f"event:{event_id}" if isinstance(event_id, str) and event_id else f"body:{raw.hex()}"
    digest = hashlib.sha256(f"{source}\n{channel}".encode("utf-8", "surrogatepass")).digest()
    return ID_PREFIX + base64.b32encode(digest[:20]).decode("ascii").lower()


def signature_headers(secret: str, webhook_id: str, raw: bytes, unix_seconds: float) -> dict[str, str]:
    """The three headers for ``raw`` (the exact bytes sent) signed at ``unix_seconds``."""
    from standardwebhooks import Webhook

    timestamp = int(unix_seconds)
    signature = Webhook(secret).sign(webhook_id, datetime.fromtimestamp(timestamp, UTC), raw.decode("utf-8"))
    return {"webhook-id": webhook_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}
