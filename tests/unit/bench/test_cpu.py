"""CPU accounting per process group (bench/cpu.py), read from /proc."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.cpu import CpuMeter, group_cpu_seconds

pytestmark = [
    pytest.mark.unit,
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc"),
]

BUSY = (  # 0.3 s of CPU, then say so and wait
    "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"
    "print('done', flush=True)\ninput()\n"
)


def test_a_group_is_charged_the_cpu_its_processes_spent() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", BUSY], stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == b"done\n"
        spent = group_cpu_seconds(child.pid)  # its own session: the group is just this child
        assert 0.25 <= spent < 5.0
        assert group_cpu_seconds(2**22 + 7) == 0.0  # no such group
    finally:
        child.kill()
        child.wait()


def test_the_meter_reports_per_event_milliseconds_and_busy_cores() -> None:
    meter = CpuMeter({})
    meter.start()
    end = time.process_time() + 0.1
    while time.process_time() < end:
        pass
    meter.stop()
    per = meter.per_event_ms(10)
    assert per["bench (senders)"] >= 9.0  # 0.1 s of this process over 10 events
    assert per["total"] == pytest.approx(sum(value for name, value in per.items() if name != "total"))
    # CPU over wall time: this thread spun all along (a loaded machine may deschedule it, other threads of
    # the test process may add to it)
    assert 0.0 < meter.busy_cores() <= (os.cpu_count() or 1) + 0.5
