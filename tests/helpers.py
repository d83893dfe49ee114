"""Shared test helpers: captured payloads, event builders."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).parent / "events"
SHARED_SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"


def load_event(name: str) -> Any:
    """A captured real payload from tests/events (copied unchanged from the services)."""
    return json.loads((EVENTS_DIR / name).read_text())


def push_envelope(
    data: bytes | str | dict[str, Any],
    attributes: dict[str, str] | None = None,
    message_id: str = "1001",
    publish_time: str = "2026-11-22T10:00:00.000Z",
    subscription: str = "projects/demo-project/subscriptions/notify",
) -> dict[str, Any]:
    """A Pub/Sub push request body, exactly as the push subscription sends it."""
    if isinstance(data, dict):
        data = json.dumps(data)
    raw = data.encode() if isinstance(data, str) else data
    return {
        "message": {
            "data": base64.b64encode(raw).decode(),
            "attributes": attributes or {},
            "messageId": message_id,
            "message_id": message_id,
            "publishTime": publish_time,
            "publish_time": publish_time,
        },
        "subscription": subscription,
    }
