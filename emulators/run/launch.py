"""Start the Cloud Run emulator (Monitoring in the same process) as a child process group; stop it by PID.

Used by the integration tests; the stack orchestrator can use it too::

    emulator = start_run_emulator(run_dir, "my-project", env)
    env.update(emulator.env())  # RUN_EMULATOR_HOST, MONITORING_EMULATOR_HOST (see shared.clients)
    ...
    emulator.stop()             # SIGTERM: the emulator stops its revisions and router, then exits
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from emulators._proc import Started, free_port, http_ok, start_process, stop_group, wait_until

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class RunEmulator:
    started: Started
    host: str  # RUN_EMULATOR_HOST (REST, admin, health)
    monitoring_host: str  # MONITORING_EMULATOR_HOST (gRPC: the Monitoring client speaks nothing else)
    monitoring_rest: str  # Monitoring REST, admin and health

    def env(self) -> dict[str, str]:
        return {"RUN_EMULATOR_HOST": self.host, "MONITORING_EMULATOR_HOST": self.monitoring_host}

    def stop(self, grace_seconds: float = 8.0) -> None:
        stop_group(self.started.pid, grace_seconds=grace_seconds)


def start_run_emulator(
    root: Path,
    project: str,
    env: dict[str, str],
    extra_args: Sequence[str] = (),
    host: str = "127.0.0.1",
    timeout: float = 60.0,
) -> RunEmulator:
    """``python -m emulators.run`` on free loopback ports; state in ``root/run``, log in ``root/logs``."""
    port, monitoring_port, monitoring_grpc = free_port(host), free_port(host), free_port(host)
    argv = [
        sys.executable,
        "-m",
        "emulators.run",
        "--host",
        host,
        "--port",
        str(port),
        "--project",
        project,
        "--state-dir",
        str(root / "run"),
        "--monitoring-port",
        str(monitoring_port),
        "--monitoring-grpc-port",
        str(monitoring_grpc),
        *extra_args,
    ]
    started = start_process("run", argv, root / "logs", env=env, cwd=ROOT)
    emulator = RunEmulator(
        started=started,
        host=f"{host}:{port}",
        monitoring_host=f"{host}:{monitoring_grpc}",
        monitoring_rest=f"{host}:{monitoring_port}",
    )
    try:
        wait_until(
            lambda: http_ok(f"http://{emulator.host}/_emulator/health"),
            "Cloud Run emulator",
            timeout,
            started,
        )
        wait_until(
            lambda: http_ok(f"http://{emulator.monitoring_rest}/_emulator/health"),
            "Monitoring emulator",
            10,
            started,
        )
    except BaseException:
        emulator.stop()
        raise
    return emulator
