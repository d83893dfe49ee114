"""Process plumbing for the local stack: free ports, readiness checks, process groups, stop by PID."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class StackError(RuntimeError):
    """The local stack cannot start or is in a state we cannot use."""


_handed_out: set[int] = set()
_ports_lock = threading.Lock()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on the loopback interface right now, for a server to bind soon.

    Chosen at random BELOW the kernel's ephemeral range: a port the kernel hands out for ``bind(0)`` or for
    the local end of an outgoing connection could be taken by a client socket between now and the moment
    the server binds it (seen as a flaky "connection refused" or a request answered by the wrong server).
    A port is never handed out twice by one process.
    """
    low, _high = _ephemeral_range()
    start = max(1024, min(20000, low - 10000))
    for _ in range(200):
        port = random.randrange(start, low)
        with _ports_lock:
            if port in _handed_out:
                continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
        with _ports_lock:
            _handed_out.add(port)
        return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # a crowded range: let the kernel pick
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """True when ``url`` answers with any HTTP status below 500."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status) < 500
    except urllib.error.HTTPError as error:
        return error.code < 500
    except (OSError, ValueError):
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_group(pgid: int, grace_seconds: float = 5.0) -> None:
    """Stop every process of the group led by ``pgid``: SIGTERM, then SIGKILL after the grace period.

    Signalling the whole group matters: the emulator launchers are shell scripts whose Java child
    outlives the script when only the script's PID is signalled.
    """
    if pgid <= 1:
        raise StackError(f"refusing to signal process group {pgid}")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        # Reap the leader if it is our child: a zombie still counts as a member of the group.
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pgid, os.WNOHANG)
        if not group_alive(pgid):
            break
        time.sleep(0.05)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    # Reap our own child if it was ours, so no zombie is left behind.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pgid, os.WNOHANG)
    deadline = time.monotonic() + grace_seconds
    while group_alive(pgid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pgid, os.WNOHANG)
        time.sleep(0.05)


@dataclass
class Started:
    """A server the stack started: its PID (also its process-group id) and where its log goes."""

    name: str
    pid: int
    log_path: Path


def start_process(
    name: str,
    argv: Sequence[str],
    log_dir: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Started:
    """Start ``argv`` detached in its own session (its own process group), output to ``log_dir/NAME.log``."""
    log_path = log_dir / f"{name}.log"
    process = spawn(argv, log_path, env=env, cwd=cwd)
    return Started(name=name, pid=process.pid, log_path=log_path)


def spawn(
    argv: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session (its own process group, so it is stopped with all its children),
    stdin closed, stdout and stderr appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=str(cwd) if cwd else None,
            start_new_session=True,
        )


def wait_until(
    check: Callable[[], bool],
    what: str,
    timeout: float,
    started: Started | None = None,
    interval: float = 0.1,
) -> None:
    """Poll ``check`` until it is true; fail early with the log tail if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if started is not None and not pid_alive(started.pid):
            raise StackError(f"{what} exited during start-up; last log lines:\n{log_tail(started.log_path)}")
        if started is not None:
            # Reap it if it died, so pid_alive sees the truth next time.
            with contextlib.suppress(ChildProcessError, OSError):
                pid, _ = os.waitpid(started.pid, os.WNOHANG)
                if pid == started.pid:
                    raise StackError(
                        f"{what} exited during start-up; last log lines:\n{log_tail(started.log_path)}"
                    )
        time.sleep(interval)
    tail = f"; last log lines:\n{log_tail(started.log_path)}" if started else ""
    raise StackError(f"{what} was not ready after {timeout:.0f}s{tail}")


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2) -> Any:
    """Poll ``check`` until it returns something truthy and return that; :class:`TimeoutError` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])
