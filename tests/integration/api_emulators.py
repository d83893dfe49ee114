"""Start the API emulators (Cloud Build, Vertex AI, Cloud Run) and the Pub/Sub and storage emulators they use.

Module-scoped fixtures of the contract tests use :func:`running`, which starts just the components a module
needs through the project's own :class:`emulators.stack.Stack` (free loopback ports, process groups, stopped
by PID), with gRPC ports and short lifecycles.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulators.stack import API_EMULATORS, Stack, StackState, applied_env

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "emu-project"


@dataclass
class ApiStack:
    """A running :class:`emulators.stack.Stack` seen the way the contract tests use it."""

    root: Path
    env: dict[str, str]
    state: StackState
    hosts: dict[str, str] = field(default_factory=dict)  # name -> host:port (REST)
    grpc: dict[str, str] = field(default_factory=dict)  # name -> host:port (gRPC)

    def options(self, name: str) -> dict[str, Any]:
        from google.auth.credentials import AnonymousCredentials

        return {
            "client_options": {"api_endpoint": f"http://{self.hosts[name]}"},
            "transport": "rest",
            "credentials": AnonymousCredentials(),  # type: ignore[no-untyped-call]
        }

    def log(self, name: str) -> str:
        component = self.state.components.get(name)
        return Path(component.log).read_text(errors="replace") if component else ""


#: Short lifecycles, so contract tests take seconds (the admin API can change them per test).
FAST = {
    "cloudbuild": ["--queued-seconds", "0.2"],
    "vertex": ["--queued-seconds", "0.1", "--pending-seconds", "0.1"],
    "run": ["--metrics-delay", "0.5"],
}


@contextlib.contextmanager
def running(
    root: Path,
    *,
    pubsub: bool = False,
    storage: bool = False,
    cloudbuild: bool = False,
    vertex: bool = False,
    run: bool = False,
    grpc: bool = False,
    api_args: dict[str, list[str]] | None = None,
) -> Iterator[ApiStack]:
    """The requested emulators (started by the project's own stack), up and healthy; the test process sees
    their variables meanwhile."""
    wanted = {"pubsub": pubsub, "storage": storage, "cloudbuild": cloudbuild, "vertex": vertex, "run": run}
    stack = Stack(
        root,
        project=PROJECT,
        components=[name for name, on in wanted.items() if on],
        grpc=grpc,
        api_args={**FAST, **(api_args or {})},
    )
    state = stack.up(progress=lambda _line: None)
    try:
        hosts = {name: state.env[e.variable] for e in API_EMULATORS if (name := e.name) in state.components}
        if "storage" in state.components:
            hosts["storage"] = state.env["STORAGE_EMULATOR_HOST"].removeprefix("http://")
        api_stack = ApiStack(root, {**os.environ, **state.env}, state, hosts, dict(state.grpc_hosts))
        with applied_env(state.env):
            yield api_stack
    finally:
        stack.down(progress=lambda _line: None)


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
