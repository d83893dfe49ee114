"""`make demo`'s scenario runs end to end on a fresh stack and leaves no process behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _stack_processes() -> set[int]:
    """PIDs of processes whose command line names a demo run folder (the API and storage emulators)."""
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "mlops-demo-" in command:
            found.add(int(entry.name))
    return found


def test_demo_runs_the_whole_scenario_and_cleans_up() -> None:
    before = _stack_processes()
    result = subprocess.run(
        [sys.executable, "-m", "emulators", "demo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=420,
        env={key: value for key, value in os.environ.items() if not key.endswith("_EMULATOR_HOST")},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    for expected in (
        "sink still holds 2 deliveries",  # the duplicate was not delivered again
        "rejected ",  # the malformed message was recorded
        "#1: HTTP 202 run push-",  # the signed push started the builds
        "#3: HTTP 200 run push-",  # ... and the third delivery started nothing
        "trainer: duplicate, server: duplicate",
        "a forged signature: HTTP 401",
        "image:trainer",  # on_build_status saw the trainer build succeed
        "training:finished",  # the reconciler saw the Vertex job end
        "registry:version",  # a gated candidate was registered
        "data:batch",  # the burst became one run
        "data:quarantined",
        "failed checks allowed:label, max:f1",
        "drift:alert",
        "rollout:smoke",  # the first deploy: smoke checks on the tag URL, then 100%
        "rollout:promoted",
        "100% → healthy",  # the canary's last step, judged on real traffic
        "10% → unhealthy",  # the broken server image, judged at its first step ...
        "rollout:rolled_back",  # ... and rolled back
        "traffic read back",
        "the canary's page:",
        "no process left running",
    ):
        assert expected in out, f"{expected!r} missing from the demo output:\n{out[-3000:]}"
    assert _stack_processes() - before == set()
