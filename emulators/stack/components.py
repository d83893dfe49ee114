"""The table of everything the local stack can run, and the order it starts in.

Each row says how to start the component, how to know it is ready, which variables it exports (the ones
``python -m emulators env`` prints) and which components must be ready before it starts. The launcher
(:mod:`emulators.stack.launcher`) reads nothing else: adding a component is adding a row.

Start order comes from ``after``: every selected component whose selected dependencies are ready starts
at once (a *wave*), then the launcher waits for all of them. With the full table that gives four waves:
the official emulators, the sink and storage (the Java emulators take longest, so they start first); then
our API emulators, which publish to Pub/Sub and read storage (then the seed images start building); then the
function host, which calls them all, followed by the eventing provisioned from the pipeline config; then the
reconcile ticker, which calls the function host. ``up`` ends by waiting for the seed builds.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from emulators.common.proc import StackError
from emulators.stack import official
from emulators.stack.state import StackState

if TYPE_CHECKING:
    from shared.config import PipelineConfig

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
Progress = Callable[[str], None]


@dataclass
class Launch:
    """What every component's start may read, fixed before the first process starts: all ports are chosen
    and all variables known up front, so a component can be told where a later one will listen."""

    run_dir: Path
    project: str
    config_path: Path
    extra_sources: tuple[Path, ...]
    extra_env: dict[str, str]
    selected: frozenset[str]
    state: StackState
    ports: dict[str, int] = field(default_factory=dict)  # component name (or name + flag) -> port
    endpoints: dict[str, str] = field(default_factory=dict)  # component name -> where it listens
    config: PipelineConfig | None = None  # loaded only when a selected component needs it
    #: Work a ``then`` started in the background, waited for once every component is ready.
    finishers: list[Callable[[Progress], None]] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        """Every variable the stack exports (``python -m emulators env``)."""
        return self.state.env


@dataclass(frozen=True)
class ExtraPort:
    """A further port a component serves: the flag that receives it, and the variable exported for it."""

    flag: str
    variable: str = ""
    label: str = ""  # shown in progress once the component is ready (when a variable is exported)


def _inherit(_launch: Launch) -> dict[str, str] | None:
    return None  # the caller's own environment


def _nothing(_launch: Launch) -> dict[str, str]:
    return {}


@dataclass(frozen=True)
class ComponentSpec:
    """One row of the table."""

    name: str
    label: str  # for progress lines and start-up errors
    variable: str  # exported with where the component listens ("" exports nothing)
    command: Callable[[ComponentSpec, Launch], list[str]]  # how to start it
    module: str = ""  # ``python -m MODULE`` components run from the checkout
    after: tuple[str, ...] = ()  # components that must be ready first, when they are part of the stack
    url_scheme: bool = False  # the variable carries ``http://`` (the storage client needs it)
    health: str = "/_emulator/health"  # readiness: GET answers below 500
    ready_timeout: float = 60.0
    environment: Callable[[Launch], dict[str, str] | None] = _inherit
    extra_ports: tuple[ExtraPort, ...] = ()
    grpc: bool = False  # also serves gRPC (``--grpc-port``) when the stack asks for it
    exports: Callable[[Launch], dict[str, str]] = _nothing  # variables besides ``variable``
    needs_config: bool = False  # validate the pipeline config before anything starts
    then: Callable[[Launch, Progress], None] | None = None  # once ready

    def endpoint(self, port: int) -> str:
        return f"http://{HOST}:{port}" if self.url_scheme else f"{HOST}:{port}"

    def health_url(self, endpoint: str) -> str:
        base = endpoint if endpoint.startswith("http") else f"http://{endpoint}"
        return f"{base}{self.health}"


def _python(spec: ComponentSpec, *args: str) -> list[str]:
    return [sys.executable, "-m", spec.module, *args]


def _pubsub(spec: ComponentSpec, launch: Launch) -> list[str]:
    return official.pubsub_argv(HOST, launch.ports[spec.name], launch.project)


def _firestore(spec: ComponentSpec, launch: Launch) -> list[str]:
    return official.firestore_argv(HOST, launch.ports[spec.name], launch.project)


def _sink(spec: ComponentSpec, launch: Launch) -> list[str]:
    return _python(spec, "--host", HOST, "--port", str(launch.ports[spec.name]))


def _storage(spec: ComponentSpec, launch: Launch) -> list[str]:
    from emulators.stack.eventing import bucket_routes

    # Bucket triggers of the config become the emulator's routes (none without a function host).
    routes_file = launch.run_dir / "storage-routes.json"
    functions_url = launch.env.get("FUNCTIONS_URL")
    config = launch.config
    routes = bucket_routes(config, functions_url) if config is not None and functions_url else {}
    routes_file.write_text(json.dumps(routes, indent=2))
    return _python(
        spec,
        *("--host", HOST, "--port", str(launch.ports[spec.name]), "--project", launch.project),
        *("--data-dir", str(launch.run_dir / "storage"), "--routes-file", str(routes_file)),
    )


def _api_emulator(spec: ComponentSpec, launch: Launch) -> list[str]:
    return _python(
        spec,
        *("--host", HOST, "--port", str(launch.ports[spec.name]), "--project", launch.project),
        *("--state-dir", str(launch.run_dir / spec.name)),
    )


def _stack_env(launch: Launch) -> dict[str, str]:
    """The caller's environment plus the stack's variables: API emulators reach Pub/Sub and storage."""
    return {**os.environ, **launch.env, "PYTHONUNBUFFERED": "1"}


def _function_host(spec: ComponentSpec, launch: Launch) -> list[str]:
    argv = _python(spec, "--host", HOST, "--port", str(launch.ports[spec.name]))
    argv += ["--source", str(ROOT / "main.py")]
    for extra in launch.extra_sources:
        argv += ["--extra-source", str(Path(extra).resolve())]
    return argv


def _function_env(launch: Launch) -> dict[str, str]:
    sink = launch.env.get("WEBHOOK_SINK_URL")
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
    return {**defaults, **os.environ, **launch.env, **launch.extra_env, "PYTHONUNBUFFERED": "1"}


def _function_exports(launch: Launch) -> dict[str, str]:
    return {"PIPELINE_CONFIG": str(launch.config_path)}


def _provision_eventing(launch: Launch, progress: Progress) -> None:
    """Topics, push subscriptions and dead-letter topics from the config (what Eventarc does)."""
    config = launch.config
    if config is None or "pubsub" not in launch.selected:
        return
    from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

    from emulators.stack.eventing import provision

    saved = os.environ.get("PUBSUB_EMULATOR_HOST")
    os.environ["PUBSUB_EMULATOR_HOST"] = launch.env["PUBSUB_EMULATOR_HOST"]
    try:
        publisher, subscriber = PublisherClient(), SubscriberClient()
        try:
            result = provision(config, launch.project, launch.env["FUNCTIONS_URL"], publisher, subscriber)
        finally:
            subscriber.close()
    finally:
        if saved is None:
            os.environ.pop("PUBSUB_EMULATOR_HOST", None)
        else:
            os.environ["PUBSUB_EMULATOR_HOST"] = saved
    launch.state.dead_letter_subscriptions = result.dead_letter_subscriptions
    progress(
        f"  ✓ {'eventing':<21} {len(result.topics)} topics, "
        f"{len(result.subscriptions)} push subscriptions (each with a dead-letter topic), "
        f"{len(config.buckets)} bucket trigger(s)"
    )


def _seed_images(launch: Launch, progress: Progress) -> None:
    """Create the chain's buckets and start building the images the config's models name
    (emulators/stack/seeding.py); ``up`` waits for the builds at its end. Only in a stack that runs the
    functions (a config) with storage: a Cloud Build test stack starts no build it did not ask for."""
    config = launch.config
    if config is None or not {"storage", "cloudbuild"} <= launch.selected:
        return
    from emulators.stack import seeding
    from emulators.stack.launcher import applied_env

    with applied_env(launch.env):
        finish = seeding.start(config, launch.project, progress)
    if finish is not None:

        def finish_in_env(report: Progress) -> None:
            with applied_env(launch.env):
                finish(report)

        launch.finishers.append(finish_in_env)


def _ticker(spec: ComponentSpec, launch: Launch) -> list[str]:
    functions_url = launch.env.get("FUNCTIONS_URL")
    if not functions_url:
        raise StackError("the reconcile ticker needs the function host: add `functions` to the components")
    argv = _python(spec, "--host", HOST, "--port", str(launch.ports[spec.name]))
    return [*argv, "--functions-url", functions_url]


_API_AFTER = ("pubsub", "storage")  # Cloud Build publishes to Pub/Sub; all three read sources from storage

#: Everything a stack can run, in start order within a wave (and the order of ``status``).
TABLE: tuple[ComponentSpec, ...] = (
    # The official emulators answer their root path once they serve.
    ComponentSpec(
        "pubsub", "Pub/Sub emulator", "PUBSUB_EMULATOR_HOST", _pubsub, health="/", ready_timeout=90.0
    ),
    ComponentSpec(
        "firestore",
        "Firestore emulator",
        "FIRESTORE_EMULATOR_HOST",
        _firestore,
        health="/",
        ready_timeout=90.0,
    ),
    ComponentSpec(
        "sink",
        "webhook sink",
        "WEBHOOK_SINK_URL",
        _sink,
        module="emulators.stack.sink",
        url_scheme=True,
        ready_timeout=90.0,
    ),
    ComponentSpec(
        "storage",
        "storage emulator",
        "STORAGE_EMULATOR_HOST",
        _storage,
        module="emulators.storage",
        url_scheme=True,
        ready_timeout=90.0,
    ),
    ComponentSpec(
        "cloudbuild",
        "Cloud Build emulator",
        "CLOUDBUILD_EMULATOR_HOST",
        _api_emulator,
        module="emulators.cloudbuild",
        after=_API_AFTER,
        environment=_stack_env,
        grpc=True,
        then=_seed_images,
    ),
    ComponentSpec(
        "vertex",
        "Vertex AI emulator",
        "VERTEX_EMULATOR_HOST",
        _api_emulator,
        module="emulators.vertex",
        after=_API_AFTER,
        environment=_stack_env,
        grpc=True,
    ),
    # Cloud Monitoring runs inside the Cloud Run emulator's process: it reads the router's request metrics
    # in memory. Its client library speaks only gRPC, so MONITORING_EMULATOR_HOST is the gRPC port.
    ComponentSpec(
        "run",
        "Cloud Run emulator",
        "RUN_EMULATOR_HOST",
        _api_emulator,
        module="emulators.run",
        after=_API_AFTER,
        environment=_stack_env,
        grpc=True,
        extra_ports=(
            ExtraPort("--monitoring-port"),
            ExtraPort("--monitoring-grpc-port", "MONITORING_EMULATOR_HOST", "Monitoring (gRPC)"),
        ),
    ),
    ComponentSpec(
        "functions",
        "function host",
        "FUNCTIONS_URL",
        _function_host,
        module="emulators.stack.function_host",
        after=("pubsub", "firestore", "sink", "storage", "cloudbuild", "vertex", "run"),
        url_scheme=True,
        environment=_function_env,
        exports=_function_exports,
        needs_config=True,
        then=_provision_eventing,
    ),
    # Cloud Scheduler's part: POST FUNCTIONS_URL/reconcile every few seconds (emulators/stack/ticker.py).
    ComponentSpec(
        "ticker",
        "reconcile ticker",
        "",
        _ticker,
        module="emulators.stack.ticker",
        after=("functions",),
        url_scheme=True,
        environment=_stack_env,
    ),
)

BY_NAME: dict[str, ComponentSpec] = {spec.name: spec for spec in TABLE}
COMPONENTS: tuple[str, ...] = tuple(BY_NAME)
#: Our emulators of Google APIs that have no official one (``python -m MODULE --state-dir ...``).
API_EMULATORS: tuple[ComponentSpec, ...] = tuple(BY_NAME[name] for name in ("cloudbuild", "vertex", "run"))


def start_waves(specs: Sequence[ComponentSpec]) -> list[list[ComponentSpec]]:
    """Group ``specs`` into waves: each starts once every selected dependency is in an earlier wave."""
    selected = {spec.name for spec in specs}
    done: set[str] = set()
    waves: list[list[ComponentSpec]] = []
    remaining = list(specs)
    while remaining:
        wave = [spec for spec in remaining if all(d in done or d not in selected for d in spec.after)]
        if not wave:
            raise StackError(f"the components {[spec.name for spec in remaining]} wait for each other")
        waves.append(wave)
        done.update(spec.name for spec in wave)
        remaining = [spec for spec in remaining if spec.name not in done]
    return waves
