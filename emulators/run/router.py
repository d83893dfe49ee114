"""The Cloud Run router: one HTTP listener per URL (the service URL and each tag URL), a weighted choice of
revision per request, a reverse proxy to the chosen revision's local process, and a record of every request.

Choice is nginx's *smooth weighted round-robin*: deterministic, interleaved, and exact over every whole cycle
(a 90/10 split sends exactly 10 of every 100 requests to the 10% side, spread out) — so a split can be
asserted tightly. A per-revision fault (error rate, status, added latency) can be injected at the
router, independent of what the revision's process does.

Bodies are buffered (no streaming, no WebSockets, no HTTP/2); hop-by-hop headers are dropped; the upstream
timeout is the revision template's request timeout (504 when it expires); an unreachable revision gives 503.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger("emulators.run.router")

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "host",
}


class SmoothWeighted:
    """nginx's smooth weighted round-robin over ``(item, weight)``; weights ≤ 0 are never chosen."""

    def __init__(self, weights: list[tuple[str, int]]) -> None:
        self._items = [(item, weight) for item, weight in weights if weight > 0]
        self._current = [0] * len(self._items)
        self._total = sum(weight for _, weight in self._items)

    def next(self) -> str | None:
        if not self._items:
            return None
        best = 0
        for index, (_, weight) in enumerate(self._items):
            self._current[index] += weight
            if self._current[index] > self._current[best]:
                best = index
        self._current[best] -= self._total
        return self._items[best][0]


@dataclass(frozen=True)
class Backend:
    revision: str  # short revision name
    port: int
    timeout: float  # request timeout (seconds)


@dataclass(frozen=True)
class RouteOwner:
    project: str
    location: str
    service: str  # short service name


@dataclass
class RevisionFault:
    error_rate: float = 0.0  # share of requests answered with ``status`` by the router itself
    status: int = 500
    latency_ms: float = 0.0
    _credit: float = 0.0

    def take_error(self) -> bool:
        """Deterministic: an error whenever the accumulated rate crosses 1 (exactly rate·N of N requests)."""
        self._credit += self.error_rate
        if self._credit >= 1.0 - 1e-9:
            self._credit -= 1.0
            return True
        return False


@dataclass(frozen=True)
class RequestRecord:
    owner: RouteOwner
    revision: str
    status: int
    latency_ms: float
    at: float  # epoch seconds when the request arrived


Recorder = Callable[[RequestRecord], None]


class _Route:
    """The targets of one URL, swappable atomically."""

    def __init__(self, owner: RouteOwner) -> None:
        self.owner = owner
        self.lock = threading.Lock()
        self.backends: dict[str, Backend] = {}
        self.chooser = SmoothWeighted([])
        self.signature: tuple[tuple[Backend, int], ...] = ()
        self.served: dict[str, int] = {}

    def update(self, targets: list[tuple[Backend, int]]) -> None:
        signature = tuple(targets)
        with self.lock:
            if signature == self.signature:
                return
            self.signature = signature
            self.backends = {backend.revision: backend for backend, _ in targets}
            self.chooser = SmoothWeighted([(backend.revision, weight) for backend, weight in targets])

    def choose(self) -> Backend | None:
        with self.lock:
            name = self.chooser.next()
            if name is None:
                return None
            self.served[name] = self.served.get(name, 0) + 1
            return self.backends[name]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], router: Router, route: _Route) -> None:
        self.router = router
        self.route = route
        self.closed = False
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120  # idle keep-alive connections end
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and the client's
    # delayed ACK add ~40 ms to every keep-alive response.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._proxy()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _reply(self, status: int, body: bytes, headers: list[tuple[str, str]] | None = None) -> None:
        self.send_response(status)
        for name, value in headers or [("Content-Type", "text/plain; charset=utf-8")]:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _proxy(self) -> None:
        arrived = time.time()
        started = time.monotonic()
        body = self._read_body()
        if self.server.closed:
            self.close_connection = True
            self._reply(503, b"this URL no longer routes to any revision\n")
            return
        route = self.server.route
        backend = route.choose()
        if backend is None:
            self._reply(503, b"Service Unavailable: no revision is ready to serve this URL\n")
            return
        fault = self.server.router.fault_for(route.owner, backend.revision)
        status, payload, headers = 0, b"", []
        if fault is not None and fault.latency_ms > 0:
            time.sleep(fault.latency_ms / 1000.0)
        if fault is not None and fault.take_error():
            status, payload = fault.status, b"injected fault: the router answered for this revision\n"
            headers = [("Content-Type", "text/plain; charset=utf-8")]
        else:
            status, payload, headers = self._forward(backend, body)
        self._reply(status, payload, headers)
        latency_ms = (time.monotonic() - started) * 1000.0
        self.server.router.record(RequestRecord(route.owner, backend.revision, status, latency_ms, arrived))

    def _forward(self, backend: Backend, body: bytes) -> tuple[int, bytes, list[tuple[str, str]]]:
        headers = {name: value for name, value in self.headers.items() if name.lower() not in HOP_BY_HOP}
        headers["Host"] = f"127.0.0.1:{backend.port}"
        forwarded = self.headers.get("X-Forwarded-For")
        client = self.client_address[0]
        headers["X-Forwarded-For"] = f"{forwarded}, {client}" if forwarded else client
        headers["X-Forwarded-Proto"] = "http"
        if body or self.command in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = str(len(body))
        for attempt in (1, 2):
            connection = self.server.router.connection(backend)
            try:
                connection.request(self.command, self.path, body=body or None, headers=headers)
                response = connection.getresponse()
                payload = response.read()
                out = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
                if response.will_close:
                    self.server.router.drop_connection(backend)
                return response.status, payload, out
            except TimeoutError:
                self.server.router.drop_connection(backend)
                return 504, b"upstream request timeout\n", []
            except (ConnectionError, http.client.HTTPException, OSError) as error:
                self.server.router.drop_connection(backend)
                if attempt == 2 or isinstance(error, ConnectionRefusedError):
                    return 503, f"revision {backend.revision} is unavailable: {error}\n".encode(), []
        raise AssertionError("unreachable")


class Router:
    """Listeners keyed by a route key (``service`` or ``service#tag``), all on ``host``."""

    def __init__(self, host: str, recorder: Recorder, first_port: int = 0) -> None:
        self.host = host
        self.recorder = recorder
        self.first_port = first_port
        self._lock = threading.Lock()
        self._servers: dict[str, _Server] = {}
        self._faults: dict[tuple[str, str, str, str], RevisionFault] = {}
        self._local = threading.local()

    # -- listeners ------------------------------------------------------------------------------------

    def open(self, key: str, owner: RouteOwner) -> int:
        """The port of the listener for ``key`` (created on first use; stable while it stays open)."""
        with self._lock:
            server = self._servers.get(key)
            if server is not None:
                return int(server.server_address[1])
            server = self._bind(owner)
            self._servers[key] = server
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"run-router-{key}", daemon=True
        ).start()
        return int(server.server_address[1])

    def _bind(self, owner: RouteOwner) -> _Server:
        if not self.first_port:
            return _Server((self.host, 0), self, _Route(owner))
        used = {int(server.server_address[1]) for server in self._servers.values()}
        for port in range(self.first_port, self.first_port + 1000):
            if port in used:
                continue
            with contextlib.suppress(OSError):
                return _Server((self.host, port), self, _Route(owner))
        raise OSError(f"no free router port from {self.first_port}")

    def set_targets(self, key: str, targets: list[tuple[Backend, int]]) -> None:
        with self._lock:
            server = self._servers.get(key)
        if server is None:
            raise KeyError(key)
        server.route.update(targets)

    def keys(self) -> list[str]:
        with self._lock:
            return sorted(self._servers)

    def close(self, key: str) -> None:
        with self._lock:
            server = self._servers.pop(key, None)
        if server is not None:
            server.closed = True
            server.shutdown()
            server.server_close()

    def close_all(self) -> None:
        closing = [threading.Thread(target=self.close, args=(key,), daemon=True) for key in self.keys()]
        for thread in closing:
            thread.start()
        for thread in closing:
            thread.join(timeout=5.0)

    def describe(self) -> dict[str, Any]:
        with self._lock:
            servers = dict(self._servers)
        out: dict[str, Any] = {}
        for key, server in sorted(servers.items()):
            route = server.route
            with route.lock:
                out[key] = {
                    "url": f"http://{self.host}:{server.server_address[1]}",
                    "targets": [
                        {"revision": backend.revision, "port": backend.port, "weight": weight}
                        for backend, weight in route.signature
                    ],
                    "served": dict(route.served),
                }
        return out

    # -- faults ---------------------------------------------------------------------------------------

    def set_fault(self, owner: RouteOwner, revision: str, fault: RevisionFault | None) -> None:
        key = (owner.project, owner.location, owner.service, revision)
        with self._lock:
            if fault is None:
                self._faults.pop(key, None)
            else:
                self._faults[key] = fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def faults(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {
                    "service": f"projects/{p}/locations/{loc}/services/{s}",
                    "revision": revision,
                    "errorRate": fault.error_rate,
                    "status": fault.status,
                    "latencyMs": fault.latency_ms,
                }
                for (p, loc, s, revision), fault in sorted(self._faults.items())
            ]

    def fault_for(self, owner: RouteOwner, revision: str) -> RevisionFault | None:
        with self._lock:
            return self._faults.get((owner.project, owner.location, owner.service, revision))

    # -- upstream connections (one keep-alive connection per handler thread and revision port) ----------

    def connection(self, backend: Backend) -> http.client.HTTPConnection:
        pool: dict[int, http.client.HTTPConnection] = self._local.__dict__.setdefault("pool", {})
        connection = pool.get(backend.port)
        if connection is None or connection.timeout != backend.timeout:
            connection = http.client.HTTPConnection("127.0.0.1", backend.port, timeout=backend.timeout)
            pool[backend.port] = connection
        return connection

    def drop_connection(self, backend: Backend) -> None:
        pool: dict[int, http.client.HTTPConnection] = self._local.__dict__.setdefault("pool", {})
        connection = pool.pop(backend.port, None)
        if connection is not None:
            with contextlib.suppress(OSError):
                connection.close()

    def record(self, record: RequestRecord) -> None:
        try:
            self.recorder(record)
        except Exception:  # recording must never break serving
            log.exception("could not record a request")


def port_accepts(port: int, timeout: float = 0.2) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=timeout):
        return True
    return False
