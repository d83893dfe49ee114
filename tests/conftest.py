"""Test-wide isolation: each test sees a clean configuration cache and client cache."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _isolate_caches() -> Iterator[None]:
    from shared import clients
    from shared.config import reset_config_cache

    reset_config_cache()
    clients.reset()
    yield
    reset_config_cache()
    clients.reset()
