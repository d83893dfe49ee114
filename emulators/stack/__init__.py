"""The local stack: official emulators, our storage emulator, a webhook sink, the function host, and the
eventing that connects them, started on free loopback ports and stopped by PID.

State lives in a run folder (default ``.run/`` in the checkout, ``EMULATORS_RUN_DIR`` overrides):
``stack.json`` records every process (PID = process-group id), port and log file; logs go to ``logs/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from emulators import official
from emulators._proc import (
    StackError,
    Started,
    free_port,
    group_alive,
    http_ok,
    start_process,
    stop_group,
    wait_until,
)

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
DEFAULT_PROJECT = "demo-project"
Progress = Callable[[str], None]


def default_run_dir() -> Path:
    return Path(os.environ.get("EMULATORS_RUN_DIR") or ROOT / ".run")


@dataclass
class Component:
    name: str
    pid: int
    port: int
    log: str
    url: str

    def alive(self) -> bool:
        return group_alive(self.pid)


@dataclass
class StackState:
    project: str
    config: str
    started_at: str
    components: dict[str, Component] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    dead_letter_subscriptions: dict[str, str] = field(default_factory=dict)
    grpc_hosts: dict[str, str] = field(default_factory=dict)  # API emulator -> its gRPC host:port
    extra_hosts: dict[str, str] = field(default_factory=dict)  # e.g. "run--monitoring-port" -> host:port

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StackState:
        components = {name: Component(**value) for name, value in data.get("components", {}).items()}
        return cls(
            project=data["project"],
            config=data["config"],
            started_at=data["started_at"],
            components=components,
            env=data.get("env", {}),
            dead_letter_subscriptions=data.get("dead_letter_subscriptions", {}),
            grpc_hosts=data.get("grpc_hosts", {}),
            extra_hosts=data.get("extra_hosts", {}),
        )


@dataclass(frozen=True)
class ApiEmulator:
    """One of our API emulators: ``python -m MODULE --host --port --project --state-dir`` + health check."""

    name: str
    module: str
    variable: str
    label: str
    extra_args: tuple[str, ...] = ()
    #: further ports it serves: (command-line flag, variable exported for it or "", label for progress)
    extra_ports: tuple[tuple[str, str, str], ...] = ()


API_EMULATORS: tuple[ApiEmulator, ...] = (
    ApiEmulator("cloudbuild", "emulators.cloudbuild", "CLOUDBUILD_EMULATOR_HOST", "Cloud Build"),
    ApiEmulator("vertex", "emulators.vertex", "VERTEX_EMULATOR_HOST", "Vertex AI"),
    # Cloud Monitoring runs inside the Cloud Run emulator's process: it reads the router's request metrics
    # in memory. Its client library speaks only gRPC, so MONITORING_EMULATOR_HOST is the gRPC port.
    ApiEmulator(
        "run",
        "emulators.run",
        "RUN_EMULATOR_HOST",
        "Cloud Run",
        extra_ports=(
            ("--monitoring-port", "", ""),
            ("--monitoring-grpc-port", "MONITORING_EMULATOR_HOST", "Monitoring (gRPC)"),
        ),
    ),
)


#: Everything a stack can run, in start order.
COMPONENTS: tuple[str, ...] = (
    "pubsub",
    "firestore",
    "sink",
    "storage",
    *(e.name for e in API_EMULATORS),
    "functions",
)


@contextlib.contextmanager
def applied_env(env: dict[str, str]) -> Iterator[None]:
    """Set the stack's variables in this process (so client libraries find the emulators), then restore."""
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _ready(progress: Progress, label: str, where: str, extra: str = "") -> None:
    progress(f"  ✓ {label:<21} {where}{extra}")


def _python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


class Stack:
    """One local stack, described by the ``stack.json`` in its run folder."""

    def __init__(
        self,
        run_dir: Path | None = None,
        project: str | None = None,
        config_path: Path | None = None,
        extra_sources: tuple[Path, ...] = (),
        extra_env: dict[str, str] | None = None,
        components: Collection[str] | None = None,
        grpc: bool = False,
        api_args: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """``components`` picks a subset of :data:`COMPONENTS` (default: all; tests start what they need);
        ``grpc`` also serves gRPC from the API emulators; ``api_args`` adds flags per API emulator."""
        self.run_dir = (run_dir or default_run_dir()).resolve()
        self.project = project or os.environ.get("GOOGLE_CLOUD_PROJECT") or DEFAULT_PROJECT
        self.config_path = (
            config_path or Path(os.environ.get("PIPELINE_CONFIG", ROOT / "pipeline.yaml"))
        ).resolve()
        self.extra_sources = extra_sources
        self.extra_env = dict(extra_env or {})
        self.state_file = self.run_dir / "stack.json"
        self.components = tuple(COMPONENTS if components is None else components)
        unknown = set(self.components) - set(COMPONENTS)
        if unknown:
            raise StackError(f"unknown component(s) {sorted(unknown)}; known: {', '.join(COMPONENTS)}")
        self.grpc = grpc
        self.api_args = {name: list(args) for name, args in (api_args or {}).items()}

    # ------------------------------------------------------------------------------------ state

    def load(self) -> StackState | None:
        try:
            return StackState.from_json(json.loads(self.state_file.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as error:
            raise StackError(
                f"{self.state_file} is unreadable ({error}); remove it after stopping by hand"
            ) from error

    def _save(self, state: StackState) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        temporary = self.state_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(state.to_json(), indent=2))
        temporary.replace(self.state_file)

    def running(self) -> StackState | None:
        """The state of a stack whose processes are all alive, else None."""
        state = self.load()
        if state and state.components and all(c.alive() for c in state.components.values()):
            return state
        return None

    # --------------------------------------------------------------------------------------- up

    def up(self, progress: Progress = print) -> StackState:
        existing = self.load()
        if existing is not None:
            if self.running() is not None:
                progress(
                    f"stack already running (started {existing.started_at}); `python -m emulators down` first"
                )
                return existing
            progress("found a partly stopped stack; cleaning it up first")
            self.down(progress=lambda _: None)

        log_dir = self.run_dir / "logs"
        state = StackState(
            project=self.project, config=str(self.config_path), started_at=datetime.now(UTC).isoformat()
        )
        began = time.monotonic()
        try:
            self._start_all(state, log_dir, progress)
        except BaseException:
            progress("start-up failed; stopping what was started")
            self._save(state)
            self.down(progress=progress)
            raise
        self._save(state)
        progress(
            f"stack ready in {time.monotonic() - began:.1f}s; `python -m emulators env` prints its variables"
        )
        return state

    def _register(self, state: StackState, started: Started, port: int, url: str) -> None:
        state.components[started.name] = Component(
            started.name, started.pid, port, str(started.log_path), url
        )
        self._save(state)  # so `down` can stop it even if a later component fails

    def _start_all(self, state: StackState, log_dir: Path, progress: Progress) -> None:
        from shared.config import load_config

        want = set(self.components)
        apis = [e for e in API_EMULATORS if e.name in want]
        ports = {name: free_port() for name in want}
        ports.update({e.name + flag: free_port() for e in apis for flag, _, _ in e.extra_ports})
        env = state.env
        env["GOOGLE_CLOUD_PROJECT"] = self.project
        env["LOCAL_REGISTRY_DIR"] = str(self.run_dir / "registry")
        if "pubsub" in want:
            env["PUBSUB_EMULATOR_HOST"] = f"{HOST}:{ports['pubsub']}"
        if "firestore" in want:
            env["FIRESTORE_EMULATOR_HOST"] = f"{HOST}:{ports['firestore']}"
        if "storage" in want:
            env["STORAGE_EMULATOR_HOST"] = f"http://{HOST}:{ports['storage']}"
        if "sink" in want:
            env["WEBHOOK_SINK_URL"] = f"http://{HOST}:{ports['sink']}"
        for emulator in apis:
            env[emulator.variable] = f"{HOST}:{ports[emulator.name]}"
            for flag, variable, _ in emulator.extra_ports:
                state.extra_hosts[emulator.name + flag] = f"{HOST}:{ports[emulator.name + flag]}"
                if variable:
                    env[variable] = f"{HOST}:{ports[emulator.name + flag]}"
            if self.grpc:
                state.grpc_hosts[emulator.name] = f"{HOST}:{free_port()}"
        config = None
        if "functions" in want:
            env["FUNCTIONS_URL"] = f"http://{HOST}:{ports['functions']}"
            env["PIPELINE_CONFIG"] = str(self.config_path)
            # Validate the config with the environment the functions will see, before starting anything.
            config = load_config(self.config_path, env={**os.environ, **env, **self.extra_env})

        t0 = time.monotonic()
        pending: list[tuple[Started, str, Callable[[], bool], str, str]] = []

        def launch(name: str, argv: list[str], where: str, health: str, label: str, **kwargs: Any) -> None:
            started = start_process(name, argv, log_dir, **kwargs)
            self._register(state, started, ports[name], where)
            pending.append((started, label, lambda: http_ok(health), where, name))

        def wait_all(timeout: float = 90.0) -> None:
            for started, label, check, where, name in pending:
                wait_until(check, label, timeout, started)
                _ready(progress, label, where, f"  ({time.monotonic() - t0:.1f}s)")
                emulator = next((e for e in apis if e.name == name), None)
                for _, variable, extra_label in emulator.extra_ports if emulator else ():
                    if variable:
                        _ready(progress, extra_label, env[variable])
            pending.clear()

        # The Java emulators take the longest: launch everything that depends on nothing, then wait.
        if "pubsub" in want:
            where = env["PUBSUB_EMULATOR_HOST"]
            argv = official.pubsub_argv(HOST, ports["pubsub"], self.project)
            launch("pubsub", argv, where, f"http://{where}/", "Pub/Sub emulator")
        if "firestore" in want:
            where = env["FIRESTORE_EMULATOR_HOST"]
            argv = official.firestore_argv(HOST, ports["firestore"], self.project)
            launch("firestore", argv, where, f"http://{where}/", "Firestore emulator")
        if "sink" in want:
            where = env["WEBHOOK_SINK_URL"]
            argv = _python_module("emulators.sink", "--host", HOST, "--port", str(ports["sink"]))
            launch("sink", argv, where, f"{where}/_emulator/health", "webhook sink")
        if "storage" in want:
            from emulators.eventing import bucket_routes

            routes_file = self.run_dir / "storage-routes.json"
            routes = bucket_routes(config, env["FUNCTIONS_URL"]) if config is not None else {}
            routes_file.write_text(json.dumps(routes, indent=2))
            where = env["STORAGE_EMULATOR_HOST"]
            argv = _python_module(
                "emulators.storage",
                *("--host", HOST, "--port", str(ports["storage"]), "--project", self.project),
                *("--data-dir", str(self.run_dir / "storage"), "--routes-file", str(routes_file)),
            )
            launch("storage", argv, where, f"{where}/_emulator/health", "storage emulator")
        wait_all()

        # Our API emulators (no official ones exist); they publish to Pub/Sub and read/write storage.
        api_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        for emulator in apis:
            argv = _python_module(
                emulator.module,
                *("--host", HOST, "--port", str(ports[emulator.name]), "--project", self.project),
                *("--state-dir", str(self.run_dir / emulator.name), *emulator.extra_args),
            )
            for flag, _, _ in emulator.extra_ports:
                argv += [flag, str(ports[emulator.name + flag])]
            if emulator.name in state.grpc_hosts:
                argv += ["--grpc-port", state.grpc_hosts[emulator.name].rsplit(":", 1)[1]]
            argv += self.api_args.get(emulator.name, [])
            where = env[emulator.variable]
            label = f"{emulator.label} emulator"
            launch(
                emulator.name, argv, where, f"http://{where}/_emulator/health", label, env=api_env, cwd=ROOT
            )
        wait_all(60)

        if config is not None:
            sink = env.get("WEBHOOK_SINK_URL")
            # Notification channels of the shipped config point at the sink unless the user set them.
            defaults = (
                {
                    "SLACK_WEBHOOK_URL": f"{sink}/hook/slack",
                    "GOOGLE_CHAT_WEBHOOK_URL": f"{sink}/hook/chat",
                    "AUDIT_WEBHOOK_URL": f"{sink}/hook/audit",
                }
                if sink
                else {}
            )
            function_env = {**defaults, **os.environ, **env, **self.extra_env, "PYTHONUNBUFFERED": "1"}
            argv = _python_module(
                "emulators.function_host", "--host", HOST, "--port", str(ports["functions"])
            )
            argv += ["--source", str(ROOT / "main.py")]
            for extra in self.extra_sources:
                argv += ["--extra-source", str(Path(extra).resolve())]
            where = env["FUNCTIONS_URL"]
            launch(
                "functions",
                argv,
                where,
                f"{where}/_emulator/health",
                "function host",
                env=function_env,
                cwd=ROOT,
            )
            wait_all(60)
            if "pubsub" in want:
                self._provision(state, config, progress)

    def _provision(self, state: StackState, config: Any, progress: Progress) -> None:
        from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

        from emulators.eventing import provision

        saved = os.environ.get("PUBSUB_EMULATOR_HOST")
        os.environ["PUBSUB_EMULATOR_HOST"] = state.env["PUBSUB_EMULATOR_HOST"]
        try:
            publisher, subscriber = PublisherClient(), SubscriberClient()
            try:
                result = provision(config, self.project, state.env["FUNCTIONS_URL"], publisher, subscriber)
            finally:
                subscriber.close()
        finally:
            if saved is None:
                os.environ.pop("PUBSUB_EMULATOR_HOST", None)
            else:
                os.environ["PUBSUB_EMULATOR_HOST"] = saved
        state.dead_letter_subscriptions = result.dead_letter_subscriptions
        progress(
            f"  ✓ {'eventing':<21} {len(result.topics)} topics, "
            f"{len(result.subscriptions)} push subscriptions (each with a dead-letter topic), "
            f"{len(config.buckets)} bucket trigger(s)"
        )

    # ------------------------------------------------------------------------------------- down

    def down(self, progress: Progress = print) -> None:
        state = self.load()
        if state is None:
            progress("no stack is running")
            return
        # Stop in reverse start order: the function host before the services it calls.
        for component in reversed(list(state.components.values())):
            if component.alive():
                stop_group(component.pid)
                progress(f"  ✓ stopped {component.name} (pid {component.pid})")
        leftovers = [c.name for c in state.components.values() if c.alive()]
        if leftovers:
            raise StackError(f"could not stop: {', '.join(leftovers)}")
        self.state_file.unlink(missing_ok=True)

    # ----------------------------------------------------------------------------------- status

    def status(self) -> list[tuple[str, bool, str]]:
        state = self.load()
        if state is None:
            return []
        return [(c.name, c.alive(), c.url) for c in state.components.values()]

    def env(self) -> dict[str, str]:
        state = self.running()
        if state is None:
            raise StackError("the stack is not running; start it with `python -m emulators up`")
        return dict(state.env)
