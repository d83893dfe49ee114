"""Where the cores go during a measurement: CPU seconds per stack component (its whole process group, read
from ``/proc``) and for the bench's own process (the senders), so a rate that no ledger ceiling explains can
be explained by the machine: two cores shared by the function host, the emulators and the senders."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def group_cpu_seconds(group: int) -> float:
    """User + system CPU seconds of every live process in process group ``group`` (0.0 without /proc)."""
    total = 0
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited meanwhile, or not ours to read
            continue
        # The command name is in parentheses and may hold spaces: the fields after it are fixed.
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == group:  # pgrp
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICKS


class CpuMeter:
    """CPU seconds spent by each named process group, and by this process, between ``start`` and ``stop``."""

    def __init__(self, groups: Mapping[str, int]) -> None:
        self.groups = dict(groups)
        self.spent: dict[str, float] = {}
        self.seconds = 0.0
        self._before: dict[str, float] = {}
        self._began = 0.0

    def _now(self) -> dict[str, float]:
        now = {name: group_cpu_seconds(group) for name, group in self.groups.items()}
        own = os.times()
        now["bench (senders)"] = own.user + own.system
        return now

    def start(self) -> None:
        self._before, self._began = self._now(), time.perf_counter()

    def stop(self) -> None:
        after = self._now()
        self.seconds = time.perf_counter() - self._began
        self.spent = {name: max(after[name] - self._before.get(name, 0.0), 0.0) for name in after}

    def per_event_ms(self, events: int) -> dict[str, float]:
        """Milliseconds of CPU per event, by process, and their ``total``."""
        per = {name: seconds * 1000 / max(events, 1) for name, seconds in self.spent.items()}
        per["total"] = sum(per.values())
        return per

    def busy_cores(self) -> float:
        """The cores the window kept busy, on average."""
        return sum(self.spent.values()) / self.seconds if self.seconds > 0 else 0.0


@contextmanager
def metered(groups: Mapping[str, int]) -> Iterator[CpuMeter]:
    meter = CpuMeter(groups)
    meter.start()
    try:
        yield meter
    finally:
        meter.stop()
