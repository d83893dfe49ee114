"""Headless Chromium for the tests that look at what we show people (the status page, the bench's charts)."""

from __future__ import annotations

import subprocess
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"


def screenshot(page: Path, png: Path, profile: Path, width: int, height: int, *flags: str) -> None:
    """Chromium's own flags for a quiet, offline, one-shot screenshot (no sandbox: tests may run as root)."""
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        *flags,
        f"--user-data-dir={profile}",
        f"--screenshot={png}",
        f"--window-size={width},{height}",
        page.as_uri(),
    ]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert png.exists(), f"no screenshot (exit {finished.returncode}): {finished.stderr[-2000:]}"
