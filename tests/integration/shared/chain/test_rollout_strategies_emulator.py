"""Shadow and A/B rollouts on the Cloud Run, Cloud Monitoring and Cloud Storage emulators, with the sample
serving image (``examples/server``) and real traffic.

* Shadow: the engine writes the mirror's control object, the stable revision's server copies every request
  it answers to the candidate's tag URL and writes the comparison as a custom metric; the engine reads it
  back. A candidate with the same model agrees and is promoted; one whose model answers differently is rolled
  back; users are answered by the stable revision only, all along; the control object is gone at the end.
* A/B: a 50/50 split held for the test's duration while "the application" (this test) writes a retention
  metric per answering revision through the real Monitoring client; the candidate wins or loses on it.

Ticks are driven here once a second, as the stack's reconcile ticker would; the ledger, publisher and
registry are the in-memory ones.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from emulators.common.registry import LocalRegistry
from shared import clients
from shared.chain import experiments, rollout
from shared.chain.contracts import RolloutRequested
from shared.config import PipelineConfig, parse_config
from shared.ledger import InMemoryLedger
from shared.notify import RecordingTransport
from shared.ports import Ports, fake_ports
from shared.ports.deployments import CloudRunDeployments, RevisionSpec, revision_name
from shared.ports.errors import NotFound
from shared.ports.metrics import MonitoringMetrics
from shared.ports.objects import StorageObjects
from shared.ports.registry import ModelUpload
from shared.publisher import InMemoryPublisher
from shared.rollout.machine import Phase, Rollout
from shared.runtime import Runtime, use
from tests.integration.api_emulators import PROJECT, ROOT, ApiStack, running, upload

pytestmark = pytest.mark.integration

LOCATION = "us-central1"
SERVICE = "churn-strategies"
IMAGE = f"{LOCATION}-docker.pkg.dev/{PROJECT}/mlops/server:strategies"
ARTIFACTS = "strategies-artifacts"
RETAINED = "custom.googleapis.com/it/retained"
BODY = {"instances": [[0.2, 0.9], [0.8, 0.1]]}


def _model(labels: tuple[str, str]) -> bytes:
    import joblib
    from sklearn.linear_model import LogisticRegression

    rows = [[0.0, 1.0], [0.1, 0.9], [0.2, 0.8], [0.9, 0.1], [1.0, 0.0], [0.8, 0.2]]
    first, second = labels
    model = LogisticRegression().fit(rows, [first] * 3 + [second] * 3)
    buffer = io.BytesIO()
    joblib.dump({"model": model, "features": ["x", "y"]}, buffer)
    return buffer.getvalue()


def _config() -> PipelineConfig:
    return parse_config(
        {
            "apiVersion": "mlops.dev/v1",
            "kind": "Pipeline",
            "spec": {
                "project": PROJECT,
                "region": LOCATION,
                "topicPrefix": "it-",
                "artifacts": {"bucket": ARTIFACTS},
                "models": [{"name": "churn", "trainer": {"image": "trainer:seed"}}],
                "services": [
                    {
                        "name": SERVICE,
                        "model": "churn",
                        "canary": {"inconclusive": {"wait": "20s", "then": "fail"}},
                        "analysis": {"max5xxShare": 0.05, "maxP95Ratio": 5.0},
                        # Run before a shadow or A/B candidate is compared: it answers, and it is warm.
                        "smoke": [
                            {
                                "path": "/predict",
                                "method": "POST",
                                "body": BODY,
                                "expectJson": ["predictions"],
                            }
                        ],
                        "shadow": {"sample": 1.0, "duration": "4s", "minRequests": 20, "minAgreement": 0.9},
                        "ab": {
                            "split": 50,
                            "duration": "5s",
                            "minRequests": 20,
                            "metric": {"type": RETAINED, "direction": "higher", "minLift": 0.1},
                        },
                    }
                ],
            },
        },
        "integration.yaml",
        env={},
    )


@dataclass
class Env:
    runtime: Runtime
    deployments: CloudRunDeployments
    objects: StorageObjects


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root: Path = tmp_path_factory.mktemp("strategies")
    LocalRegistry(root / "registry").build(ROOT / "examples" / "server", [IMAGE])
    with running(root, storage=True, run=True) as _stack:
        clients.reset()
        try:
            yield _env(_stack)
        finally:
            clients.reset()


def _env(_stack: ApiStack) -> Env:
    config = _config()
    upload("strategy-models", "v1/model.joblib", _model(("cat", "dog")))
    upload("strategy-models", "v2/model.joblib", _model(("cat", "dog")))  # answers as v1 does
    upload("strategy-models", "v3/model.joblib", _model(("dog", "cat")))  # answers the opposite
    for version in ("4", "5"):  # the A/B candidates: the business metric tells them apart, not the model
        upload("strategy-models", f"v{version}/model.joblib", _model(("cat", "dog")))
    upload(ARTIFACTS, "placeholder", b"")  # the artifacts bucket (the chain writes models there)
    fakes = fake_ports(project=PROJECT)
    for version in ("1", "2", "3", "4", "5", "6"):
        fakes.registry.upload(ModelUpload("churn", "churn", f"gs://strategy-models/v{version}/"))
    deployments = CloudRunDeployments(PROJECT, LOCATION)
    objects = StorageObjects()
    ports = Ports(
        builds=fakes.builds,
        training=fakes.training,
        registry=fakes.registry,
        deployments=deployments,
        metrics=MonitoringMetrics(PROJECT),
        objects=objects,
    )
    runtime = Runtime(config, InMemoryLedger(), InMemoryPublisher(), RecordingTransport(), ports=ports)
    stable = revision_name(SERVICE, "seed")
    env = {
        "MODEL_URI": "gs://strategy-models/v1/",
        "MODEL_VERSION": "1",
        "SHADOW_CONTROL_URI": experiments.control_uri(config, SERVICE),
    }
    deployments.create_service(SERVICE, RevisionSpec(stable, IMAGE, env=env), tag="stable")
    _wait(lambda: (s := deployments.get_service(SERVICE)) is not None and s.serving() == [(stable, 100)])
    use(runtime).__enter__()  # the module's runtime (the fixture's scope ends with the stack)
    return Env(runtime, deployments, objects)


def _wait(done: Any, seconds: float = 60.0) -> None:
    limit = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < limit, "timed out"
        time.sleep(0.2)


class Users:
    """Real users of the service: they note which revision answered, and — the application's part of an
    A/B test — write whether each kept its subscription as ``RETAINED`` labelled with that revision."""

    def __init__(self, url: str, retention: dict[str, float] | None = None) -> None:
        self.url = url
        self.retention = retention or {}
        self.stop = threading.Event()
        self.answered: dict[str, int] = {}
        self.statuses: dict[int, int] = {}
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        last_write = 0.0
        with requests.Session() as session:
            while not self.stop.is_set():
                answer = session.post(f"{self.url}/predict", json=BODY, timeout=10)
                self.statuses[answer.status_code] = self.statuses.get(answer.status_code, 0) + 1
                if answer.status_code == 200:
                    revision = str(answer.json().get("revision", ""))
                    self.answered[revision] = self.answered.get(revision, 0) + 1
                if self.retention and time.monotonic() - last_write >= 0.5:
                    self._write_retention()
                    last_write = time.monotonic()
                time.sleep(0.02)

    def _write_retention(self) -> None:
        from google.cloud import monitoring_v3

        now = time.time()
        series = []
        for revision, value in self.retention.items():
            point = monitoring_v3.Point(
                interval=monitoring_v3.TimeInterval(
                    end_time={"seconds": int(now), "nanos": int(now % 1 * 1e9)}
                ),
                value=monitoring_v3.TypedValue(double_value=value),
            )
            series.append(
                monitoring_v3.TimeSeries(
                    metric={"type": RETAINED, "labels": {"revision": revision}},
                    resource={"type": "global", "labels": {"project_id": PROJECT}},
                    points=[point],
                )
            )
        clients.monitoring().create_time_series(name=f"projects/{PROJECT}", time_series=series)

    def __enter__(self) -> Users:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(timeout=15)


def request(run_id: str, version: str, strategy: str) -> RolloutRequested:
    return RolloutRequested(
        service=SERVICE,
        model="churn",
        version=version,
        version_resource=f"projects/{PROJECT}/locations/{LOCATION}/models/churn@{version}",
        artifact_uri=f"gs://strategy-models/v{version}/",
        image=IMAGE,
        cause="manual",
        approved_by="ada@example.com",
        nonce=f"n-{run_id}",
        strategy=strategy,
    )


def drive(env: Env, run_id: str, users: Users, limit: float = 90.0) -> Rollout:
    """Tick once a second until the rollout ends, checking what users are served on the way."""
    deadline = time.monotonic() + limit
    while True:
        rollout.tick(env.runtime, datetime.now(UTC))
        current = rollout.read_lease(env.runtime, SERVICE).rollout
        assert current is not None and current.run_id == run_id
        if not current.active:
            return current
        assert time.monotonic() < deadline, f"the rollout did not end: {current}"
        time.sleep(1.0)


def control_object(env: Env) -> bytes | None:
    bucket, name = experiments.control_object(env.runtime.config, SERVICE) or ("", "")
    try:
        return env.objects.read_bytes(bucket, name)
    except NotFound:
        return None


def serving(env: Env) -> list[tuple[str, int]]:
    service = env.deployments.get_service(SERVICE)
    assert service is not None
    return service.serving()


def start(env: Env, run_id: str, version: str, strategy: str) -> tuple[str, str]:
    stable = serving(env)[0][0]
    rollout.start(env.runtime, run_id, request(run_id, version, strategy), datetime.now(UTC))
    return stable, revision_name(SERVICE, run_id)


def step_result(env: Env, run_id: str) -> dict[str, Any]:
    run = env.runtime.ledger.get_run(run_id)
    assert run is not None
    step = run.step("rollout:step:0")
    assert step is not None, [s.name for s in run.steps]
    return dict(step.detail["result"])


def test_a_shadow_candidate_that_disagrees_is_rolled_back_without_serving_a_user(env: Env) -> None:
    url = env.deployments.get_service(SERVICE).uri  # type: ignore[union-attr]
    with Users(url) as users:
        stable, _candidate = start(env, "shadow-bad", "3", "shadow")
        ended = drive(env, "shadow-bad", users)
    assert ended.phase is Phase.ROLLED_BACK, ended.reason
    assert "predictions agree on 0.0% of copies" in ended.reason
    assert set(users.answered) == {stable} and users.statuses == {200: sum(users.answered.values())}
    result = step_result(env, "shadow-bad")
    # Judged as soon as enough copies disagree (an unhealthy verdict does not wait for the duration).
    assert result["shadow"]["disagree"] >= 20 and result["shadow"]["agreement"] == 0.0
    assert serving(env) == [(stable, 100)]
    assert control_object(env) is None  # the mirror is off again


def test_a_shadow_candidate_that_agrees_is_promoted(env: Env) -> None:
    url = env.deployments.get_service(SERVICE).uri  # type: ignore[union-attr]
    with Users(url) as users:
        stable, candidate = start(env, "shadow-good", "2", "shadow")
        ended = drive(env, "shadow-good", users)
    assert ended.phase is Phase.PROMOTED, ended.reason
    result = step_result(env, "shadow-good")
    assert result["shadow"]["agreement"] == 1.0 and result["shadow"]["total"] >= 20
    assert result["verdict"] == "healthy"
    assert result["revisions"][candidate]["requests"] >= 20  # the copies, counted on the candidate itself
    assert serving(env) == [(candidate, 100)]
    assert users.answered.get(stable, 0) > 0
    assert control_object(env) is None


@pytest.mark.parametrize(
    ("run_id", "version", "candidate_retention", "phase"),
    [("ab-win", "4", 0.9, Phase.PROMOTED), ("ab-lose", "5", 0.5, Phase.ROLLED_BACK)],
)
def test_an_ab_test_splits_then_its_metric_decides(
    env: Env, run_id: str, version: str, candidate_retention: float, phase: Phase
) -> None:
    url = env.deployments.get_service(SERVICE).uri  # type: ignore[union-attr]
    stable = serving(env)[0][0]
    candidate = revision_name(SERVICE, run_id)
    with Users(url, {stable: 0.55, candidate: candidate_retention}) as users:
        start(env, run_id, version, "ab")
        ended = drive(env, run_id, users)
    assert ended.phase is phase, ended.reason
    result = step_result(env, run_id)
    assert result["percent"] == 50 and "ab" in result, (ended.reason, result)  # decided by the metric
    assert result["ab"]["candidate_mean"] == pytest.approx(candidate_retention)
    assert result["ab"]["stable_mean"] == pytest.approx(0.55)
    # Both revisions answered users during the test (a real split, not a switch).
    assert users.answered.get(stable, 0) >= 10 and users.answered.get(candidate, 0) >= 10
    expected = [(candidate, 100)] if phase is Phase.PROMOTED else [(stable, 100)]
    assert serving(env) == expected
