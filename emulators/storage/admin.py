"""The ``/_emulator/`` admin endpoints of the storage emulator, and their Python client.

``GET health`` -> ``{"status": "ok", "buckets": N, "objects": N, "deliveries": {status: count}}``;
``GET deliveries`` (optional ``?status=``, ``?bucket=``) -> every delivery with its target, attempts and
status (``pending``, ``retrying``, ``delivered``, ``dead_lettered``, ``unrouted``); ``GET dead-letters``;
``GET routes``; ``PUT routes`` (replace; body as in the routes file); ``POST reset`` (drop buckets, objects,
upload sessions, deliveries, dead letters and faults; routes and ``dead-letters.jsonl`` stay).

Fault injection is the API emulators' (:mod:`emulators.apiserver.faults`), keyed by the JSON API's method
ids — ``storage.objects.insert`` (every upload request), ``storage.objects.get`` (metadata and media),
``storage.objects.list``, ``storage.buckets.get``... (short form ``objects.get``, or ``*``): ``GET|POST|DELETE
faults`` (``{"method", "code", "count", "message"}``) and ``POST latency`` (``{"method", "seconds"}``), the
bodies :class:`~emulators.apiserver.admin.EmulatorAdmin` sends.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast
from urllib.parse import urlencode

from werkzeug.wrappers import Request, Response

from emulators.apiserver.admin import AdminError, EmulatorAdmin
from emulators.apiserver.faults import FaultInjector
from emulators.storage.delivery import DELIVERY_STATUSES, DeadLetterView, DeliveryView, EventDispatcher
from emulators.storage.errors import bad_request, json_response, method_not_allowed, not_found
from emulators.storage.events import parse_routes
from emulators.storage.store import StorageState
from emulators.storage.uploads import UploadSessions

LOG = logging.getLogger(__name__)


class AdminEndpoints:
    """Serves ``/_emulator/OP`` over the emulator's state, deliveries and fault injector."""

    def __init__(
        self,
        state: StorageState,
        sessions: UploadSessions,
        events: EventDispatcher,
        faults: FaultInjector,
    ) -> None:
        self.state = state
        self.sessions = sessions
        self.events = events
        self.faults = faults
        self._endpoints: dict[tuple[str, str], Callable[[Request], Response]] = {
            ("health", "GET"): self._health,
            ("deliveries", "GET"): self._deliveries,
            ("dead-letters", "GET"): lambda _request: json_response(self.events.dead_letters()),
            ("routes", "GET"): lambda _request: json_response(self.events.routes()),
            ("routes", "PUT"): self._set_routes,
            ("reset", "POST"): self._reset,
            ("faults", "GET"): lambda _request: json_response(self.faults.snapshot()),
            ("faults", "POST"): self._add_fault,
            ("faults", "DELETE"): self._clear_faults,
            ("latency", "POST"): self._add_latency,
        }

    def handle(self, request: Request, op: str) -> Response:
        endpoint = self._endpoints.get((op, request.method))
        if endpoint is not None:
            return endpoint(request)
        if any(known == op for known, _ in self._endpoints):
            raise method_not_allowed(request.method, request.path)
        raise not_found(f"No admin endpoint /_emulator/{op}")

    def _health(self, _request: Request) -> Response:
        buckets, objects = self.state.counts()
        return json_response(
            {
                "status": "ok",
                "service": "storage",
                "buckets": buckets,
                "objects": objects,
                "deliveries": self.events.counts(),
            }
        )

    def _deliveries(self, request: Request) -> Response:
        status = request.args.get("status") or None
        if status is not None and status not in DELIVERY_STATUSES:
            raise bad_request(f"Unknown delivery status {status!r}; one of {', '.join(DELIVERY_STATUSES)}")
        return json_response(self.events.deliveries(status, request.args.get("bucket") or None))

    def _set_routes(self, request: Request) -> Response:
        try:
            routes = parse_routes(json.loads(request.get_data() or b"null"), "PUT /_emulator/routes")
        except ValueError as error:
            raise bad_request(str(error)) from None
        self.events.set_routes(routes)
        return json_response(self.events.routes())

    def _reset(self, _request: Request) -> Response:
        self.sessions.reset()
        self.state.reset()
        self.events.reset()
        self.faults.clear()
        LOG.info("reset: buckets, objects, upload sessions, deliveries and faults dropped")
        return json_response({"status": "reset"})

    @staticmethod
    def _body(request: Request) -> dict[str, Any]:
        try:
            body = json.loads(request.get_data() or b"{}")
        except ValueError as error:
            raise bad_request(f"admin body is not JSON: {error}") from None
        if not isinstance(body, dict):
            raise bad_request("admin body must be a JSON object")
        return body

    def _add_fault(self, request: Request) -> Response:
        body = self._body(request)
        try:
            fault = self.faults.fail_next(
                str(body["method"]),
                body.get("code", "UNAVAILABLE"),
                int(body.get("count", 1)),
                body.get("message"),
            )
        except (KeyError, ValueError) as error:
            raise bad_request(f"bad fault: {error}") from None
        return json_response({"method": fault.method, "code": fault.code, "remaining": fault.remaining})

    def _clear_faults(self, _request: Request) -> Response:
        self.faults.clear()
        return json_response(self.faults.snapshot())

    def _add_latency(self, request: Request) -> Response:
        body = self._body(request)
        try:
            latency = self.faults.add_latency(str(body.get("method", "*")), float(body["seconds"]))
        except (KeyError, ValueError) as error:
            raise bad_request(f"bad latency: {error}") from None
        return json_response({"method": latency.method, "seconds": latency.seconds})


class StorageEmulatorAdmin(EmulatorAdmin):
    """The admin client of the API emulators (health, faults, latency, reset) plus the storage emulator's
    own endpoints: deliveries, dead letters and routes."""

    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        super().__init__(base_url, timeout)

    @property
    def base_url(self) -> str:
        return self.base

    def is_healthy(self) -> bool:
        try:
            return self.health().get("status") == "ok"
        except (AdminError, OSError, ValueError):
            return False

    def deliveries(self, status: str | None = None, bucket: str | None = None) -> list[DeliveryView]:
        params = {key: value for key, value in (("status", status), ("bucket", bucket)) if value}
        query = f"?{urlencode(params)}" if params else ""
        return cast(list[DeliveryView], self._call("GET", f"deliveries{query}"))

    def dead_letters(self) -> list[DeadLetterView]:
        return cast(list[DeadLetterView], self._call("GET", "dead-letters"))

    def routes(self) -> dict[str, list[str]]:
        return cast(dict[str, list[str]], self._call("GET", "routes"))

    def set_routes(self, routes: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
        """Replace every route; returns the routes now in force."""
        body = {bucket: list(targets) for bucket, targets in routes.items()}
        return cast(dict[str, list[str]], self._call("PUT", "routes", body))

    def wait_for_deliveries(
        self,
        predicate: Callable[[list[DeliveryView]], bool],
        timeout: float = 10.0,
        bucket: str | None = None,
        interval: float = 0.05,
    ) -> list[DeliveryView]:
        """Poll ``deliveries`` (of ``bucket``, if given) until ``predicate`` holds, else ``TimeoutError``."""
        deadline = time.monotonic() + timeout
        while True:
            current = self.deliveries(bucket=bucket)
            if predicate(current):
                return current
            if time.monotonic() >= deadline:
                raise TimeoutError(f"deliveries did not reach the expected state in {timeout}s: {current}")
            time.sleep(interval)
