"""Command line shared by the API emulators (`python -m emulators.cloudbuild`, `... .vertex`)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from emulators.apiserver.server import ApiServer
from emulators.common.registry import LocalRegistry


def parser(description: str) -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(description=description)
    result.add_argument("--host", default="127.0.0.1", help="interface to serve on (default 127.0.0.1)")
    result.add_argument("--port", type=int, required=True, help="REST port")
    result.add_argument("--grpc-port", type=int, default=0, help="also serve gRPC on this port (0: off)")
    result.add_argument("--project", required=True, help="default Google Cloud project id")
    result.add_argument("--state-dir", type=Path, required=True, help="logs, workspaces and working copies")
    result.add_argument(
        "--registry-dir",
        type=Path,
        default=None,
        help="local image registry folder (default: $LOCAL_REGISTRY_DIR, else STATE_DIR/registry)",
    )
    result.add_argument("--log-level", default=os.environ.get("EMULATOR_LOG_LEVEL", "WARNING"))
    return result


def open_registry(args: argparse.Namespace) -> LocalRegistry:
    """Create the state folder and open the local image registry (``--registry-dir``, else
    ``$LOCAL_REGISTRY_DIR``, else ``STATE_DIR/registry``); child processes inherit its location."""
    state_dir: Path = args.state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    registry_dir = args.registry_dir or (
        Path(os.environ["LOCAL_REGISTRY_DIR"])
        if os.environ.get("LOCAL_REGISTRY_DIR")
        else state_dir / "registry"
    )
    registry = LocalRegistry(registry_dir.resolve())
    # Child processes (build steps, trainers, revisions, the docker CLI) find the same registry.
    os.environ["LOCAL_REGISTRY_DIR"] = str(registry.root)
    return registry


def run(
    name: str,
    args: argparse.Namespace,
    attach: Callable[[ApiServer, argparse.Namespace, LocalRegistry], object],
) -> int:
    logging.basicConfig(level=args.log_level.upper(), format=f"%(asctime)s {name} %(levelname)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    registry = open_registry(args)
    server = ApiServer(name, args.host, args.port, args.grpc_port or None)
    attach(server, args, registry)
    try:
        server.serve_forever()
    except OSError as error:
        print(f"{name} emulator cannot start: {error}", file=sys.stderr)
        return 1
    return 0
