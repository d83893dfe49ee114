"""The servers of one bench run: started on free loopback ports, each in its own process group, stopped by
PID when the run ends (also on Ctrl-C or an error), so ``make bench`` leaves nothing running."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import requests

from emulators.common.proc import free_port, port_open, spawn, stop_group
from emulators.stack import ROOT, Stack, StackState, applied_env

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "pipeline.yaml"
BARE = HERE / "bare.py"
PROJECT = "bench-project"
#: The stack the hot paths need: no Cloud Build, Vertex AI or Cloud Run (their simulated work is not
#: measured by items 1-3 and 5), no reconcile ticker (the bench ticks when it measures a tick).
COMPONENTS = ("pubsub", "firestore", "sink", "storage", "functions")

Progress = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@contextlib.contextmanager
def bench_stack(progress: Progress = _stderr) -> Iterator[StackState]:
    """The bench's stack, its variables applied to this process while it runs."""
    with tempfile.TemporaryDirectory(prefix="bench-") as run_dir:
        stack = Stack(
            Path(run_dir),
            project=PROJECT,
            config_path=CONFIG,
            extra_sources=(BARE,),
            components=COMPONENTS,
        )
        state = stack.up(progress=lambda line: progress(f"  {line.strip()}"))
        try:
            with applied_env({**state.env, "PIPELINE_CONFIG": str(CONFIG)}):
                yield state
        finally:
            stack.down(progress=lambda line: progress(f"  {line.strip()}"))


def cold_start(target: str, source: Path, send: Callable[[str], int], log_dir: Path) -> float:
    """Seconds from spawning ``functions-framework --target TARGET`` until ``send(url)`` got its answer.

    The process is the one Cloud Functions starts per instance (the framework's own CLI on the source
    file), with this process's environment (the emulators' variables); it is stopped by PID after.
    """
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "functions_framework",
        "--target",
        target,
        "--source",
        str(source),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    began = time.perf_counter()
    process = spawn(argv, log_dir / f"cold-{target}.log", env=env, cwd=ROOT)
    try:
        while not port_open("127.0.0.1", port, timeout=0.2):
            if process.poll() is not None:
                raise RuntimeError(f"{target} exited during start-up (see {log_dir}/cold-{target}.log)")
            time.sleep(0.002)
        status = send(f"http://127.0.0.1:{port}")
        elapsed = time.perf_counter() - began
        if status >= 500:
            raise RuntimeError(f"{target}: first event answered {status}")
        return elapsed
    finally:
        stop_group(process.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)


def post_json(url: str, body: object, headers: dict[str, str] | None = None, timeout: float = 30.0) -> int:
    return requests.post(url, json=body, headers=headers, timeout=timeout).status_code
