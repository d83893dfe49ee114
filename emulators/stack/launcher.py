"""The one launcher of the local stack: start the components of :mod:`emulators.stack.components` on free
loopback ports, each in its own process group, wait for their readiness checks, stop them by PID."""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from emulators.common.proc import (
    StackError,
    Started,
    free_port,
    http_ok,
    start_process,
    stop_group,
    wait_until,
)
from emulators.stack.components import (
    COMPONENTS,
    HOST,
    ROOT,
    TABLE,
    ComponentSpec,
    Launch,
    Progress,
    start_waves,
)
from emulators.stack.state import Component, StackState, load_state, save_state

DEFAULT_PROJECT = "demo-project"


def default_run_dir() -> Path:
    return Path(os.environ.get("EMULATORS_RUN_DIR") or ROOT / ".run")


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
        ``grpc`` also serves gRPC from the API emulators; ``api_args`` adds flags per component."""
        self.run_dir = (run_dir or default_run_dir()).resolve()
        self.project = project or os.environ.get("GOOGLE_CLOUD_PROJECT") or DEFAULT_PROJECT
        self.config_path = (
            config_path or Path(os.environ.get("PIPELINE_CONFIG", ROOT / "pipeline.yaml"))
        ).resolve()
        self.extra_sources = extra_sources
        self.extra_env = dict(extra_env or {})
        self.state_file = self.run_dir / "stack.json"
        self.components = tuple(COMPONENTS if components is None else components)
        self.grpc = grpc
        self.api_args = {name: list(args) for name, args in (api_args or {}).items()}
        unknown = (set(self.components) | set(self.api_args)) - set(COMPONENTS)
        if unknown:
            raise StackError(f"unknown component(s) {sorted(unknown)}; known: {', '.join(COMPONENTS)}")

    # ------------------------------------------------------------------------------------ state

    def load(self) -> StackState | None:
        return load_state(self.state_file)

    def _save(self, state: StackState) -> None:
        save_state(self.state_file, state)

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

        state = StackState(
            project=self.project, config=str(self.config_path), started_at=datetime.now(UTC).isoformat()
        )
        began = time.monotonic()
        try:
            self._start_all(state, progress)
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

    def plan(self, state: StackState) -> tuple[list[ComponentSpec], Launch]:
        """Choose every port and variable before anything starts; validate the config if one is needed."""
        specs = [spec for spec in TABLE if spec.name in self.components]
        launch = Launch(
            run_dir=self.run_dir,
            project=self.project,
            config_path=self.config_path,
            extra_sources=self.extra_sources,
            extra_env=self.extra_env,
            selected=frozenset(spec.name for spec in specs),
            state=state,
        )
        env = state.env
        env["GOOGLE_CLOUD_PROJECT"] = self.project
        env["LOCAL_REGISTRY_DIR"] = str(self.run_dir / "registry")
        for spec in specs:
            launch.ports[spec.name] = free_port()
            launch.endpoints[spec.name] = spec.endpoint(launch.ports[spec.name])
            if spec.variable:
                env[spec.variable] = launch.endpoints[spec.name]
            for extra in spec.extra_ports:
                key = spec.name + extra.flag
                launch.ports[key] = free_port()
                state.extra_hosts[key] = f"{HOST}:{launch.ports[key]}"
                if extra.variable:
                    env[extra.variable] = state.extra_hosts[key]
            if self.grpc and spec.grpc:
                state.grpc_hosts[spec.name] = f"{HOST}:{free_port()}"
            env.update(spec.exports(launch))
        if any(spec.needs_config for spec in specs):
            from shared.config import load_config

            # Validate with the environment the functions will see, before starting anything.
            launch.config = load_config(self.config_path, env={**os.environ, **env, **self.extra_env})
        return specs, launch

    def _start_all(self, state: StackState, progress: Progress) -> None:
        specs, launch = self.plan(state)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        log_dir = self.run_dir / "logs"
        began = time.monotonic()
        for wave in start_waves(specs):
            started = [(spec, self._start(spec, launch, log_dir)) for spec in wave]
            for spec, process in started:
                where = launch.endpoints[spec.name]
                ready = functools.partial(http_ok, spec.health_url(where))
                wait_until(ready, spec.label, spec.ready_timeout, process)
                progress(f"  ✓ {spec.label:<21} {where}  ({time.monotonic() - began:.1f}s)")
                for extra in spec.extra_ports:
                    if extra.variable:
                        progress(f"  ✓ {extra.label:<21} {state.env[extra.variable]}")
            for spec in wave:
                if spec.then is not None:
                    spec.then(launch, progress)
        for finish in launch.finishers:  # background work a `then` started (the seed builds)
            finish(progress)

    def _start(self, spec: ComponentSpec, launch: Launch, log_dir: Path) -> Started:
        state = launch.state
        argv = spec.command(spec, launch)
        for extra in spec.extra_ports:
            argv += [extra.flag, str(launch.ports[spec.name + extra.flag])]
        if spec.name in state.grpc_hosts:
            argv += ["--grpc-port", state.grpc_hosts[spec.name].rsplit(":", 1)[1]]
        argv += self.api_args.get(spec.name, [])
        cwd = ROOT if spec.module else None
        started = start_process(spec.name, argv, log_dir, env=spec.environment(launch), cwd=cwd)
        state.components[spec.name] = Component(
            spec.name,
            started.pid,
            launch.ports[spec.name],
            str(started.log_path),
            launch.endpoints[spec.name],
        )
        self._save(state)  # so `down` can stop it even if a later component fails
        return started

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
