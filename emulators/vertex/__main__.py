"""``python -m emulators.vertex --host 127.0.0.1 --port P --project X --state-dir DIR [--grpc-port G]``.

Environment: ``STORAGE_EMULATOR_HOST`` (passed to the jobs it runs, for ``AIP_MODEL_DIR`` and data in
``gs://``), ``LOCAL_REGISTRY_DIR`` (images built through the Cloud Build emulator). Ready when
``GET http://HOST:P/_emulator/health`` answers 200.
"""

from __future__ import annotations

import argparse
import sys

from emulators.apiserver.cli import parser, run
from emulators.apiserver.server import ApiServer
from emulators.common.registry import LocalRegistry


def attach(server: ApiServer, args: argparse.Namespace, registry: LocalRegistry) -> object:
    from emulators.vertex.service import attach_vertex

    emulator = attach_vertex(server, args.project, args.state_dir.resolve(), registry)
    for key in ("queued_seconds", "pending_seconds", "running_seconds"):
        value = getattr(args, key)
        if value is not None:
            setattr(emulator.jobs.durations, key, value)
    return emulator


def main(argv: list[str] | None = None) -> int:
    cli = parser("Vertex AI API emulator (CustomJob, PipelineJob, Model Registry)")
    cli.add_argument("--queued-seconds", type=float, default=None, help="how long a job stays QUEUED")
    cli.add_argument("--pending-seconds", type=float, default=None, help="how long a job stays PENDING")
    cli.add_argument("--running-seconds", type=float, default=None, help="minimum time a job stays RUNNING")
    return run("vertex", cli.parse_args(argv), attach)


if __name__ == "__main__":
    sys.exit(main())
