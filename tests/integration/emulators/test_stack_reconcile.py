"""``up`` with the shipped config: the seed images are built through the Cloud Build emulator (not as pipeline
builds), the chain's buckets exist, the ticker calls ``reconcile`` every period, the operator command reads
the live ledger, and ``down`` stops the ticker with the rest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from emulators.common.proc import group_alive, wait_for
from emulators.common.registry import LocalRegistry
from emulators.stack import Stack, applied_env

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
PROJECT = "seed-project"
TRAINER = f"us-central1-docker.pkg.dev/{PROJECT}/mlops/trainer:seed"
SERVER = f"us-central1-docker.pkg.dev/{PROJECT}/mlops/server:seed"


def health(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/_emulator/health", timeout=5) as response:
        result: dict[str, Any] = json.loads(response.read())
    return result


def test_up_seeds_images_and_ticks_reconcile(tmp_path: Path) -> None:
    stack = Stack(
        tmp_path, project=PROJECT, config_path=ROOT / "pipeline.yaml", api_args={"ticker": ["--every", "0.5"]}
    )
    lines: list[str] = []
    began = time.monotonic()
    state = stack.up(progress=lines.append)
    up_seconds = time.monotonic() - began
    try:
        text = "\n".join(lines)
        assert "seeding images        trainer:seed, server:seed" in text
        assert f"seeded trainer        {TRAINER}@sha256:" in text
        assert f"seeded server         {SERVER}@sha256:" in text
        assert up_seconds < 90, f"up took {up_seconds:.1f}s:\n{text}"
        assert text.index("seeded trainer") > text.index("reconcile ticker"), "built while the rest started"

        registry = LocalRegistry(Path(state.env["LOCAL_REGISTRY_DIR"]))
        assert registry.exists(TRAINER) and registry.exists(SERVER)

        with applied_env(state.env):
            from shared import clients
            from shared.config import load_config
            from shared.ports import production_ports

            clients.reset()
            config = load_config(ROOT / "pipeline.yaml", env={**os.environ, **state.env})
            ports = production_ports(config)
            seeded = ports.builds.find_by_tags(["seed"], timeout=30)
            assert sorted(build.status.value for build in seeded) == ["SUCCESS", "SUCCESS"]
            assert ports.builds.find_by_tags(["mlops"], timeout=30) == [], "no pipeline build was started"
            storage = clients.storage()
            for bucket in (f"{PROJECT}-artifacts", f"{PROJECT}-data"):
                assert storage.bucket(bucket).exists(), bucket
            clients.reset()

        ticker = state.components["ticker"]
        first = wait_for("three ticks", lambda: (h := health(ticker.url))["ticks"] >= 3 and h, timeout=30)
        assert first["mounted"] is True and first["failed"] == 0
        assert first["last"]["status"] == 200
        assert first["last"]["body"]["status"] == "ok" and "runs_walked" in first["last"]["body"]

        operator = subprocess.run(
            [sys.executable, "-m", "shared.operator", "runs", "--json"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **state.env},
        )
        assert operator.returncode == 0, operator.stderr
        assert isinstance(json.loads(operator.stdout), list)
    finally:
        pids = [component.pid for component in state.components.values()]
        stack.down(progress=lambda _line: None)
    assert not [pid for pid in pids if group_alive(pid)], "the ticker is stopped with the rest"
