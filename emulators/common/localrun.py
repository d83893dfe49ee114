"""Run an emulated container's command as a local process.

Shared by the emulators that "run" images (Cloud Build steps, Vertex AI jobs, later Cloud Run revisions):
the image's ``python``/``python3``/``pip`` are mapped to the emulator's own interpreter (so the packages of
the venv are available), absolute paths that exist inside the image snapshot are mapped into the working
copy, the process runs in its own process group with its output captured to a log file, and timeouts and
cancellation stop the whole group.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from emulators.common.proc import spawn
from emulators.common.registry import ImageRecord

_PACKAGE_ROOT = Path(__file__).resolve().parents[2]
_PYTHON = re.compile(r"^(?:/usr(?:/local)?/bin/)?python(?:3(?:\.\d+)?)?$")
_PIP = re.compile(r"^(?:/usr(?:/local)?/bin/)?pip(?:3(?:\.\d+)?)?$")


def map_executable(argv: Sequence[str]) -> list[str]:
    """``python``/``python3.11``/``/usr/local/bin/python`` → this interpreter; ``pip`` → ``python -m pip``."""
    if not argv:
        return []
    head, rest = argv[0], list(argv[1:])
    if _PYTHON.match(head):
        return [sys.executable, *rest]
    if _PIP.match(head):
        return [sys.executable, "-m", "pip", *rest]
    return [head, *rest]


def shim_dir(root: Path) -> Path:
    """A directory of ``python``/``python3``/``pip`` wrappers for this interpreter, to put first on PATH.

    Shell commands (``sh -c "python -m trainer"``) then find the venv's interpreter too; ``docker`` is the
    local-registry CLI of :mod:`emulators.common.dockercli`.
    """
    directory = root / "bin"
    directory.mkdir(parents=True, exist_ok=True)
    for name, target in (
        ("python", f'exec "{sys.executable}" "$@"'),
        ("python3", f'exec "{sys.executable}" "$@"'),
        ("pip", f'exec "{sys.executable}" -m pip "$@"'),
        ("pip3", f'exec "{sys.executable}" -m pip "$@"'),
        (
            "docker",
            f'PYTHONPATH="{_PACKAGE_ROOT}${{PYTHONPATH:+:$PYTHONPATH}}" '
            f'exec "{sys.executable}" -m emulators.common.dockercli "$@"',
        ),
    ):
        path = directory / name
        script = f"#!/bin/sh\n{target}\n"
        # Rewrite a shim left by an older checkout (another interpreter, a moved module), keep a current one.
        if not path.exists() or path.read_text() != script:
            temporary = path.with_name(f".{name}.{os.getpid()}")
            temporary.write_text(script)
            temporary.chmod(0o755)
            temporary.replace(path)  # atomic: a step running the old shim never reads half a script
    return directory


def base_env(shims: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The host environment with the shims first on PATH, unbuffered Python output, and ``extra`` on top."""
    env = dict(os.environ)
    env["PATH"] = f"{shims}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PYTHONHOME", None)
    if extra:
        env.update(extra)
    return env


@dataclass
class Invocation:
    argv: list[str]
    cwd: Path
    env: dict[str, str]


class RunError(RuntimeError):
    """The image cannot be run locally; the message says why."""


def _map_paths(values: Sequence[str], root: Path) -> list[str]:
    mapped = []
    for value in values:
        if value.startswith("/") and len(value) > 1:
            inside = root / value.lstrip("/")
            top = root / value.lstrip("/").split("/", 1)[0]
            if inside.exists() or top.is_dir():
                mapped.append(str(inside))
                continue
        mapped.append(value)
    return mapped


def container_invocation(
    image: ImageRecord,
    rootfs_copy: Path,
    shims: Path,
    command: Sequence[str] | None = None,
    args: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Invocation:
    """Prepare running ``image`` the Kubernetes way (``command`` replaces ENTRYPOINT, ``args`` replace CMD).

    The image snapshot is copied to ``rootfs_copy`` (its files stay untouched) and the process starts in
    the image's WORKDIR inside that copy.
    """
    if rootfs_copy.exists():
        shutil.rmtree(rootfs_copy)
    shutil.copytree(image.rootfs, rootfs_copy, symlinks=True)
    entry = list(command) if command else list(image.entrypoint)
    tail = list(args) if args else ([] if command else list(image.cmd))
    argv = entry + tail
    if not argv:
        raise RunError(f"image {image.display_name} has no ENTRYPOINT or CMD and no command was given")
    process_env: dict[str, str] = {}
    for key, value in image.env.items():
        if key == "PATH":
            continue  # the host's tools live elsewhere; the shims already lead PATH
        if key == "PYTHONPATH":
            value = os.pathsep.join(_map_paths(value.split(os.pathsep), rootfs_copy))
        process_env[key] = value
    process_env.update(env or {})
    cwd = rootfs_copy / image.workdir.lstrip("/")
    cwd.mkdir(parents=True, exist_ok=True)
    return Invocation(
        argv=map_executable(_map_paths(argv, rootfs_copy)),
        cwd=cwd,
        env=base_env(shims, process_env),
    )


@dataclass
class Outcome:
    exit_code: int | None
    timed_out: bool
    cancelled: bool
    seconds: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.cancelled


class LocalProcess:
    """One local process in its own process group, output to ``log_path``; cancellable from any thread."""

    _live: set[int] = set()
    _live_lock = threading.Lock()

    def __init__(self, invocation: Invocation, log_path: Path) -> None:
        self.invocation = invocation
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self._cancelled = threading.Event()

    def start(self) -> None:
        try:
            self._process = spawn(
                self.invocation.argv, self.log_path, env=self.invocation.env, cwd=self.invocation.cwd
            )
        except OSError as error:
            raise RunError(f"cannot start {self.invocation.argv[0]!r}: {error.strerror or error}") from error
        with LocalProcess._live_lock:
            LocalProcess._live.add(self._process.pid)

    def wait(self, timeout: float | None) -> Outcome:
        """Wait for exit, or stop the group once ``timeout`` seconds have passed."""
        if self._process is None:
            raise RuntimeError("process not started")
        started = time.monotonic()
        timed_out = False
        try:
            self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            self.kill()
            self._process.wait()
        finally:
            with LocalProcess._live_lock:
                LocalProcess._live.discard(self._process.pid)
            self.kill()  # nothing the command left in its group survives it
        cancelled = self._cancelled.is_set()
        return Outcome(
            exit_code=None if (timed_out or cancelled) else self._process.returncode,
            timed_out=timed_out and not cancelled,
            cancelled=cancelled,
            seconds=time.monotonic() - started,
        )

    def run(self, timeout: float | None) -> Outcome:
        self.start()
        return self.wait(timeout)

    def cancel(self) -> None:
        self._cancelled.set()
        self.kill()

    def kill(self) -> None:
        """SIGTERM the group, SIGKILL it after a grace period; the leader is reaped through Popen."""
        process = self._process
        if process is None:
            return
        _signal_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            process.poll()
            if not _group_alive(process.pid):
                return
            time.sleep(0.05)
        _signal_group(process.pid, signal.SIGKILL)

    @classmethod
    def kill_all(cls) -> None:
        """Stop every process group still running (emulator shutdown)."""
        with cls._live_lock:
            pids = list(cls._live)
        for pid in pids:
            _signal_group(pid, signal.SIGKILL)


def _signal_group(pgid: int, signum: int) -> None:
    if pgid > 1:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signum)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
