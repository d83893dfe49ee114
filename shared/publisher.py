"""Publishing internal events: the ``Publisher`` seam, its Pub/Sub implementation and an in-memory fake."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any, Protocol

from shared import deadline as deadlines
from shared.events import Envelope
from shared.retry import with_retry

PUBLISH_TIMEOUT_SECONDS = 30.0


class Publisher(Protocol):
    def publish(self, topic_id: str, envelope: Envelope, ordering_key: str = "") -> str:
        """Publish ``envelope`` on ``topic_id``; return the message id."""
        ...


def encode(envelope: Envelope) -> tuple[bytes, dict[str, str]]:
    return json.dumps(envelope.to_json(), sort_keys=True).encode("utf-8"), envelope.attributes()


class PubSubPublisher:
    """Publishes through the real ``PublisherClient`` (the emulator when ``PUBSUB_EMULATOR_HOST`` is set)."""

    def __init__(self, project: str, client: Any | None = None) -> None:
        self._project = project
        self._client = client

    def _publisher(self) -> Any:
        if self._client is None:
            from shared import clients

            self._client = clients.publisher()
        return self._client

    def publish(self, topic_id: str, envelope: Envelope, ordering_key: str = "") -> str:
        data, attributes = encode(envelope)
        client = self._publisher()
        topic_path = client.topic_path(self._project, topic_id)

        def attempt() -> str:
            kwargs: dict[str, Any] = dict(attributes)
            if ordering_key:
                kwargs["ordering_key"] = ordering_key
            future = client.publish(topic_path, data, **kwargs)
            try:
                return str(future.result(timeout=deadlines.current().timeout(PUBLISH_TIMEOUT_SECONDS)))
            except Exception:
                if ordering_key:
                    # A failed publish pauses its ordering key in the client until resumed.
                    client.resume_publish(topic_path, ordering_key)
                raise

        return with_retry(attempt)


@dataclass(frozen=True)
class PublishedMessage:
    topic_id: str
    message_id: str
    data: bytes
    attributes: dict[str, str]
    ordering_key: str

    def json(self) -> Any:
        return json.loads(self.data)


class InMemoryPublisher:
    """Records what would have been published (tests)."""

    def __init__(self) -> None:
        self.messages: list[PublishedMessage] = []
        self._lock = threading.Lock()

    def publish(self, topic_id: str, envelope: Envelope, ordering_key: str = "") -> str:
        data, attributes = encode(envelope)
        with self._lock:
            message_id = str(len(self.messages) + 1)
            self.messages.append(PublishedMessage(topic_id, message_id, data, attributes, ordering_key))
        return message_id
