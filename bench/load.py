"""Concurrent senders: ``C`` threads, each with its own keep-alive connection, POST ``N`` prepared requests.

The senders run in the bench's own process, on the same two cores as the servers: every figure and its
baseline are measured the same way, so the ratios hold even where the absolute numbers carry the client.
"""

from __future__ import annotations

import base64
import json
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests

from shared.events import new_envelope


@dataclass(frozen=True)
class Request:
    path: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Sent:
    """What a burst of requests measured."""

    requests: int
    seconds: float
    statuses: dict[int, int]  # the final answer per request
    redelivered: int = 0  # 5xx answers sent again, as Pub/Sub or Eventarc would

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def ok(self) -> bool:
        return set(self.statuses) <= {200, 204}


#: A 5xx asks for a redelivery: sent again after this pause, at most this many times (``redeliver=True``).
REDELIVERY_PAUSE_SECONDS = 0.2
MAX_DELIVERIES = 5


def send_all(
    base_url: str,
    items: Sequence[Request],
    concurrency: int,
    timeout: float = 60.0,
    *,
    redeliver: bool = False,
) -> Sent:
    """POST every item with ``concurrency`` senders; the clock runs from the first send to the last answer.

    With ``redeliver`` a 5xx answer (the function asking for a retry: a lease held by a concurrent delivery,
    contention) is sent again, as the push subscription or Eventarc would, and counted in ``redelivered``.
    """
    work: queue.SimpleQueue[Request | None] = queue.SimpleQueue()
    for item in items:
        work.put(item)
    senders = max(1, min(concurrency, len(items)))
    for _ in range(senders):
        work.put(None)
    statuses: dict[int, int] = {}
    redelivered = [0]
    lock = threading.Lock()
    failures: list[BaseException] = []
    start = threading.Barrier(senders + 1)

    def sender() -> None:
        session = requests.Session()
        try:
            start.wait()
            while (item := work.get()) is not None:
                for delivery in range(1, MAX_DELIVERIES + 1):
                    status = session.post(
                        base_url + item.path, data=item.body, headers=item.headers, timeout=timeout
                    ).status_code
                    if status < 500 or not redeliver or delivery == MAX_DELIVERIES:
                        break
                    with lock:
                        redelivered[0] += 1
                    time.sleep(REDELIVERY_PAUSE_SECONDS)
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1
        except BaseException as error:  # reported below: a sender's failure must not read as a fast run
            failures.append(error)
        finally:
            session.close()

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(senders)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    if failures:
        raise RuntimeError(f"a sender failed: {failures[0]!r}")
    return Sent(len(items), seconds, statuses, redelivered[0])


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def notification(event_id: str, run_id: str) -> tuple[bytes, dict[str, str]]:
    """A ``notification`` event's Pub/Sub data and attributes, as a producer publishes it."""
    data = {"kind": "build.succeeded", "severity": "info", "title": f"bench {event_id}", "labels": {}}
    envelope = new_envelope("notification", run_id, data, event_id=event_id)
    return json.dumps(envelope.to_json()).encode(), envelope.attributes()


def push(data: bytes, attributes: dict[str, str], message_id: str, subscription: str) -> Request:
    """The body a Pub/Sub push subscription POSTs (``/notify/projects/P/topics/T`` is the host's path)."""
    published = now_text()
    body = {
        "message": {
            "data": base64.b64encode(data).decode(),
            "attributes": attributes,
            "messageId": message_id,
            "message_id": message_id,
            "publishTime": published,
            "publish_time": published,
        },
        "subscription": subscription,
    }
    return Request("", json.dumps(body).encode(), {"Content-Type": "application/json"})


def notification_pushes(path: str, count: int, tag: str, shared_run: bool, project: str) -> list[Request]:
    """``count`` distinct notification pushes; all on one run when ``shared_run``, else one run each."""
    items = []
    for index in range(count):
        event_id = f"{tag}-{index}"
        data, attributes = notification(event_id, f"{tag}-run" if shared_run else f"{tag}-run-{index}")
        item = push(data, attributes, event_id, f"projects/{project}/subscriptions/bench")
        items.append(Request(path, item.body, item.headers))
    return items


def storage_event(resource: dict[str, Any], path: str) -> Request:
    """The ``object.v1.finalized`` CloudEvent of one object, in binary mode as Eventarc sends it."""
    from emulators.storage.events import finalized_event

    headers, body = finalized_event(resource)
    return Request(path, body, headers)
