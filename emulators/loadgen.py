"""A bounded HTTP load generator for tests and the demo: loopback targets only, and it always stops by itself.

    python -m emulators.loadgen http://127.0.0.1:PORT/predict --requests 2000 --concurrency 4 \\
        --json '{"instances": [[5.1, 3.5, 1.4, 0.2]]}'

It sends exactly ``--requests`` requests (at most 100,000) over ``--concurrency`` keep-alive connections
(at most 32), giving up after ``--max-seconds`` (at most 600), and prints a JSON summary: requests per status
code, transport errors, latency percentiles and, when the answers are JSON with a ``revision`` field (the
sample server echoes Cloud Run's ``K_REVISION``), requests per revision.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

MAX_REQUESTS = 100_000
MAX_CONCURRENCY = 32
MAX_SECONDS = 600.0


class LoadError(ValueError):
    """The load cannot be sent as asked (not loopback, out of bounds)."""


@dataclass
class LoadResult:
    requested: int
    sent: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    by_revision: dict[str, int] = field(default_factory=dict)
    errors: int = 0  # transport errors (no HTTP answer)
    seconds: float = 0.0
    stopped_early: bool = False  # the time limit ended the run
    latencies_ms: list[float] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, max(0, round(q / 100.0 * len(ordered)) - 1))]

    def share(self, predicate: Any) -> float:
        total = sum(self.by_status.values())
        return (
            sum(count for code, count in self.by_status.items() if predicate(code)) / total if total else 0.0
        )

    def summary(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "sent": self.sent,
            "byStatus": {str(code): count for code, count in sorted(self.by_status.items())},
            "byRevision": dict(sorted(self.by_revision.items())),
            "transportErrors": self.errors,
            "seconds": round(self.seconds, 3),
            "stoppedEarly": self.stopped_early,
            "latencyMs": {f"p{q}": round(self.percentile(q), 2) for q in (50, 95, 99)},
        }


def ensure_loopback(url: str) -> None:
    """Refuse any target that does not resolve to a loopback address only."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LoadError(f"not an http(s) URL: {url!r}")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 80, proto=socket.IPPROTO_TCP)
    except socket.gaierror as error:
        raise LoadError(f"cannot resolve {parts.hostname!r}: {error}") from error
    addresses = {str(info[4][0]) for info in infos}
    if not addresses or not all(ipaddress.ip_address(address).is_loopback for address in addresses):
        raise LoadError(
            f"refusing to send load to {parts.hostname} ({', '.join(sorted(addresses))}): loopback only"
        )


def run_load(
    url: str,
    requests_total: int,
    *,
    concurrency: int = 4,
    max_seconds: float = 60.0,
    method: str = "POST",
    json_body: Any = None,
    timeout: float = 10.0,
) -> LoadResult:
    """Send ``requests_total`` requests to ``url`` (loopback only) and count the answers."""
    ensure_loopback(url)
    if not 1 <= requests_total <= MAX_REQUESTS:
        raise LoadError(f"requests must be between 1 and {MAX_REQUESTS}")
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise LoadError(f"concurrency must be between 1 and {MAX_CONCURRENCY}")
    if not 0 < max_seconds <= MAX_SECONDS:
        raise LoadError(f"max_seconds must be in (0, {MAX_SECONDS}]")
    result = LoadResult(requested=requests_total)
    lock = threading.Lock()
    started = time.monotonic()
    deadline = started + max_seconds
    remaining = [requests_total]

    def claim() -> bool:
        with lock:
            if remaining[0] <= 0:
                return False
            if time.monotonic() >= deadline:
                result.stopped_early = True
                return False
            remaining[0] -= 1
            return True

    def worker() -> None:
        with requests.Session() as session:
            while claim():
                begin = time.monotonic()
                status, revision = 0, ""
                try:
                    response = session.request(
                        method, url, json=json_body, timeout=min(timeout, max(0.1, deadline - begin))
                    )
                    status = response.status_code
                    if response.headers.get("Content-Type", "").startswith("application/json"):
                        try:
                            payload = response.json()
                        except ValueError:
                            payload = None
                        if isinstance(payload, dict):
                            revision = str(payload.get("revision") or "")
                except requests.RequestException:
                    status = 0
                elapsed = (time.monotonic() - begin) * 1000.0
                with lock:
                    result.sent += 1
                    if status:
                        result.by_status[status] = result.by_status.get(status, 0) + 1
                        result.latencies_ms.append(elapsed)
                    else:
                        result.errors += 1
                    if revision:
                        result.by_revision[revision] = result.by_revision.get(revision, 0) + 1

    threads = [threading.Thread(target=worker, name=f"loadgen-{n}", daemon=True) for n in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()) + timeout + 1.0)
    result.seconds = time.monotonic() - started
    return result


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description="Bounded loopback-only HTTP load generator")
    cli.add_argument("url")
    cli.add_argument("--requests", type=int, default=100)
    cli.add_argument("--concurrency", type=int, default=4)
    cli.add_argument("--max-seconds", type=float, default=60.0)
    cli.add_argument("--method", default="POST")
    cli.add_argument("--json", default=None, help="JSON request body")
    args = cli.parse_args(argv)
    try:
        body = json.loads(args.json) if args.json is not None else None
        result = run_load(
            args.url,
            args.requests,
            concurrency=args.concurrency,
            max_seconds=args.max_seconds,
            method=args.method.upper(),
            json_body=body,
        )
    except (LoadError, json.JSONDecodeError) as error:
        print(f"loadgen: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result.summary(), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
