"""The Cloud Run emulator's admin endpoints (``/_emulator/...``): fault injection, the router, revisions.

Kept apart from the API (:mod:`emulators.run.service`), which it reads through ``RunService.lock``,
``find_revision`` and ``revision_entries``:

- ``GET router``, ``GET router/faults``: the service and tag URLs and their traffic; the router faults;
- ``POST router/faults`` ``{"revision", "errorRate", "status", "latencyMs"}``: a revision answers ``status``
  for that share of requests and/or waits ``latencyMs`` first (both 0 clear it); ``DELETE`` clears them all;
- ``POST revisions:fail-next`` ``{"count", "service"?, "message"?}``: the next revisions created fail to
  start;
- ``GET revisions``: every revision with its state, port and process; ``GET revisions/NAME/log?lines=N``;
- ``POST settings`` ``{"startupTimeoutSeconds"}``: how long a revision has to start listening.
"""

from __future__ import annotations

from typing import Any

from google.cloud import run_v2

from emulators.apiserver.errors import invalid
from emulators.apiserver.server import AdminRequest, ApiServer
from emulators.common.localrun import log_tail
from emulators.run.model import ReadinessFault, parse_service_name
from emulators.run.router import RevisionFault
from emulators.run.service import RunService

_REVISION_NAME = r"projects/[^/]+/locations/[^/]+/services/[^/]+/revisions/[^/]+"
_DEFAULT_START_FAILURE = (
    "injected fault: the user-provided container failed to start and listen on the port defined by the "
    "PORT environment variable."
)


class RunAdmin:
    """Registers the admin endpoints of ``service`` on ``server``."""

    def __init__(self, server: ApiServer, service: RunService) -> None:
        self.service = service
        router = service.router
        server.add_admin("GET", r"router", lambda _: router.describe())
        server.add_admin("GET", r"router/faults", lambda _: router.faults())
        server.add_admin("POST", r"router/faults", self.router_fault)
        server.add_admin("DELETE", r"router/faults", self.clear_router_faults)
        server.add_admin("POST", r"revisions:fail-next", self.fail_next)
        server.add_admin("GET", rf"revisions/(?P<name>{_REVISION_NAME})/log", self.revision_log)
        server.add_admin("POST", r"settings", self.settings)
        server.add_admin("GET", r"revisions", self.revisions)

    def router_fault(self, request: AdminRequest) -> Any:
        body = request.body
        try:
            name = str(body["revision"])
            fault = RevisionFault(
                error_rate=float(body.get("errorRate", 0.0)),
                status=int(body.get("status", 500)),
                latency_ms=float(body.get("latencyMs", 0.0)),
            )
        except (KeyError, ValueError, TypeError) as error:
            raise invalid(
                f"bad router fault (needs revision, errorRate, status, latencyMs): {error}"
            ) from error
        if not 0.0 <= fault.error_rate <= 1.0 or not 100 <= fault.status <= 599 or fault.latency_ms < 0:
            raise invalid("errorRate must be in [0, 1], status an HTTP status, latencyMs >= 0")
        with self.service.lock:
            entry, revision = self.service.find_revision(name)
        cleared = fault.error_rate == 0 and fault.latency_ms == 0
        self.service.router.set_fault(entry.owner, revision.short, None if cleared else fault)
        return {"faults": self.service.router.faults()}

    def clear_router_faults(self, _: AdminRequest) -> Any:
        self.service.router.clear_faults()
        return {"faults": []}

    def fail_next(self, request: AdminRequest) -> Any:
        body = request.body
        try:
            count = int(body.get("count", 1))
        except (ValueError, TypeError) as error:
            raise invalid(f"bad count: {error}") from error
        if count < 1:
            raise invalid("count must be at least 1")
        service = str(body.get("service", ""))
        if service:
            parse_service_name(service)
        message = str(body.get("message") or _DEFAULT_START_FAILURE)
        pending = self.service.readiness_faults.add(ReadinessFault(count, message, service))
        return {"pending": pending}

    def revision_log(self, request: AdminRequest) -> Any:
        with self.service.lock:
            _, revision = self.service.find_revision(request.params["name"])
        path = self.service.state_dir / "revisions" / revision.short / "revision.log"
        return {"revision": revision.short, "log": log_tail(path, int(request.query.get("lines", "200")))}

    def revisions(self, _: AdminRequest) -> Any:
        with self.service.lock:
            return [
                {
                    "name": revision.pb.name,
                    "ready": revision.ready,
                    "state": run_v2.Condition.State(revision.state).name,
                    "message": revision.message,
                    "port": revision.port,
                    "pid": revision.process.pid if revision.process else None,
                    "running": bool(revision.process and revision.process.exit_code() is None),
                }
                for revision in self.service.revision_entries()
            ]

    def settings(self, request: AdminRequest) -> Any:
        settings = self.service.settings
        if "startupTimeoutSeconds" in request.body:
            try:
                seconds = float(request.body["startupTimeoutSeconds"])
            except (TypeError, ValueError) as error:
                raise invalid(f"bad startupTimeoutSeconds: {error}") from error
            if seconds <= 0:
                raise invalid("startupTimeoutSeconds must be positive")
            settings.startup_timeout = seconds
        return {"startupTimeoutSeconds": settings.startup_timeout}
