"""Start the API emulators (Cloud Build, Vertex AI) with the Pub/Sub and storage emulators they use.

Module-scoped fixtures of the contract tests use :func:`running`; every process is started in its own
process group on a free loopback port and stopped by PID.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulators._proc import Started, free_port, http_ok, start_process, stop_group, wait_until

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "emu-project"


@dataclass
class ApiStack:
    root: Path
    env: dict[str, str]
    hosts: dict[str, str] = field(default_factory=dict)  # name -> host:port (REST)
    grpc: dict[str, str] = field(default_factory=dict)  # name -> host:port (gRPC)
    started: list[Started] = field(default_factory=list)

    def options(self, name: str) -> dict[str, Any]:
        from google.auth.credentials import AnonymousCredentials

        return {
            "client_options": {"api_endpoint": f"http://{self.hosts[name]}"},
            "transport": "rest",
            "credentials": AnonymousCredentials(),  # type: ignore[no-untyped-call]
        }

    def log(self, name: str) -> str:
        for started in self.started:
            if started.name == name:
                return started.log_path.read_text(errors="replace")
        return ""


def _python_server(stack: ApiStack, name: str, module: str, extra: list[str], grpc: bool) -> Started:
    port = free_port()
    argv = [sys.executable, "-m", module, "--host", "127.0.0.1", "--port", str(port), "--project", PROJECT]
    if module != "emulators.storage":
        argv += ["--state-dir", str(stack.root / name)]
    if grpc:
        grpc_port = free_port()
        argv += ["--grpc-port", str(grpc_port)]
        stack.grpc[name] = f"127.0.0.1:{grpc_port}"
    started = start_process(name, argv + extra, stack.root / "logs", env=stack.env, cwd=ROOT)
    stack.started.append(started)
    stack.hosts[name] = f"127.0.0.1:{port}"
    return started


@contextlib.contextmanager
def running(
    root: Path,
    *,
    pubsub: bool = False,
    storage: bool = False,
    cloudbuild: bool = False,
    vertex: bool = False,
    grpc: bool = False,
) -> Iterator[ApiStack]:
    """The requested emulators, up and healthy; the test process sees their variables meanwhile."""
    env = dict(os.environ)
    env["LOCAL_REGISTRY_DIR"] = str(root / "registry")
    env["GOOGLE_CLOUD_PROJECT"] = PROJECT
    stack = ApiStack(root=root, env=env)
    checks: list[tuple[str, Callable[[], bool], Started]] = []
    try:
        if pubsub:
            from emulators.official import start_pubsub

            port = free_port()
            stack.started.append(start_pubsub("127.0.0.1", port, PROJECT, root / "logs"))
            env["PUBSUB_EMULATOR_HOST"] = f"127.0.0.1:{port}"
        if storage:
            started = _python_server(
                stack, "storage", "emulators.storage", ["--data-dir", str(root / "gcs")], False
            )
            env["STORAGE_EMULATOR_HOST"] = f"http://{stack.hosts['storage']}"
            checks.append(("storage", _health(stack.hosts["storage"]), started))
        if cloudbuild:
            started = _python_server(
                stack, "cloudbuild", "emulators.cloudbuild", ["--queued-seconds", "0.2"], grpc
            )
            checks.append(("cloudbuild", _health(stack.hosts["cloudbuild"]), started))
        if vertex:
            started = _python_server(
                stack,
                "vertex",
                "emulators.vertex",
                ["--queued-seconds", "0.1", "--pending-seconds", "0.1"],
                grpc,
            )
            checks.append(("vertex", _health(stack.hosts["vertex"]), started))
        for name, check, started in checks:
            wait_until(check, f"{name} emulator", 60, started)
        saved = {key: os.environ.get(key) for key in env}
        os.environ.update(env)
        try:
            yield stack
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    finally:
        for started in reversed(stack.started):
            stop_group(started.pid)


def _health(host: str) -> Callable[[], bool]:
    return lambda: http_ok(f"http://{host}/_emulator/health")


def tarball(source: Path) -> bytes:
    """A ``.tar.gz`` of ``source``'s contents, as ``gcloud builds submit`` uploads it."""
    from emulators.cloudbuild.sources import pack_source

    return pack_source(source)


def upload(bucket: str, name: str, data: bytes) -> int:
    """Put ``data`` at gs://bucket/name in the storage emulator (bucket created if needed); its generation."""
    from google.api_core import exceptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.storage import Client

    client = Client(project=PROJECT, credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]
    with contextlib.suppress(exceptions.Conflict):
        client.create_bucket(bucket)
    blob = client.bucket(bucket).blob(name)
    blob.upload_from_string(data)
    return int(blob.generation or 0)


def download(bucket: str, name: str) -> bytes:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.storage import Client

    client = Client(project=PROJECT, credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]
    data: bytes = client.bucket(bucket).blob(name).download_as_bytes()
    return data


def poll(
    fetch: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 30.0, interval: float = 0.05
) -> list[Any]:
    """Call ``fetch`` until ``done`` holds; returns every distinct value seen, in order."""
    seen: list[Any] = []
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if not seen or seen[-1] != value:
            seen.append(value)
        if done(value):
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(f"not done after {timeout}s; seen {seen}")
        time.sleep(interval)


def fast_polling() -> Any:
    """Operation polling for tests: every 0.1-0.5 s instead of the library's multi-second backoff."""
    from google.api_core.future.polling import DEFAULT_POLLING

    return DEFAULT_POLLING.with_delay(initial=0.1, maximum=0.5, multiplier=1.5)
