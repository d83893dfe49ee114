"""Publish build status changes to the ``cloud-builds`` topic, as Cloud Build does.

Message data: the Build resource as JSON (camelCase, enum names); attributes ``buildId`` and ``status``.
One worker thread publishes in order and waits for each publish, so subscribers see the statuses of a
build in the order they happened. Without ``PUBSUB_EMULATOR_HOST`` nothing is published (the emulator
must never reach the real Pub/Sub), and the health endpoint says so.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import threading
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("emulators.cloudbuild.notify")

TOPIC = "cloud-builds"


@dataclass
class _Message:
    project: str
    data: bytes
    attributes: dict[str, str]


class BuildNotifier:
    def __init__(self, topic: str = TOPIC) -> None:
        self.topic = topic
        self.enabled = bool(os.environ.get("PUBSUB_EMULATOR_HOST"))
        self.published = 0
        self.failed = 0
        self.last_error = ""
        self._queue: queue.Queue[_Message | None] = queue.Queue()
        self._publisher: Any = None
        self._topics: set[str] = set()
        self._idle = threading.Condition()
        self._pending = 0
        if self.enabled:
            threading.Thread(target=self._work, name="cloud-builds-publisher", daemon=True).start()
        else:
            log.warning("PUBSUB_EMULATOR_HOST is not set: build status changes are not published")

    def publish(self, project: str, build: dict[str, Any]) -> None:
        if not self.enabled:
            return
        data = json.dumps(build).encode()
        attributes = {"buildId": str(build.get("id", "")), "status": str(build.get("status", ""))}
        with self._idle:
            self._pending += 1
        self._queue.put(_Message(project, data, attributes))

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued message is published (or failed); True when nothing is left."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self) -> None:
        if self.enabled:
            self.flush(5.0)
            self._queue.put(None)

    def _client(self) -> Any:
        if self._publisher is None:
            from google.cloud.pubsub_v1 import PublisherClient

            self._publisher = PublisherClient()
        return self._publisher

    def _ensure_topic(self, project: str) -> str:
        path = f"projects/{project}/topics/{self.topic}"
        if path not in self._topics:
            from google.api_core import exceptions

            with contextlib.suppress(exceptions.AlreadyExists):
                self._client().create_topic(name=path)
            self._topics.add(path)
        return path

    def _work(self) -> None:
        while True:
            message = self._queue.get()
            if message is None:
                return
            try:
                topic = self._ensure_topic(message.project)
                self._client().publish(topic, message.data, **message.attributes).result(timeout=30)
                self.published += 1
            except Exception as error:  # a lost notification must be visible, not fatal
                self.failed += 1
                self.last_error = repr(error)
                log.error("publishing build %s to %s failed: %r", message.attributes, self.topic, error)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def health(self) -> dict[str, Any]:
        return {
            "pubsub": {
                "enabled": self.enabled,
                "topic": self.topic,
                "published": self.published,
                "failed": self.failed,
                "lastError": self.last_error,
            }
        }
