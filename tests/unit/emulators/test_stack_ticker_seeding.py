"""The stack's reconcile ticker and image seeding, without starting anything: the plan, the commands, the
images the shipped config asks for, and the ticker's loop against a local HTTP server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from emulators.stack import Stack, StackError, StackState
from emulators.stack.components import BY_NAME
from emulators.stack.seeding import SEED_TAG, chain_buckets, seeds
from emulators.stack.ticker import Ticker
from shared.config import load_config
from shared.ingest.builds import OUR_TAG

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]


def test_the_ticker_listens_but_exports_no_variable(tmp_path: Path) -> None:
    stack = Stack(tmp_path, project="p", config_path=ROOT / "pipeline.yaml")
    state = StackState(project="p", config="", started_at="now")
    _, launch = stack.plan(state)

    assert launch.endpoints["ticker"].startswith("http://127.0.0.1:")
    assert launch.endpoints["ticker"] not in state.env.values()
    argv = BY_NAME["ticker"].command(BY_NAME["ticker"], launch)
    assert argv[argv.index("--functions-url") + 1] == state.env["FUNCTIONS_URL"]


def test_a_ticker_without_the_function_host_is_refused(tmp_path: Path) -> None:
    stack = Stack(tmp_path, components=["ticker"])
    _, launch = stack.plan(StackState(project="p", config="", started_at="now"))
    with pytest.raises(StackError, match="needs the function host"):
        BY_NAME["ticker"].command(BY_NAME["ticker"], launch)


def test_the_shipped_config_seeds_its_default_trainer_and_server_images() -> None:
    config = load_config(ROOT / "pipeline.yaml", env={"GOOGLE_CLOUD_PROJECT": "seed-project"})

    found = {(seed.image, seed.example) for seed in seeds(config)}

    assert found == {
        ("us-central1-docker.pkg.dev/seed-project/mlops/trainer:seed", "trainer"),
        ("us-central1-docker.pkg.dev/seed-project/mlops/server:seed", "server"),
    }
    assert SEED_TAG != OUR_TAG, "seed builds must not look like the pipeline's builds"


def test_the_shipped_config_gets_its_artifacts_and_data_buckets() -> None:
    config = load_config(ROOT / "pipeline.yaml", env={"GOOGLE_CLOUD_PROJECT": "seed-project"})
    assert chain_buckets(config) == ["seed-project-artifacts", "seed-project-data"]


def test_a_config_without_models_seeds_nothing() -> None:
    config = load_config(
        ROOT / "tests" / "integration" / "pipeline.yaml", env={"WEBHOOK_SINK_URL": "http://x"}
    )
    assert seeds(config) == [] and chain_buckets(config) == []


class FunctionHost:
    """A stand-in function host: health lists the entry points; /reconcile answers like the function."""

    def __init__(self, entry_points: list[str]) -> None:
        self.entry_points = entry_points
        self.posts = 0
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    @Request.application
    def app(self, request: Request) -> Response:
        if request.path == "/_emulator/health":
            return Response(json.dumps({"entry_points": self.entry_points}), mimetype="application/json")
        if request.path == "/reconcile" and "reconcile" in self.entry_points and request.method == "POST":
            self.posts += 1
            return Response(json.dumps({"status": "ok", "emitted": []}), mimetype="application/json")
        return Response("{}", status=404)


@pytest.fixture
def host() -> Iterator[FunctionHost]:
    server = FunctionHost(["notify", "reconcile"])
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.server.shutdown()


def run_for(ticker: Ticker, seconds: float) -> dict[str, Any]:
    loop = threading.Thread(target=ticker.run, daemon=True)
    loop.start()
    loop.join(timeout=seconds)
    ticker.stop.set()
    loop.join(timeout=5)
    return ticker.health()


def test_the_ticker_posts_every_period(host: FunctionHost) -> None:
    health = run_for(Ticker(host.url, "reconcile", 0.05), 0.5)

    assert health["mounted"] is True
    assert health["ticks"] == host.posts >= 4
    assert health["succeeded"] == health["ticks"] and health["failed"] == 0
    assert health["last"]["status"] == 200 and health["last"]["body"] == {"status": "ok", "emitted": []}


def test_the_ticker_waits_while_reconcile_is_not_exported(host: FunctionHost) -> None:
    host.entry_points = ["notify"]
    health = run_for(Ticker(host.url, "reconcile", 0.05), 0.3)
    assert health["mounted"] is False and health["ticks"] == 0 and host.posts == 0


def test_every_zero_never_ticks(host: FunctionHost) -> None:
    health = run_for(Ticker(host.url, "reconcile", 0), 0.2)
    assert health["enabled"] is False and health["ticks"] == 0 and host.posts == 0
