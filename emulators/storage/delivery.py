"""Delivery of finalized events, as an Eventarc trigger would: worker threads, retries, dead letters.

Delivery never delays the upload response. A non-2xx answer or a connection error is retried with
exponential backoff (``min_backoff`` doubling up to ``max_backoff``, plus up to 25 % jitter) for at most
``max_attempts`` attempts; then the event is dead-lettered: kept in memory and, with a dead-letter file,
appended to it with its headers, body, attempts and last status/error. Events for a bucket without routes
are recorded as ``unrouted``. On shutdown, deliveries not done within the grace period are dead-lettered
too. Nothing is dropped silently. As with Eventarc there is no ordering guarantee between events (several
workers, retries), so receivers should key on ``ce-id`` or ``bucket/name#generation``.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import random
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypedDict

import requests

from emulators.storage.events import FINALIZED, finalized_event
from emulators.storage.model import wall_time

LOG = logging.getLogger(__name__)

DELIVERY_STATUSES: Final = ("pending", "retrying", "delivered", "dead_lettered", "unrouted")


class DeliveryView(TypedDict):
    """One event delivery, as ``GET /_emulator/deliveries`` reports it."""

    delivery_id: str
    event_id: str
    event_type: str
    bucket: str
    object: str
    generation: str
    target: str | None
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: str
    updated_at: str
    next_attempt_at: str | None


class DeadLetterView(DeliveryView):
    """A dead-lettered delivery, as ``GET /_emulator/dead-letters`` and ``dead-letters.jsonl`` hold it."""

    dead_lettered_at: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Delivery:
    """One event for one target (or one unrouted event). Mutated only under the dispatcher's lock."""

    delivery_id: str
    event_id: str
    bucket: str
    object_name: str
    generation: str
    target: str | None
    headers: dict[str, str]
    body: bytes
    epoch: int
    status: str = "pending"
    attempts: int = 0
    last_status_code: int | None = None
    last_error: str | None = None
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    next_attempt_at: float | None = None
    dead_lettered_at: float | None = None
    in_flight: bool = False

    def view(self) -> DeliveryView:
        return {
            "delivery_id": self.delivery_id,
            "event_id": self.event_id,
            "event_type": self.headers.get("ce-type", FINALIZED),
            "bucket": self.bucket,
            "object": self.object_name,
            "generation": self.generation,
            "target": self.target,
            "status": self.status,
            "attempts": self.attempts,
            "last_status_code": self.last_status_code,
            "last_error": self.last_error,
            "created_at": wall_time(self.created_at) or "",
            "updated_at": wall_time(self.updated_at) or "",
            "next_attempt_at": wall_time(self.next_attempt_at),
        }

    def dead_letter_view(self) -> DeadLetterView:
        base = self.view()
        return {
            **base,
            "dead_lettered_at": wall_time(self.dead_lettered_at) or "",
            "headers": dict(self.headers),
            "body": json.loads(self.body),
        }


@dataclass(frozen=True)
class DeliveryPolicy:
    min_backoff: float = 0.5
    max_backoff: float = 10.0
    max_attempts: int = 5
    timeout: float = 10.0
    workers: int = 4


class EventDispatcher:
    """Delivers events to their routes on worker threads, retrying with backoff, dead-lettering at the end."""

    def __init__(
        self, routes: Mapping[str, Sequence[str]], policy: DeliveryPolicy, dead_letter_file: Path | None
    ) -> None:
        self._policy = policy
        self._dead_letter_file = dead_letter_file
        self._routes: dict[str, list[str]] = {b: list(t) for b, t in routes.items()}
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, Delivery]] = []
        self._deliveries: list[Delivery] = []
        self._dead_letters: list[Delivery] = []
        self._sequence = itertools.count(1)  # heap tie-breaker
        self._ids = itertools.count(1)
        self._epoch = 0
        self._in_flight = 0
        self._closing = False
        self._stopped = False
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for index in range(self._policy.workers):
            thread = threading.Thread(target=self._work, name=f"storage-events-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    # Routes.

    def routes(self) -> dict[str, list[str]]:
        with self._cond:
            return {bucket: list(targets) for bucket, targets in self._routes.items()}

    def set_routes(self, routes: Mapping[str, Sequence[str]]) -> None:
        with self._cond:
            self._routes = {bucket: list(targets) for bucket, targets in routes.items()}
        LOG.info("routes replaced: %s", json.dumps(self._routes))

    # Publishing and views.

    def publish(self, resource: Mapping[str, Any]) -> list[Delivery]:
        headers, body = finalized_event(resource)
        bucket, name, generation = str(resource["bucket"]), str(resource["name"]), str(resource["generation"])
        with self._cond:
            targets: list[str | None] = list(self._routes.get(bucket, [])) or [None]
            created: list[Delivery] = []
            for target in targets:
                delivery = Delivery(
                    delivery_id=str(next(self._ids)),
                    event_id=headers["ce-id"],
                    bucket=bucket,
                    object_name=name,
                    generation=generation,
                    target=target,
                    headers=headers,
                    body=body,
                    epoch=self._epoch,
                )
                self._deliveries.append(delivery)
                created.append(delivery)
                if target is None:
                    delivery.status = "unrouted"
                    LOG.info(
                        "finalized gs://%s/%s#%s: no route for bucket %s", bucket, name, generation, bucket
                    )
                elif self._closing:
                    delivery.last_error = "the emulator was shutting down when the event was emitted"
                    self._dead_letter_locked(delivery)
                else:
                    delivery.next_attempt_at = time.time()
                    heapq.heappush(self._heap, (time.monotonic(), next(self._sequence), delivery))
            self._cond.notify_all()
        return created

    def deliveries(self, status: str | None = None, bucket: str | None = None) -> list[DeliveryView]:
        with self._cond:
            return [
                d.view()
                for d in self._deliveries
                if (status is None or d.status == status) and (bucket is None or d.bucket == bucket)
            ]

    def dead_letters(self) -> list[DeadLetterView]:
        with self._cond:
            return [d.dead_letter_view() for d in self._dead_letters]

    def counts(self) -> dict[str, int]:
        with self._cond:
            counts = dict.fromkeys(DELIVERY_STATUSES, 0)
            for delivery in self._deliveries:
                counts[delivery.status] += 1
            return counts

    def reset(self) -> None:
        with self._cond:
            self._epoch += 1
            self._heap.clear()
            self._deliveries.clear()
            self._dead_letters.clear()
            self._cond.notify_all()

    # Delivery.

    def _work(self) -> None:
        while True:
            with self._cond:
                delivery = self._next_due_locked()
                if delivery is None:
                    return
            ok, status_code, error = self._post(delivery)
            with self._cond:
                self._in_flight -= 1
                delivery.in_flight = False
                if delivery.epoch == self._epoch and delivery.status != "dead_lettered":
                    self._record_attempt_locked(delivery, ok, status_code, error)
                self._cond.notify_all()

    def _next_due_locked(self) -> Delivery | None:
        """Wait for the next due delivery and mark it in flight; ``None`` once the dispatcher stops."""
        while not self._stopped:
            if not self._heap:
                self._cond.wait()
                continue
            due, _, delivery = self._heap[0]
            wait = due - time.monotonic()
            if wait > 0:
                self._cond.wait(wait)
                continue
            heapq.heappop(self._heap)
            if delivery.epoch != self._epoch:
                continue
            delivery.in_flight = True
            self._in_flight += 1
            return delivery
        return None

    def _post(self, delivery: Delivery) -> tuple[bool, int | None, str | None]:
        assert delivery.target is not None
        try:
            with requests.post(
                delivery.target,
                data=delivery.body,
                headers=delivery.headers,
                timeout=self._policy.timeout,
                allow_redirects=False,
            ) as response:
                if 200 <= response.status_code < 300:
                    return True, response.status_code, None
                snippet = response.text[:300].strip()
                return False, response.status_code, f"HTTP {response.status_code}: {snippet}".rstrip(": ")
        except requests.RequestException as error:
            return False, None, f"{type(error).__name__}: {error}"
        except Exception as error:  # a worker must survive anything one delivery throws
            LOG.exception("unexpected error delivering to %s", delivery.target)
            return False, None, f"{type(error).__name__}: {error}"

    def _record_attempt_locked(
        self, delivery: Delivery, ok: bool, status_code: int | None, error: str | None
    ) -> None:
        delivery.attempts += 1
        delivery.last_status_code = status_code
        delivery.last_error = error
        delivery.updated_at = time.time()
        delivery.next_attempt_at = None
        what = f"gs://{delivery.bucket}/{delivery.object_name}#{delivery.generation} -> {delivery.target}"
        if ok:
            delivery.status = "delivered"
            LOG.info("delivered %s (attempt %d, HTTP %s)", what, delivery.attempts, status_code)
        elif delivery.attempts >= self._policy.max_attempts:
            self._dead_letter_locked(delivery)
        else:
            delay = self.backoff(delivery.attempts)
            delivery.status = "retrying"
            delivery.next_attempt_at = time.time() + delay
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._sequence), delivery))
            LOG.info("attempt %d of %s failed (%s); retrying in %.2fs", delivery.attempts, what, error, delay)

    def backoff(self, attempts: int) -> float:
        """Delay after ``attempts`` failed attempts: min * 2^(attempts-1), plus up to 25 % jitter, capped."""
        policy = self._policy
        base = min(policy.max_backoff, policy.min_backoff * float(2 ** (attempts - 1)))
        return min(policy.max_backoff, base + random.uniform(0, base * 0.25))

    def _dead_letter_locked(self, delivery: Delivery) -> None:
        delivery.status = "dead_lettered"
        delivery.dead_lettered_at = delivery.updated_at = time.time()
        delivery.next_attempt_at = None
        self._dead_letters.append(delivery)
        LOG.warning(
            "dead-lettered event %s of gs://%s/%s#%s for %s after %d attempt(s): %s",
            delivery.event_id,
            delivery.bucket,
            delivery.object_name,
            delivery.generation,
            delivery.target,
            delivery.attempts,
            delivery.last_error,
        )
        if self._dead_letter_file is not None:
            try:
                with open(self._dead_letter_file, "a", encoding="utf-8") as out:
                    out.write(json.dumps(delivery.dead_letter_view()) + "\n")
            except OSError as error:
                LOG.error("cannot append to %s: %s", self._dead_letter_file, error)

    def close(self, grace: float) -> None:
        """Stop: attempt what falls due within ``grace`` seconds, dead-letter everything else."""
        deadline = time.monotonic() + grace
        with self._cond:
            self._closing = True
            while True:
                remaining = deadline - time.monotonic()
                due_soon = any(due <= deadline and d.epoch == self._epoch for due, _, d in self._heap)
                if remaining <= 0 or (not due_soon and self._in_flight == 0):
                    break
                self._cond.wait(min(remaining, 0.05))
            leftovers = [d for _, _, d in self._heap if d.epoch == self._epoch]
            leftovers += [d for d in self._deliveries if d.in_flight]
            self._heap.clear()
            for delivery in leftovers:
                note = "the emulator shut down before the event was delivered"
                delivery.last_error = f"{delivery.last_error}; {note}" if delivery.last_error else note
                self._dead_letter_locked(delivery)
            self._stopped = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=0.5)
        if leftovers:
            LOG.warning("%d undelivered event(s) dead-lettered at shutdown", len(leftovers))
