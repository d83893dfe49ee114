"""`python -m emulators up | status | env | down` as a user runs them: nothing is left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from emulators.common.proc import group_alive, http_ok

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


def cli(run_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "emulators", "--run-dir", str(run_dir), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "PIPELINE_CONFIG": "pipeline.yaml"},
    )


def test_up_status_env_down(tmp_path: Path) -> None:
    up = cli(tmp_path, "up")
    assert up.returncode == 0, up.stderr
    assert "stack ready" in up.stdout
    try:
        status = cli(tmp_path, "status")
        assert status.returncode == 0
        rows = {line.split()[0]: line.split()[1] for line in status.stdout.splitlines()}
        assert {"pubsub", "firestore", "storage", "sink", "functions"} <= set(rows)
        assert set(rows.values()) == {"running"}

        exports = dict(
            line.removeprefix("export ").split("=", 1) for line in cli(tmp_path, "env").stdout.splitlines()
        )
        for key in (
            "PUBSUB_EMULATOR_HOST",
            "FIRESTORE_EMULATOR_HOST",
            "STORAGE_EMULATOR_HOST",
            "CLOUDBUILD_EMULATOR_HOST",
            "VERTEX_EMULATOR_HOST",
            "RUN_EMULATOR_HOST",
            "MONITORING_EMULATOR_HOST",
            "GOOGLE_CLOUD_PROJECT",
            "FUNCTIONS_URL",
        ):
            assert key in exports
        assert exports["PUBSUB_EMULATOR_HOST"].startswith("127.0.0.1:")
        for api in ("CLOUDBUILD_EMULATOR_HOST", "VERTEX_EMULATOR_HOST", "RUN_EMULATOR_HOST"):
            assert http_ok(f"http://{exports[api]}/_emulator/health")
        health = f"{exports['FUNCTIONS_URL']}/_emulator/health"
        assert http_ok(health)
        assert (
            "notify"
            in json.loads(__import__("urllib.request").request.urlopen(health).read())["entry_points"]
        )

        again = cli(tmp_path, "up")
        assert again.returncode == 0 and "already running" in again.stdout
    finally:
        pids = [c["pid"] for c in json.loads((tmp_path / "stack.json").read_text())["components"].values()]
        down = cli(tmp_path, "down")
    assert down.returncode == 0, down.stderr
    assert not [pid for pid in pids if group_alive(pid)], "every process group must be gone"
    assert cli(tmp_path, "status").returncode == 3
    assert cli(tmp_path, "env").returncode == 2
