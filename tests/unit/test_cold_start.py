"""Cold start stays lean: importing main.py pulls in none of the heavy Google API clients."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
HEAVY = (
    "google.cloud.aiplatform",
    "google.cloud.run_v2",
    "google.cloud.devtools.cloudbuild_v1",
    "google.cloud.monitoring_v3",
    "google.cloud.storage",
    "pandas",
    "pandera",
    "numpy",
)


def test_importing_main_loads_no_heavy_client() -> None:
    result = subprocess.run(
        [  # every entry point loaded (main imports each on first access): what any function's start imports
            sys.executable,
            "-X",
            "importtime",
            "-c",
            "import main; print(len([getattr(main, name) for name in main.__all__]))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "main" in imported and "shared.chain.rollout" in imported  # the entry points really loaded
    assert int(result.stdout.strip()) >= 1
    offenders = sorted(name for name in imported if name.startswith(HEAVY))
    assert offenders == []


def test_every_entry_point_is_exported_and_callable() -> None:
    import main

    assert sorted(main.__all__) == sorted(
        main.ENTRY_POINTS
    )  # one list each way: nothing exported twice or not
    for name in main.__all__:
        assert callable(getattr(main, name)), name
