"""The reconcile ticker, Cloud Scheduler's part: POST ``FUNCTIONS_URL/reconcile`` every few seconds.

Its own process (started and stopped by PID like every component), not a thread in the function host: the
function host stays exactly what Cloud Functions runs, a tick reaches ``reconcile`` over HTTP as Scheduler's
does (through functions-framework, with its status and JSON answer), and a test stack without the ticker is
a stack whose functions only react to events.

* ticks only while the function host mounts ``reconcile`` (``GET FUNCTIONS_URL/_emulator/health`` lists the
  entry points); a 404 (not exported yet) is tolerated and looked up again later;
* one tick at a time: the next one starts ``--every`` seconds after the previous one started, or at once if
  it took longer (Cloud Scheduler may overlap ticks; the function is safe either way);
* ``--every 0`` (or ``RECONCILE_TICK_SECONDS=0``) disables ticking: the process only answers its health;
* ``GET /_emulator/health`` answers its counters and the last tick's answer (for ``status``, tests, people).

Run: ``python -m emulators.stack.ticker --host 127.0.0.1 --port P --functions-url URL [--every 2]``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
import time
from datetime import UTC, datetime
from typing import Any

import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

DEFAULT_EVERY_SECONDS = 2.0
#: Longer than the function's own tick budget (shared.chain.reconcile.TickLimits.budget_seconds).
TICK_TIMEOUT_SECONDS = 60.0
#: How long to wait before asking the function host again when ``reconcile`` is not mounted.
NOT_MOUNTED_RETRY_SECONDS = 10.0
_BODY_CHARS = 4000


class Ticker:
    """The ticking loop and its counters."""

    def __init__(self, functions_url: str, function: str, every: float) -> None:
        self.functions_url = functions_url.rstrip("/")
        self.function = function
        self.every = every
        self.session = requests.Session()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.mounted: bool | None = None  # unknown until the function host was asked
        self.ticks = 0
        self.succeeded = 0
        self.failed = 0
        self.last: dict[str, Any] = {}

    def health(self) -> dict[str, Any]:
        with self.lock:
            return {
                "status": "ok",
                "target": f"{self.functions_url}/{self.function}",
                "every_seconds": self.every,
                "enabled": self.every > 0,
                "mounted": self.mounted,
                "ticks": self.ticks,
                "succeeded": self.succeeded,
                "failed": self.failed,
                "last": dict(self.last),
            }

    def is_mounted(self) -> bool:
        try:
            response = self.session.get(f"{self.functions_url}/_emulator/health", timeout=5)
            names = response.json().get("entry_points", []) if response.ok else []
        except (requests.RequestException, ValueError):
            return False
        return self.function in names

    def tick(self) -> None:
        began = time.monotonic()
        at = datetime.now(UTC).isoformat()
        try:
            response = self.session.post(
                f"{self.functions_url}/{self.function}", timeout=TICK_TIMEOUT_SECONDS
            )
            status, text = response.status_code, response.text
        except requests.RequestException as error:
            status, text = 0, f"{type(error).__name__}: {error}"
        seconds = round(time.monotonic() - began, 3)
        try:
            body: Any = json.loads(text)
        except ValueError:
            body = text[:_BODY_CHARS]
        with self.lock:
            if status == 404:
                self.mounted = False  # the function host was restarted without it
                return
            self.ticks += 1
            if 200 <= status < 300:
                self.succeeded += 1
            else:
                self.failed += 1
            self.last = {"at": at, "status": status, "seconds": seconds, "body": body}
        busy = isinstance(body, dict) and (body.get("emitted") or body.get("failures"))
        if busy or not 200 <= status < 300:
            print(
                json.dumps({"tick": self.ticks, "status": status, "seconds": seconds, "body": body}),
                flush=True,
            )

    def run(self) -> None:
        if self.every <= 0:
            return
        next_at = time.monotonic()
        while not self.stop.wait(max(0.0, next_at - time.monotonic())):
            next_at = time.monotonic() + self.every
            if not self.mounted:
                mounted = self.is_mounted()
                with self.lock:
                    self.mounted = mounted
                if not mounted:
                    next_at = time.monotonic() + max(self.every, NOT_MOUNTED_RETRY_SECONDS)
                    continue
            self.tick()


def _every_default() -> float:
    raw = os.environ.get("RECONCILE_TICK_SECONDS", "")
    try:
        return float(raw) if raw else DEFAULT_EVERY_SECONDS
    except ValueError:
        raise SystemExit(f"RECONCILE_TICK_SECONDS={raw!r} is not a number of seconds") from None


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m emulators.stack.ticker")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--functions-url", required=True)
    parser.add_argument("--function", default="reconcile")
    parser.add_argument(
        "--every",
        type=float,
        default=None,
        help="seconds between ticks (default $RECONCILE_TICK_SECONDS or 2)",
    )
    args = parser.parse_args()
    every = _every_default() if args.every is None else args.every
    ticker = Ticker(args.functions_url, args.function, every)

    @Request.application
    def app(request: Request) -> Response:
        if request.path == "/_emulator/health":
            return Response(json.dumps(ticker.health()), mimetype="application/json")
        return Response(
            json.dumps({"error": "only /_emulator/health"}), status=404, mimetype="application/json"
        )

    server = make_server(args.host, args.port, app, threaded=True)

    def shutdown(*_: Any) -> None:
        ticker.stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    loop = threading.Thread(target=ticker.run, name="ticker", daemon=True)
    loop.start()
    state = f"every {every:g}s" if every > 0 else "disabled (every 0)"
    print(
        f"reconcile ticker on http://{args.host}:{args.port}: {ticker.functions_url}/{args.function} {state}",
        flush=True,
    )
    server.serve_forever()


if __name__ == "__main__":
    main()
