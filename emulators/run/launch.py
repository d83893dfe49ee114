"""Start the Cloud Run emulator (Monitoring in the same process) alone, through the project's stack.

Used by the integration tests; the stack starts it too (``python -m emulators up``)::

    emulator = start_run_emulator(run_dir, "my-project")
    env.update(emulator.env())  # RUN_EMULATOR_HOST, MONITORING_EMULATOR_HOST (see shared.clients)
    ...
    emulator.stop()             # SIGTERM: the emulator stops its revisions and router, then exits
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from emulators.common.proc import Started
from emulators.stack import Stack

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class RunEmulator:
    stack: Stack
    started: Started
    host: str  # RUN_EMULATOR_HOST (REST, admin, health)
    monitoring_host: str  # MONITORING_EMULATOR_HOST (gRPC: the Monitoring client speaks nothing else)
    monitoring_rest: str  # Monitoring REST, admin and health

    def env(self) -> dict[str, str]:
        return {"RUN_EMULATOR_HOST": self.host, "MONITORING_EMULATOR_HOST": self.monitoring_host}

    def stop(self) -> None:
        self.stack.down(progress=lambda _line: None)


def start_run_emulator(root: Path, project: str, extra_args: Sequence[str] = ()) -> RunEmulator:
    """``python -m emulators.run`` on free loopback ports; state, registry and logs under ``root``."""
    stack = Stack(root, project=project, components=["run"], api_args={"run": list(extra_args)})
    state = stack.up(progress=lambda _line: None)
    component = state.components["run"]
    return RunEmulator(
        stack=stack,
        started=Started(component.name, component.pid, Path(component.log)),
        host=state.env["RUN_EMULATOR_HOST"],
        monitoring_host=state.env["MONITORING_EMULATOR_HOST"],
        monitoring_rest=state.extra_hosts["run--monitoring-port"],
    )
