"""A small client for the ``/_emulator/`` admin endpoints, for tests, the stack and the demo.

admin = EmulatorAdmin("127.0.0.1:8091")          # or "http://127.0.0.1:8091"
admin.fail_next("CreateBuild", "UNAVAILABLE")      # the next CreateBuild answers 503 / UNAVAILABLE
admin.add_latency("GetCustomJob", 0.5)             # every GetCustomJob waits 0.5 s first
admin.force_failure("builds", build_id, "boom")    # a running build ends in FAILURE now
admin.fail_next_resource("customJobs", message="OOM")  # the next CustomJob created ends JOB_STATE_FAILED
admin.set_durations(queued_seconds=0.1)            # lifecycle timings
admin.reset()                                      # forget all state, faults and latencies
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class AdminError(RuntimeError):
    """The admin endpoint refused the request; the message carries its answer."""


class EmulatorAdmin:
    def __init__(self, host: str, timeout: float = 30.0) -> None:
        self.base = host.rstrip("/") if host.startswith(("http://", "https://")) else f"http://{host}"
        self.timeout = timeout

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.base}/_emulator/{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data is not None else {},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read().decode()
                if "json" in (response.headers.get("Content-Type") or ""):
                    return json.loads(raw) if raw else None
                return raw
        except urllib.error.HTTPError as error:
            raise AdminError(f"{method} /_emulator/{path}: {error.code} {error.read().decode()}") from error

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "health")
        return result

    def fail_next(
        self, method: str, code: str | int = "UNAVAILABLE", count: int = 1, message: str | None = None
    ) -> Any:
        """Fail the next ``count`` calls of RPC ``method`` (``"CreateBuild"``, a full name, or ``"*"``)."""
        body: dict[str, Any] = {"method": method, "code": code, "count": count}
        if message:
            body["message"] = message
        return self._call("POST", "faults", body)

    def add_latency(self, method: str, seconds: float) -> Any:
        """Delay every call of ``method`` (or ``"*"``) by ``seconds``; 0 removes the latency."""
        return self._call("POST", "latency", {"method": method, "seconds": seconds})

    def clear_faults(self) -> Any:
        return self._call("DELETE", "faults")

    def faults(self) -> Any:
        return self._call("GET", "faults")

    def force_failure(
        self, collection: str, resource_id: str, message: str | None = None, code: str | None = None
    ) -> Any:
        """End a running build (``builds``) or job (``customJobs``, ``pipelineJobs``) in failure now."""
        body: dict[str, Any] = {}
        if message:
            body["message"] = message
        if code:
            body["code"] = code
        return self._call("POST", f"{collection}/{resource_id}:fail", body)

    def fail_next_resource(
        self, collection: str, count: int = 1, message: str | None = None, code: str | None = None
    ) -> Any:
        """Make the next ``count`` builds/jobs created in ``collection`` end in failure."""
        body: dict[str, Any] = {"count": count}
        if message:
            body["message"] = message
        if code:
            body["code"] = code
        return self._call("POST", f"{collection}:fail-next", body)

    def set_durations(self, **seconds: float) -> Any:
        """Cloud Build: ``queued_seconds``, ``step_seconds``; Vertex: ``queued_seconds``, ``pending_seconds``,
        ``running_seconds``."""
        return self._call("POST", "durations", dict(seconds))

    def log(self, collection: str, resource_id: str) -> str:
        text: str = self._call("GET", f"{collection}/{resource_id}/log")
        return text

    def reset(self) -> Any:
        return self._call("POST", "reset")
