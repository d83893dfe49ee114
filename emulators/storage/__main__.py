"""``python -m emulators.storage --host 127.0.0.1 --port PORT --project PROJECT [--data-dir DIR]
[--routes-file FILE] [--retry-min-backoff 0.5] [--retry-max-backoff 10] [--max-delivery-attempts 5]
[--delivery-timeout 10] [--delivery-workers 4] [--shutdown-grace 3] [--log-level INFO]``.

SIGTERM or SIGINT stops the HTTP server, gives pending deliveries ``--shutdown-grace`` seconds, dead-letters
whatever is still undelivered, and exits 0. Ready when ``GET /_emulator/health`` answers 200.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from werkzeug.serving import make_server

from emulators.storage.delivery import DeliveryPolicy
from emulators.storage.events import load_routes
from emulators.storage.service import EmulatorConfig, StorageEmulator

LOG = logging.getLogger("emulators.storage")


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m emulators.storage",
        description="Cloud Storage JSON API emulator that delivers object.v1.finalized CloudEvents.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9023, help="port to listen on (default 9023)")
    parser.add_argument(
        "--project",
        default=os.environ.get("GOOGLE_CLOUD_PROJECT", "local-project"),
        help="default project of buckets (default $GOOGLE_CLOUD_PROJECT or local-project)",
    )
    parser.add_argument("--data-dir", type=Path, help="keep object bytes and dead-letters.jsonl here")
    parser.add_argument("--routes-file", type=Path, help='JSON {"BUCKET": ["http://host:port/path", ...]}')
    parser.add_argument("--retry-min-backoff", type=_positive, default=0.5, help="first retry delay, s")
    parser.add_argument("--retry-max-backoff", type=_positive, default=10.0, help="longest retry delay, s")
    parser.add_argument("--max-delivery-attempts", type=_positive_int, default=5, help="attempts per event")
    parser.add_argument("--delivery-timeout", type=_positive, default=10.0, help="timeout of one attempt, s")
    parser.add_argument("--delivery-workers", type=_positive_int, default=4, help="delivery threads")
    parser.add_argument(
        "--shutdown-grace", type=float, default=3.0, help="seconds to finish due deliveries on shutdown"
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # werkzeug logs every request at INFO; only show that when debugging.
    logging.getLogger("werkzeug").setLevel(logging.DEBUG if args.log_level == "DEBUG" else logging.WARNING)
    if args.retry_max_backoff < args.retry_min_backoff:
        LOG.error(
            "--retry-max-backoff (%s) is below --retry-min-backoff (%s)",
            args.retry_max_backoff,
            args.retry_min_backoff,
        )
        return 2
    try:
        routes = load_routes(args.routes_file)
    except ValueError as error:
        LOG.error("%s", error)
        return 2
    data_dir: Path | None = args.data_dir.resolve() if args.data_dir else None
    config = EmulatorConfig(
        project=args.project,
        data_dir=data_dir,
        routes=routes,
        policy=DeliveryPolicy(
            min_backoff=args.retry_min_backoff,
            max_backoff=args.retry_max_backoff,
            max_attempts=args.max_delivery_attempts,
            timeout=args.delivery_timeout,
            workers=args.delivery_workers,
        ),
        shutdown_grace=max(0.0, args.shutdown_grace),
    )
    emulator = StorageEmulator(config)
    try:
        server = make_server(args.host, args.port, emulator, threaded=True)
    except OSError as error:
        LOG.error("cannot listen on %s:%d: %s", args.host, args.port, error)
        return 1
    emulator.start()

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        LOG.info("received %s; shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    serving = threading.Thread(target=server.serve_forever, name="storage-http", daemon=True)
    serving.start()
    LOG.info(
        "storage emulator on http://%s:%d (project %s, object bytes %s, %d routed bucket(s)); "
        "set STORAGE_EMULATOR_HOST=http://%s:%d",
        args.host,
        server.port,
        args.project,
        f"in {data_dir}" if data_dir else "in memory",
        len(routes),
        args.host,
        server.port,
    )
    while not stop.wait(0.2):
        if not serving.is_alive():
            LOG.error("the HTTP server thread ended unexpectedly")
            break
    server.shutdown()
    server.server_close()
    emulator.close()
    LOG.info("storage emulator stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
