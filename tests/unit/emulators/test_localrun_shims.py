"""The PATH shims build steps and trainers run through: ``docker`` reaches the local registry from anywhere,
and a shim written by an older checkout (the module moved) is replaced rather than kept."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from emulators.common.localrun import shim_dir

pytestmark = pytest.mark.unit


def run_shim(shim: Path, *args: str, registry: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LOCAL_REGISTRY_DIR": str(registry)}
    env.pop("PYTHONPATH", None)  # the shim itself must make the checkout importable
    return subprocess.run(
        [str(shim), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_a_stale_docker_shim_is_replaced_and_reaches_the_registry(tmp_path: Path) -> None:
    stale = tmp_path / "state" / "bin" / "docker"
    stale.parent.mkdir(parents=True)
    stale.write_text('#!/bin/sh\nexec python -m emulators.dockercli "$@"\n')

    shims = shim_dir(tmp_path / "state")

    docker = shims / "docker"
    assert "-m emulators.common.dockercli" in docker.read_text()
    assert os.access(docker, os.X_OK)
    listed = run_shim(docker, "images", registry=tmp_path / "registry", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    refused = run_shim(docker, "run", "busybox", registry=tmp_path / "registry", cwd=tmp_path)
    assert refused.returncode == 1
    assert '"docker run" cannot run in the local emulator' in refused.stderr


def test_current_shims_are_left_alone(tmp_path: Path) -> None:
    shims = shim_dir(tmp_path)
    before = {path.name: path.stat().st_mtime_ns for path in shims.iterdir()}
    assert set(before) == {"python", "python3", "pip", "pip3", "docker"}
    shim_dir(tmp_path)
    assert {path.name: path.stat().st_mtime_ns for path in shims.iterdir()} == before
