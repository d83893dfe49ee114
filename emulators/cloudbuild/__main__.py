"""``python -m emulators.cloudbuild --host 127.0.0.1 --port P --project X --state-dir DIR [--grpc-port G]``.

Environment: ``PUBSUB_EMULATOR_HOST`` (build status messages to ``cloud-builds``), ``STORAGE_EMULATOR_HOST``
(``storage_source``), ``LOCAL_REGISTRY_DIR`` (the image registry shared with the other emulators).
Ready when ``GET http://HOST:P/_emulator/health`` answers 200.
"""

from __future__ import annotations

import argparse
import sys

from emulators.apiserver.cli import parser, run
from emulators.apiserver.server import ApiServer
from emulators.common.registry import LocalRegistry


def attach(server: ApiServer, args: argparse.Namespace, registry: LocalRegistry) -> object:
    from emulators.cloudbuild.service import CloudBuildService

    service = CloudBuildService(server, args.project, args.state_dir.resolve(), registry)
    if args.queued_seconds is not None:
        service.durations.queued_seconds = args.queued_seconds
    if args.step_seconds is not None:
        service.durations.step_seconds = args.step_seconds
    return service


def main(argv: list[str] | None = None) -> int:
    cli = parser("Cloud Build API emulator")
    cli.add_argument("--queued-seconds", type=float, default=None, help="how long a build stays QUEUED")
    cli.add_argument("--step-seconds", type=float, default=None, help="minimum duration of each build step")
    return run("cloudbuild", cli.parse_args(argv), attach)


if __name__ == "__main__":
    sys.exit(main())
