"""Captured payloads for the ingest tests: this checkout's tests/events and ../shared/samples if present."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import EVENTS_DIR, SHARED_SAMPLES


def sample_paths(name: str) -> list[object]:
    """``name`` from tests/events, and from ../shared/samples (a skipped case when that folder is absent)."""
    shared = SHARED_SAMPLES / name
    return [
        pytest.param(EVENTS_DIR / name, id=f"tests/events/{name}"),
        pytest.param(
            shared,
            id=f"shared/samples/{name}",
            marks=pytest.mark.skipif(not shared.is_file(), reason=f"{shared} is not beside this checkout"),
        ),
    ]


def raw_bytes(path: Path) -> bytes:
    """The payload exactly as stored: signatures are over bytes, never over re-serialised JSON."""
    return path.read_bytes()
