"""``python -m emulators.monitoring --host 127.0.0.1 --port P --grpc-port G --project X --state-dir DIR``.

A stand-alone Cloud Monitoring emulator whose metrics come from ``POST /_emulator/requests``. To have the
Cloud Run router's requests show up, serve Monitoring from the Cloud Run emulator's process instead
(``python -m emulators.run … --monitoring-port M --monitoring-grpc-port G``), which shares one store.
``MONITORING_EMULATOR_HOST`` is ``HOST:G`` (the client is gRPC only); readiness: ``GET http://HOST:P/_emulator/health``.
"""

from __future__ import annotations

import argparse
import sys

from emulators.apiserver.cli import parser, run
from emulators.apiserver.server import ApiServer
from emulators.common.registry import LocalRegistry
from emulators.monitoring.service import MonitoringService
from emulators.monitoring.store import MetricsStore


def add_metrics_options(cli: argparse.ArgumentParser) -> None:
    cli.add_argument(
        "--metrics-delay",
        type=float,
        default=1.0,
        help="reporting delay in seconds before a point is visible (cloud: up to ~180; default 1)",
    )
    cli.add_argument(
        "--sample-period",
        type=float,
        default=1.0,
        help="sampling period of the Cloud Run metrics in seconds (cloud: 60; default 1)",
    )


def main(argv: list[str] | None = None) -> int:
    cli = parser("Cloud Monitoring API emulator (ListTimeSeries)")
    add_metrics_options(cli)
    args = cli.parse_args(argv)
    if not args.grpc_port:
        cli.error("--grpc-port is required: the Monitoring client library speaks gRPC only")

    def attach(server: ApiServer, namespace: argparse.Namespace, _: LocalRegistry) -> object:
        store = MetricsStore(sample_period=namespace.sample_period, reporting_delay=namespace.metrics_delay)
        return MonitoringService(server, store, namespace.project)

    return run("monitoring", args, attach)


if __name__ == "__main__":
    sys.exit(main())
