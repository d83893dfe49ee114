"""``python -m emulators.run --host 127.0.0.1 --port P --project X --state-dir DIR [options]``.

Serves the Cloud Run Admin API v2 on ``HOST:P`` (REST; ``--grpc-port`` adds gRPC) and, with
``--monitoring-port M --monitoring-grpc-port G``, the Cloud Monitoring emulator from the same process, reading
the request metrics the router records in memory (``MONITORING_EMULATOR_HOST=HOST:G``: the Monitoring client
is gRPC only; REST, health and admin on ``HOST:M``).

Service and tag URLs are ``http://ROUTER_HOST:PORT`` with free ports (``--router-port N``: the first port to
try). Environment: ``LOCAL_REGISTRY_DIR`` (images the Cloud Build emulator built), ``STORAGE_EMULATOR_HOST``
and the other emulator variables are passed on to the revision processes. Ready when
``GET http://HOST:P/_emulator/health`` answers 200. SIGTERM/SIGINT stop every revision process and the router.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from emulators.apiserver.cli import open_registry, parser
from emulators.apiserver.server import ApiServer
from emulators.monitoring.__main__ import add_metrics_options
from emulators.monitoring.service import MonitoringService
from emulators.monitoring.store import MetricsStore
from emulators.run.admin import RunAdmin
from emulators.run.service import RunService

log = logging.getLogger("emulators.run")


def main(argv: list[str] | None = None) -> int:
    cli = parser("Cloud Run Admin API v2 emulator (+ Cloud Monitoring on a second port)")
    cli.add_argument("--router-host", default="127.0.0.1", help="interface of the service and tag URLs")
    cli.add_argument("--router-port", type=int, default=0, help="first port for service/tag URLs (0: any)")
    cli.add_argument(
        "--startup-timeout", type=float, default=30.0, help="seconds a revision has to start listening"
    )
    cli.add_argument("--monitoring-port", type=int, default=0, help="Monitoring REST/admin port (0: off)")
    cli.add_argument("--monitoring-grpc-port", type=int, default=0, help="Monitoring gRPC port")
    add_metrics_options(cli)
    args = cli.parse_args(argv)
    if bool(args.monitoring_port) != bool(args.monitoring_grpc_port):
        cli.error("--monitoring-port and --monitoring-grpc-port go together")

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s run %(levelname)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    registry = open_registry(args)
    state_dir: Path = args.state_dir.resolve()

    store = MetricsStore(sample_period=args.sample_period, reporting_delay=args.metrics_delay)
    run_server = ApiServer("run", args.host, args.port, args.grpc_port or None)
    service = RunService(
        run_server, args.project, state_dir, registry, store, args.router_host, args.router_port
    )
    service.settings.startup_timeout = args.startup_timeout
    RunAdmin(run_server, service)
    servers = [run_server]
    if args.monitoring_port:
        monitoring = ApiServer("monitoring", args.host, args.monitoring_port, args.monitoring_grpc_port)
        MonitoringService(monitoring, store, args.project)
        run_server.add_health_info(
            lambda: {
                "monitoring": f"{args.host}:{args.monitoring_grpc_port}",
                "monitoringRest": monitoring.base_url,
            }
        )
        servers.append(monitoring)

    stopping = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    started: list[ApiServer] = []
    try:
        for server in servers:
            server.start()
            started.append(server)
        log.warning("run emulator serving REST on %s", run_server.base_url)
        while not stopping.wait(0.5):
            pass
    except OSError as error:
        print(f"run emulator cannot start: {error}", file=sys.stderr)
        return 1
    finally:
        for server in started:
            server.stop()
        if run_server not in started:
            service.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
