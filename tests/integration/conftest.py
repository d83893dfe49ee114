"""One real local stack for the integration tier: started once per session, stopped by PID at the end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from emulators.stack import Stack, StackState, applied_env

HERE = Path(__file__).resolve().parent


class LiveStack:
    """The running stack plus small helpers tests share."""

    def __init__(self, stack: Stack, state: StackState) -> None:
        self.stack = stack
        self.state = state
        self.env = state.env
        self.project = state.project

    def sink_requests(self, prefix: str) -> list[dict[str, Any]]:
        response = requests.get(
            f"{self.env['WEBHOOK_SINK_URL']}/_sink/requests", params={"prefix": prefix}, timeout=5
        )
        response.raise_for_status()
        records: list[dict[str, Any]] = response.json()
        return records


@pytest.fixture(scope="session")
def live_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    run_dir = tmp_path_factory.mktemp("stack")
    stack = Stack(
        run_dir,
        project="it-project",
        config_path=HERE / "pipeline.yaml",
        extra_sources=(HERE / "targets.py",),
    )
    state = stack.up(progress=lambda line: print(line, flush=True))
    try:
        with applied_env(state.env):
            yield LiveStack(stack, state)
    finally:
        stack.down(progress=lambda line: print(line, flush=True))
