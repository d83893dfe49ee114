"""A Cloud Run revision as a local process: started from an image of the local registry, ready when it
accepts connections on ``PORT`` (or answers its HTTP startup probe), stopped with its whole process group.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from emulators.common.localrun import Invocation, log_tail
from emulators.common.proc import spawn, stop_group
from emulators.run.router import port_accepts

log = logging.getLogger("emulators.run.revisions")


@dataclass
class Readiness:
    ready: bool
    message: str


class RevisionProcess:
    """One revision's process, in its own session (so its own process group)."""

    def __init__(self, name: str, invocation: Invocation, log_path: Path, port: int) -> None:
        self.name = name
        self.invocation = invocation
        self.log_path = log_path
        self.port = port
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        with self._lock:
            if self._stopped.is_set():
                raise RuntimeError(f"revision {self.name} was stopped before it started")
            self._process = spawn(
                self.invocation.argv, self.log_path, env=self.invocation.env, cwd=self.invocation.cwd
            )
        log.info("revision %s started as pid %s on port %s", self.name, self._process.pid, self.port)

    def exit_code(self) -> int | None:
        """The exit status once the process has ended, else None."""
        process = self._process
        return None if process is None else process.poll()

    def wait_ready(self, timeout: float, probe_path: str | None = None) -> Readiness:
        """Poll until the port accepts connections (or ``probe_path`` answers 2xx/3xx), the process exits,
        the revision is stopped, or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._stopped.is_set():
                return Readiness(False, "The revision was deleted while it was starting.")
            code = self.exit_code()
            if code is not None:
                return Readiness(
                    False,
                    f"The user-provided container failed to start and listen on the port defined by the "
                    f"PORT={self.port} environment variable: it exited with status {code}. "
                    f"Last log lines:\n{log_tail(self.log_path, 10)}",
                )
            if self._probe(probe_path):
                return Readiness(True, "")
            time.sleep(0.05)
        return Readiness(
            False,
            f"The user-provided container failed to start and listen on the port defined by the PORT="
            f"{self.port} environment variable within the {timeout:.0f}s startup timeout. "
            f"Last log lines:\n{log_tail(self.log_path, 10)}",
        )

    def _probe(self, path: str | None) -> bool:
        if path is None:
            return port_accepts(self.port)
        url = f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                return 200 <= int(response.status) < 400
        except urllib.error.HTTPError as error:
            return 200 <= error.code < 400
        except (OSError, ValueError):
            return False

    def stop(self, grace_seconds: float = 2.0) -> None:
        """SIGTERM the process group, SIGKILL it after the grace period; reap the leader."""
        with self._lock:
            self._stopped.set()
            process = self._process
        if process is None:
            return
        if process.poll() is None or _group_exists(process.pid):
            stop_group(process.pid, grace_seconds=grace_seconds)
        with contextlib.suppress(subprocess.TimeoutExpired, ChildProcessError):
            process.wait(timeout=1.0)
        log.info("revision %s stopped (pid %s)", self.name, process.pid)


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True
