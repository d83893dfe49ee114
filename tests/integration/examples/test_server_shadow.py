"""The sample server mirrors live requests for a shadow rollout, end to end on the emulators.

A service on the Cloud Run emulator runs two revisions of the sample server (built from ``examples/server``):
the stable at 100% and a candidate at 0% behind its ``candidate`` tag that fails half its requests. Both have
``SHADOW_CONTROL_URI``. Once the mirror control object names the candidate's tag URL, every request the stable
answers is copied to the candidate; the comparison counts arrive in Cloud Monitoring (read through the
``Metrics`` port), the candidate's own Cloud Run request metrics count the copies, and deleting the object
stops the copying.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from google.cloud import run_v2

from emulators.common.registry import LocalRegistry
from shared import clients
from shared.ports.metrics import MetricSummary, MonitoringMetrics
from tests.integration.api_emulators import PROJECT, ROOT, ApiStack, fast_polling, running, upload

pytestmark = pytest.mark.integration

LOCATION = "us-central1"
PARENT = f"projects/{PROJECT}/locations/{LOCATION}"
IMAGE = f"{LOCATION}-docker.pkg.dev/{PROJECT}/mlops/server:shadow"
SERVICE = "shadowed"
MODEL_URI = "gs://shadow-models/v1/"
CONTROL_BUCKET = "shadow-control"
CONTROL_OBJECT = f"rollouts/{SERVICE}/shadow.json"
METRIC = "custom.googleapis.com/mlops/shadow_comparisons"
INSTANCE = {"instances": [[0.2, 0.9], [0.8, 0.1]]}
REVISION = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION
REQUESTS = 50


@dataclass
class Shadowed:
    stack: ApiStack
    url: str
    stable: str
    candidate: str
    candidate_url: str


def _model_bytes() -> bytes:
    import joblib
    from sklearn.linear_model import LogisticRegression

    rows = [[0.0, 1.0], [0.1, 0.9], [0.2, 0.8], [0.9, 0.1], [1.0, 0.0], [0.8, 0.2]]
    model = LogisticRegression().fit(rows, ["cat", "cat", "cat", "dog", "dog", "dog"])
    buffer = io.BytesIO()
    joblib.dump({"model": model, "features": ["x", "y"]}, buffer)
    return buffer.getvalue()


def _container(**env: str) -> run_v2.Container:
    variables = {
        "MODEL_URI": MODEL_URI,
        "SHADOW_CONTROL_URI": f"gs://{CONTROL_BUCKET}/{CONTROL_OBJECT}",
        **env,
    }
    return run_v2.Container(image=IMAGE, env=[run_v2.EnvVar(name=k, value=v) for k, v in variables.items()])


def _short(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def _eventually(fetch: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not done after {timeout}s; last value: {value!r}")
        time.sleep(0.25)


@pytest.fixture(scope="module")
def shadowed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shadowed]:
    root: Path = tmp_path_factory.mktemp("shadow")
    LocalRegistry(root / "registry").build(ROOT / "examples" / "server", [IMAGE])
    with running(root, storage=True, run=True) as stack:
        clients.reset()  # the clients read the emulator variables now set
        try:
            upload("shadow-models", "v1/model.joblib", _model_bytes())
            upload(CONTROL_BUCKET, "placeholder", b"")  # the bucket exists; the control object does not
            services = clients.run_services()
            service = services.create_service(
                parent=PARENT,
                service_id=SERVICE,
                service=run_v2.Service(
                    template=run_v2.RevisionTemplate(containers=[_container(MODEL_VERSION="v1")])
                ),
            ).result(timeout=60, polling=fast_polling())
            stable = _short(service.latest_ready_revision)
            service.traffic = [run_v2.TrafficTarget(type_=REVISION, revision=stable, percent=100)]
            failing = {"MODEL_VERSION": "v2", "ERROR_RATE": "0.5", "ERROR_MODE": "deterministic"}
            service.template = run_v2.RevisionTemplate(containers=[_container(**failing)])
            service = services.update_service(service=service).result(timeout=60, polling=fast_polling())
            candidate = _short(service.latest_created_revision)
            service.traffic = [
                run_v2.TrafficTarget(type_=REVISION, revision=stable, percent=100),
                run_v2.TrafficTarget(type_=REVISION, revision=candidate, percent=0, tag="candidate"),
            ]
            service = services.update_service(service=service).result(timeout=60, polling=fast_polling())
            tag_url = next(t.uri for t in service.traffic_statuses if t.tag == "candidate")
            yield Shadowed(stack, service.uri, stable, candidate, tag_url)
        finally:
            clients.reset()


def _revision_log(shadowed: Shadowed, revision: str) -> str:
    path = shadowed.stack.root / "run" / "revisions" / revision / "revision.log"
    return path.read_text(errors="replace") if path.exists() else ""


def _last_state(log: str) -> str:
    """The mirror's last logged state ("on: …" / "off: …")."""
    return log.rsplit("shadow mirroring ", 1)[-1] if "shadow mirroring " in log else ""


def _send(url: str, count: int) -> list[str]:
    with requests.Session() as session:
        answers = [session.post(f"{url}/predict", json=INSTANCE, timeout=10) for _ in range(count)]
    assert {answer.status_code for answer in answers} == {200}
    return [answer.json()["revision"] for answer in answers]


def test_a_shadow_copies_live_requests_and_reports_the_comparison(shadowed: Shadowed) -> None:
    metrics = MonitoringMetrics(PROJECT, LOCATION)
    started = datetime.now(UTC) - timedelta(seconds=1)

    def comparisons() -> dict[str, MetricSummary]:
        return metrics.custom_metric(
            METRIC,
            started,
            datetime.now(UTC) + timedelta(seconds=1),
            group_by="outcome",
            where={"candidate": shadowed.candidate},
        )

    def candidate_requests() -> int:
        found = metrics.revision_metrics(
            SERVICE, started, datetime.now(UTC) + timedelta(seconds=1), revisions=[shadowed.candidate]
        ).for_revision(shadowed.candidate)
        return found.requests if found is not None else 0

    # Before the control object exists nothing is copied.
    assert set(_send(shadowed.url, 5)) == {shadowed.stable}
    control = {
        "target": shadowed.candidate_url,
        "sample": 1.0,
        "candidate": shadowed.candidate,
        "run_id": "r1",
    }
    upload(CONTROL_BUCKET, CONTROL_OBJECT, json.dumps(control).encode())
    _eventually(lambda: _last_state(_revision_log(shadowed, shadowed.stable)), lambda s: s.startswith("on:"))
    assert "shadow mirroring off: this revision is the candidate" in _eventually(
        lambda: _revision_log(shadowed, shadowed.candidate),
        lambda text: "this revision is the candidate" in text,
    )

    assert set(_send(shadowed.url, REQUESTS)) == {shadowed.stable}  # users are answered by the stable only

    # The candidate fails every second request (ERROR_RATE 0.5, deterministic) and agrees on the others.
    found = _eventually(comparisons, lambda got: sum(item.total for item in got.values()) >= REQUESTS)
    assert {outcome: item.total for outcome, item in found.items()} == {"agree": 25.0, "error": 25.0}
    assert _eventually(candidate_requests, lambda count: count >= REQUESTS) == REQUESTS
    found_5xx = metrics.revision_metrics(
        SERVICE, started, datetime.now(UTC) + timedelta(seconds=1), revisions=[shadowed.candidate]
    ).for_revision(shadowed.candidate)
    assert found_5xx is not None and found_5xx.count("5xx") == 25

    # Deleting the control object stops the copies.
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.storage import Client

    storage = Client(project=PROJECT, credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]
    storage.bucket(CONTROL_BUCKET).blob(CONTROL_OBJECT).delete()
    _eventually(
        lambda: _last_state(_revision_log(shadowed, shadowed.stable)),
        lambda state: state.startswith("off: no control object"),
    )
    _send(shadowed.url, 20)
    time.sleep(3)  # a flush (1 s) and the reporting delay (0.5 s) pass: anything copied would show by now
    assert candidate_requests() == REQUESTS
    assert {outcome: item.total for outcome, item in comparisons().items()} == {"agree": 25.0, "error": 25.0}
