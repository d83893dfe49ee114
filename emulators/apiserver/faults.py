"""Fault injection keyed by RPC method name: fail the next N calls with a status code, add latency."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from emulators.apiserver.errors import ApiError, canonical_code


@dataclass
class Fault:
    method: str  # "CreateBuild", "google.devtools.cloudbuild.v1.CloudBuild.CreateBuild" or "*"
    code: str
    remaining: int
    message: str


@dataclass
class Latency:
    method: str
    seconds: float


def _matches(pattern: str, short: str, full: str) -> bool:
    return pattern in ("*", short, full)


class FaultInjector:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._latencies: list[Latency] = []

    def fail_next(self, method: str, code: str | int, count: int = 1, message: str | None = None) -> Fault:
        if count < 1:
            raise ValueError("count must be at least 1")
        canonical = canonical_code(code)
        fault = Fault(
            method=method,
            code=canonical,
            remaining=count,
            message=message or f"injected fault: {canonical} on {method}",
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def add_latency(self, method: str, seconds: float) -> Latency:
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        latency = Latency(method=method, seconds=seconds)
        with self._lock:
            self._latencies = [item for item in self._latencies if item.method != method]
            if seconds > 0:
                self._latencies.append(latency)
        return latency

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._latencies.clear()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "faults": [asdict(fault) for fault in self._faults],
                "latencies": [asdict(latency) for latency in self._latencies],
            }

    def before_call(self, short: str, full: str) -> None:
        """Sleep for any configured latency, then raise the next pending fault for this method, if any."""
        with self._lock:
            delay = sum(item.seconds for item in self._latencies if _matches(item.method, short, full))
            fault: Fault | None = None
            for candidate in self._faults:
                if _matches(candidate.method, short, full):
                    fault = candidate
                    candidate.remaining -= 1
                    if candidate.remaining <= 0:
                        self._faults.remove(candidate)
                    break
        if delay:
            time.sleep(delay)
        if fault is not None:
            raise ApiError(fault.code, fault.message)
