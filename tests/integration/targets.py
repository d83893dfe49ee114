"""Test-only entry points the function host mounts beside main.py's (``--extra-source``).

``record_event`` proves the storage → CloudEvent → function path before ``on_data_object`` exists: it
forwards what functions-framework handed it to the webhook sink, where the test reads it back.
"""

from __future__ import annotations

import os
from typing import Any

import functions_framework
import requests

__all__ = ["record_event"]


@functions_framework.cloud_event
def record_event(cloud_event: Any) -> None:
    record = {
        "id": cloud_event["id"],
        "type": cloud_event["type"],
        "source": cloud_event["source"],
        "subject": cloud_event.get("subject"),
        "bucket": cloud_event.get("bucket"),
        "data": cloud_event.data,
    }
    url = f"{os.environ['WEBHOOK_SINK_URL']}/events/record_event"
    requests.post(url, json=record, timeout=10).raise_for_status()
