"""``python -m bench --quick``: the whole bench on tiny sizes, against real emulators, in seconds.

It must print the table, write results.json and the charts with every item's figures, and leave no server
running (every process it started is stopped by PID).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.chain_cases import FUNCTIONS

pytestmark = pytest.mark.functional

ROOT = Path(__file__).resolve().parents[3]


def _descendants() -> set[int]:
    """PIDs of processes whose command line names this checkout's bench run folders."""
    found = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "/bench-" in command and ("function_host" in command or "emulators." in command):
                found.add(int(proc.name))
    return found


@pytest.mark.skipif(
    shutil.which("java") is None or shutil.which("gcloud") is None,
    reason="needs the Cloud CLI emulators and Java",
)
def test_quick_bench_reports_every_item_and_leaves_nothing_running(tmp_path: Path) -> None:
    before = _descendants()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--out",
            str(tmp_path / "results.json"),
            "--charts",
            str(tmp_path / "charts"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = result.stdout
    for item in ("1 cold start", "2 hot path", "3 burst", "4 end to end", "5 scale", "baseline"):
        assert item in table, item
    assert "[bench" in result.stderr  # progress goes to stderr, the table alone to stdout
    assert "[bench" not in table and '"severity"' not in table

    results = json.loads((tmp_path / "results.json").read_text())
    assert results["machine"]["cores"] >= 1
    assert results["baselines"]["firestore_creates"]["rate"] > 0
    assert results["cold_start"]["functions"]["notify"]["ratio"] > 0
    notify = results["hot_path"]["notify"]
    assert notify["per_event"]["writes"] > 0 and notify["host"]["rate"] > 0 and notify["push"]["rate"] > 0
    for name in FUNCTIONS:  # the chain functions, each event's effect checked after the window
        chain = results["hot_path"][name]
        assert chain["in_process"]["rate"] > 0 and chain["per_event"]["writes"] > 0, name
        assert chain["in_process"]["events"] == 5 and chain["in_process"]["vs_ceiling"] > 0, name
        assert chain["host"]["rate"] > 0 and chain["push"]["rate"] > 0, name  # behind HTTP, via push
        assert f"{name} in-process vs ledger ceiling" in table, name
    assert results["hot_path"]["on_drift_alert"]["in_process_shared_run"]["rate"] > 0  # the alert storm
    assert results["burst"]["training_runs"] == 1  # the burst became exactly one training run
    assert [tier["finished_runs"] for tier in results["scale"]["runs"]] == [10, 50]
    assert sorted(path.name for path in (tmp_path / "charts").iterdir()) == [
        "before-after.svg",  # beside bench/results-before.json, the run before the improvements
        "burst.svg",
        "cold-start.svg",
        "hot-path.svg",
        "scale-runs.svg",
        "scale-senders.svg",
    ]
    assert _descendants() <= before  # nothing of this run is left
