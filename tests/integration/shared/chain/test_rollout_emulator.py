"""The rollout engine on the Cloud Run and Cloud Monitoring emulators with real traffic: a candidate that
answers 5xx is rolled back within interval x steps, a good one is canaried 10 → 50 → 100 and promoted.

Only the ``run`` component is started (Cloud Run with its Monitoring); the ledger, publisher and registry are
the in-memory ones. Ticks are driven here, once a second, as the stack's reconcile ticker would.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from emulators.common.registry import LocalRegistry
from emulators.loadgen import run_load
from shared import clients
from shared.chain import rollout
from shared.chain.contracts import RolloutRequested
from shared.config import parse_config
from shared.ledger import InMemoryLedger
from shared.notify import RecordingTransport
from shared.ports import Ports, fake_ports
from shared.ports.deployments import CloudRunDeployments, RevisionSpec, revision_name
from shared.ports.metrics import MonitoringMetrics
from shared.ports.registry import ModelUpload
from shared.publisher import InMemoryPublisher
from shared.rollout.machine import Phase, Rollout
from shared.runtime import Runtime, use
from tests.integration.api_emulators import PROJECT, ApiStack, running

pytestmark = pytest.mark.integration

LOCATION = "us-central1"
SERVICE = "churn-rollout"
IMAGE = f"{LOCATION}-docker.pkg.dev/{PROJECT}/rollout/server:test"
INTERVAL = 3.0
STEPS = (10, 50, 100)
BODY = {"instances": [[0.1, 0.2]]}

# A stand-in serving image: model version "3" answers every other request 500 (a broken model).
SERVER = """
import itertools, json, os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

counter = itertools.count()
BROKEN = os.environ.get("MODEL_VERSION") == "3"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        fail = BROKEN and next(counter) % 2 == 1  # the first answer (a smoke check) is fine
        body = json.dumps({"error": "broken"} if fail else
                          {"predictions": [0], "revision": os.environ.get("K_REVISION", "")}).encode()
        self.send_response(500 if fail else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


@dataclass
class Env:
    runtime: Runtime
    deployments: CloudRunDeployments
    stable: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiStack]:
    root: Path = tmp_path_factory.mktemp("rollout")
    context = root / "server"
    context.mkdir()
    (context / "serve.py").write_text(SERVER)
    (context / "Dockerfile").write_text(
        'FROM python:3.11-slim\nCOPY serve.py .\nENTRYPOINT ["python", "serve.py"]\n'
    )
    LocalRegistry(root / "registry").build(context, [IMAGE])
    with running(root, run=True) as api:
        clients.reset()
        try:
            yield api
        finally:
            clients.reset()


def _config() -> Any:
    return parse_config(
        {
            "apiVersion": "mlops.dev/v1",
            "kind": "Pipeline",
            "spec": {
                "project": PROJECT,
                "region": LOCATION,
                "topicPrefix": "it-",
                "models": [{"name": "churn", "trainer": {"image": "trainer:seed"}}],
                "services": [
                    {
                        "name": SERVICE,
                        "model": "churn",
                        "canary": {
                            "steps": list(STEPS),
                            "interval": f"{INTERVAL}s",
                            "minRequests": 20,
                            "inconclusive": {"wait": "20s", "then": "fail"},
                        },
                        "analysis": {"max5xxShare": 0.05, "maxP95Ratio": 2.0},
                        # Checked before the first step: the candidate answers, and is warm when judged.
                        "smoke": [{"path": "/predict", "method": "POST", "body": BODY, "expectStatus": 200}],
                    }
                ],
            },
        },
        "integration.yaml",
        env={},
    )


@pytest.fixture(scope="module")
def env(stack: ApiStack) -> Iterator[Env]:
    fakes = fake_ports(project=PROJECT)
    for version in ("1", "2", "3"):
        fakes.registry.upload(ModelUpload("churn", "churn", f"gs://models/v{version}/"))
    deployments = CloudRunDeployments(PROJECT, LOCATION)
    ports = Ports(
        builds=fakes.builds,
        training=fakes.training,
        registry=fakes.registry,
        deployments=deployments,
        metrics=MonitoringMetrics(PROJECT),
        objects=fakes.objects,
    )
    runtime = Runtime(_config(), InMemoryLedger(), InMemoryPublisher(), RecordingTransport(), ports=ports)
    stable = revision_name(SERVICE, "seed")
    deployments.create_service(
        SERVICE,
        RevisionSpec(stable, IMAGE, env={"MODEL_URI": "gs://models/v1/", "MODEL_VERSION": "1"}),
        tag="stable",
    )
    _wait(lambda: (s := deployments.get_service(SERVICE)) is not None and s.serving() == [(stable, 100)])
    with use(runtime):
        yield Env(runtime, deployments, stable)


def _wait(done: Any, seconds: float = 60.0) -> None:
    limit = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < limit, "timed out"
        time.sleep(0.2)


class Load:
    """Real requests through the service URL until stopped (the demo's load generator, in rounds)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stop = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            result = run_load(self.url, 60, concurrency=4, max_seconds=10, json_body=BODY)
            self.sent += result.sent

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(timeout=15)


def request(version: str) -> RolloutRequested:
    return RolloutRequested(
        service=SERVICE,
        model="churn",
        version=version,
        version_resource=f"projects/{PROJECT}/locations/{LOCATION}/models/churn@{version}",
        artifact_uri=f"gs://models/v{version}/",
        image=IMAGE,
        cause="approval",
        approved_by="ada@example.com",
        nonce=f"n{version}",
    )


def drive(env: Env, run_id: str, version: str, limit: float = 120.0) -> tuple[Rollout, float | None]:
    """Start the rollout and tick once a second until it ends; the end and the seconds from its first
    step's window to the end."""
    service = env.deployments.get_service(SERVICE)
    assert service is not None
    first_window: float | None = None
    with Load(f"{service.uri}/predict"):
        rollout.start(env.runtime, run_id, request(version), datetime.now(UTC))
        deadline = time.monotonic() + limit
        while True:
            rollout.tick(env.runtime, datetime.now(UTC))
            current = rollout.read_lease(env.runtime, SERVICE).rollout
            assert current is not None
            if first_window is None and current.window_start is not None:
                first_window = time.monotonic()
            if not current.active:
                return current, (time.monotonic() - first_window) if first_window else None
            assert time.monotonic() < deadline, f"the rollout did not end: {current}"
            time.sleep(1.0)


def test_a_broken_candidate_is_rolled_back_within_interval_times_steps(env: Env) -> None:
    ended, seconds = drive(env, "run-bad", "3")

    assert ended.phase is Phase.ROLLED_BACK, ended.reason
    assert "5xx" in ended.reason
    assert seconds is not None and seconds <= INTERVAL * len(STEPS)
    served = [(s.revision, s.percent) for s in env.deployments.get_traffic(SERVICE) if s.percent]
    assert served == [(env.stable, 100)]  # read back from Cloud Run itself
    run = env.runtime.ledger.get_run("run-bad")
    assert run is not None
    step = run.step("rollout:step:0")
    assert step is not None and step.detail["result"]["verdict"] == "unhealthy"
    candidate = step.detail["result"]["revisions"][revision_name(SERVICE, "run-bad")]
    assert candidate["share_5xx"] > 0.3 and candidate["requests"] >= 20


def test_a_good_candidate_is_canaried_and_promoted(env: Env) -> None:
    ended, _ = drive(env, "run-good", "2")

    assert ended.phase is Phase.PROMOTED, ended.reason
    candidate = revision_name(SERVICE, "run-good")
    service = env.deployments.get_service(SERVICE)
    assert service is not None and service.serving() == [(candidate, 100)]
    assert service.tag_uri("stable") is not None
    run = env.runtime.ledger.get_run("run-good")
    assert run is not None
    percents = [run.step(f"rollout:step:{i}").detail["result"]["percent"] for i in range(3)]  # type: ignore[union-attr]
    assert percents == list(STEPS)
    champion = env.runtime.ports.registry.get_version("churn", "champion")
    assert champion is not None and champion.version_id == "2"


def test_duplicate_ticks_and_injected_update_faults_change_traffic_once_per_step(env: Env) -> None:
    """Two ticks at once every second, and Cloud Run answering UpdateService UNAVAILABLE, then ABORTED: the
    split still moves 10 → 50 → 100 once each, never back, and the candidate is promoted."""
    import os

    import requests as http

    admin = f"http://{os.environ['RUN_EMULATOR_HOST']}/_emulator"
    service = env.deployments.get_service(SERVICE)
    assert service is not None
    candidate = revision_name(SERVICE, "run-dup")
    splits: list[int] = []
    with Load(f"{service.uri}/predict"):
        rollout.start(env.runtime, "run-dup", request("2"), datetime.now(UTC))
        for code in ("UNAVAILABLE", "ABORTED"):
            answer = http.post(f"{admin}/faults", json={"method": "UpdateService", "code": code}, timeout=5)
            assert answer.status_code == 200, answer.text
        deadline = time.monotonic() + 120
        failures: list[BaseException] = []

        def one_tick() -> None:
            try:
                rollout.tick(env.runtime, datetime.now(UTC))
            except Exception as error:  # a transient failure: the next tick decides again
                failures.append(error)

        while True:
            ticks = [threading.Thread(target=one_tick) for _ in range(2)]
            for thread in ticks:
                thread.start()
            for thread in ticks:
                thread.join()
            share = dict(env.deployments.get_service(SERVICE).serving()).get(candidate, 0)  # type: ignore[union-attr]
            if share and (not splits or splits[-1] != share):
                splits.append(share)
            current = rollout.read_lease(env.runtime, SERVICE).rollout
            assert current is not None
            if not current.active:
                break
            assert time.monotonic() < deadline, f"the rollout did not end: {current}"
            time.sleep(1.0)
    http.delete(f"{admin}/faults", timeout=5)
    assert current.phase is Phase.PROMOTED, current.reason
    assert splits == list(STEPS)  # each split once, in order, never repeated or undone
    assert failures, "the injected UNAVAILABLE / ABORTED reached no tick"
    run = env.runtime.ledger.get_run("run-dup")
    assert run is not None
    names = [step.name for step in run.steps]
    assert len(names) == len(set(names))  # every step recorded once, however many ticks overlapped
