"""What every part of the demo shares: progress lines and the webhook sink's record."""

from __future__ import annotations

from typing import Any

import requests


def say(message: str) -> None:
    print(message, flush=True)


def sink(env: dict[str, str], prefix: str = "/hook/") -> list[dict[str, Any]]:
    """What the local webhook sink (Slack, Chat and webhooks stand-in) has received under ``prefix``."""
    response = requests.get(f"{env['WEBHOOK_SINK_URL']}/_sink/requests", params={"prefix": prefix}, timeout=5)
    response.raise_for_status()
    records: list[dict[str, Any]] = response.json()
    return records
