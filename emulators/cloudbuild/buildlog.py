"""A build's log (``build.log``, served at ``logUrl``): whole lines, written while the steps run.

Cloud Build streams each step's output into the build log as the step writes it, prefixed ``Step #N: ``
(or ``Step #N - "id": ``), between ``Starting Step #N`` and ``Finished Step #N`` lines; a reader during a
long step sees the lines so far. A step's process writes its own file (``step-N.log``); a follower thread
copies each complete line from it into the build log while the step runs, and whatever is left (a last
line without a newline) when it ends. Parallel steps interleave line by line, as in the cloud.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

#: How often a follower looks for new output: short enough that a reader sees a line within a fraction of
#: a second, long enough to cost nothing while a step is quiet.
FOLLOW_INTERVAL = 0.1


class BuildLog:
    """The log of one build; safe to write from several step threads at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def write(self, *lines: str) -> None:
        """Append ``lines`` (each may hold several lines) as whole lines."""
        text = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
        with self._lock, open(self.path, "a", encoding="utf-8") as handle:
            handle.write(text)

    @contextlib.contextmanager
    def follow(self, source: Path, label: str) -> Iterator[None]:
        """Copy ``source``'s lines, prefixed ``label: ``, into the log while the block runs."""
        self.write(f"Starting {label}")
        follower = _Follower(self, source, f"{label}: ")
        follower.start()
        try:
            yield
        finally:
            follower.finish()
            self.write(f"Finished {label}")


class _Follower(threading.Thread):
    def __init__(self, log: BuildLog, source: Path, prefix: str) -> None:
        super().__init__(name=f"follow-{source.name}", daemon=True)
        self.log = log
        self.source = source
        self.prefix = prefix
        self._offset = 0
        self._partial = b""
        self._stop_requested = threading.Event()

    def run(self) -> None:
        while not self._stop_requested.wait(FOLLOW_INTERVAL):
            self._copy(final=False)

    def finish(self) -> None:
        """Stop following and copy what is left, the last line even without its newline."""
        self._stop_requested.set()
        self.join()
        self._copy(final=True)

    def _copy(self, final: bool) -> None:
        try:
            with open(self.source, "rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except FileNotFoundError:  # the process has not written anything yet
            return
        self._offset += len(chunk)
        data = self._partial + chunk
        *complete, self._partial = data.split(b"\n")
        if final and self._partial:
            complete.append(self._partial)
            self._partial = b""
        if complete:
            # Decoded per line, so a multi-byte character split between two reads stays whole.
            self.log.write(*(self.prefix + line.decode(errors="replace") for line in complete))
