"""A canary rollout end to end on one machine.

Build the sample server through the Cloud Build emulator, deploy it to the Cloud Run emulator as revision A,
roll out a bad model as revision B at 0%, split 90/10 with a ``candidate`` tag, drive 2,000 real requests
through the service URL, read the outcome back through the unmodified
``MetricServiceClient.list_time_series``, then roll back and verify by reading traffic back.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from google.api_core import exceptions
from google.cloud import run_v2
from google.cloud.devtools import cloudbuild_v1

from emulators.common.registry import LocalRegistry
from emulators.loadgen import run_load
from shared import clients
from tests.integration.api_emulators import PROJECT, ROOT, ApiStack, fast_polling, running, tarball, upload

pytestmark = pytest.mark.integration

LOCATION = "us-central1"
PARENT = f"projects/{PROJECT}/locations/{LOCATION}"
IMAGE = f"{LOCATION}-docker.pkg.dev/{PROJECT}/mlops/server:canary"
MODEL_URI = "gs://canary-models/v1/"
INSTANCE = {"instances": [[0.2, 0.9], [0.8, 0.1]]}
BAD_LATENCY_MS = 60
REQUESTS = 2000
REVISION = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION
COUNT = "run.googleapis.com/request_count"
LATENCIES = "run.googleapis.com/request_latencies"


@dataclass
class Canary:
    stack: ApiStack
    services: Any
    revisions: Any
    monitoring: Any


def _model_bytes() -> bytes:
    import joblib
    from sklearn.linear_model import LogisticRegression

    rows = [[0.0, 1.0], [0.1, 0.9], [0.2, 0.8], [0.9, 0.1], [1.0, 0.0], [0.8, 0.2]]
    model = LogisticRegression().fit(rows, ["cat", "cat", "cat", "dog", "dog", "dog"])
    buffer = io.BytesIO()
    joblib.dump({"model": model, "features": ["x", "y"]}, buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def canary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Canary]:
    root = tmp_path_factory.mktemp("canary")
    with running(root, storage=True, cloudbuild=True, run=True) as stack:
        upload("canary-models", "v1/model.joblib", _model_bytes())
        clients.reset()  # the clients read RUN_EMULATOR_HOST / MONITORING_EMULATOR_HOST now set
        try:
            yield Canary(
                stack=stack,
                services=clients.run_services(),
                revisions=clients.run_revisions(),
                monitoring=clients.monitoring(),
            )
        finally:
            clients.reset()


def _build_server_image(stack: ApiStack) -> None:
    """``gcloud builds submit examples/server`` against the Cloud Build emulator (its own cloudbuild.yaml)."""
    import yaml

    config = yaml.safe_load((ROOT / "examples" / "server" / "cloudbuild.yaml").read_text())
    generation = upload(f"{PROJECT}_cloudbuild", "source/server.tgz", tarball(ROOT / "examples" / "server"))
    client = cloudbuild_v1.CloudBuildClient(**stack.options("cloudbuild"))
    build = client.create_build(
        request={
            "project_id": PROJECT,
            "build": {
                "source": {
                    "storage_source": {
                        "bucket": f"{PROJECT}_cloudbuild",
                        "object_": "source/server.tgz",
                        "generation": generation,
                    }
                },
                "steps": config["steps"],
                "images": config["images"],
                "substitutions": {"_IMAGE": IMAGE},
            },
        }
    ).result(timeout=60, polling=fast_polling())
    assert build.status == cloudbuild_v1.Build.Status.SUCCESS, build.failure_info
    assert LocalRegistry.from_env().resolve(IMAGE).digest == build.results.images[0].digest


def _container(**env: str) -> run_v2.Container:
    variables = {"MODEL_URI": MODEL_URI, **env}
    return run_v2.Container(image=IMAGE, env=[run_v2.EnvVar(name=k, value=v) for k, v in variables.items()])


def _done(operation: Any) -> run_v2.Service:
    result: run_v2.Service = operation.result(timeout=60, polling=fast_polling())
    return result


def _short(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def _series(canary: Canary, filter_: str, aggregation: dict[str, Any], start: float) -> list[Any]:
    now = time.time()
    return list(
        canary.monitoring.list_time_series(
            request={
                "name": f"projects/{PROJECT}",
                "filter": filter_,
                "interval": {
                    "start_time": {"seconds": int(start) - 60},
                    "end_time": {"seconds": int(now) + 1},
                },
                "aggregation": {
                    "alignment_period": {"seconds": int(now) + 1 - int(start) + 60},
                    **aggregation,
                },
            }
        )
    )


def _requests_per_revision(canary: Canary, start: float) -> dict[str, int]:
    series = _series(
        canary,
        f'metric.type = "{COUNT}" AND resource.type = "cloud_run_revision" '
        'AND resource.labels.service_name = "predictor"',
        {
            "per_series_aligner": "ALIGN_DELTA",
            "cross_series_reducer": "REDUCE_SUM",
            "group_by_fields": ["resource.labels.revision_name"],
        },
        start,
    )
    return {s.resource.labels["revision_name"]: sum(p.value.int64_value for p in s.points) for s in series}


def test_canary_rollout_split_errors_latency_and_rollback(canary: Canary) -> None:
    started = time.time()
    _build_server_image(canary.stack)
    services, revisions = canary.services, canary.revisions

    # Revision A: the good model.
    service = _done(
        services.create_service(
            parent=PARENT,
            service_id="predictor",
            service=run_v2.Service(
                template=run_v2.RevisionTemplate(containers=[_container(MODEL_VERSION="v1")])
            ),
        )
    )
    a = _short(service.latest_ready_revision)
    answer = requests.post(f"{service.uri}/predict", json=INSTANCE, timeout=10).json()
    assert answer["predictions"] == ["cat", "dog"] and answer["revision"] == a

    # Revision B: the bad model, rolled out with traffic pinned to A — ready, at 0%.
    service.traffic = [run_v2.TrafficTarget(type_=REVISION, revision=a, percent=100)]
    bad_env = {
        "MODEL_VERSION": "v2",
        "ERROR_RATE": "0.5",
        "ERROR_MODE": "deterministic",
        "EXTRA_LATENCY_MS": str(BAD_LATENCY_MS),
    }
    service.template = run_v2.RevisionTemplate(containers=[_container(**bad_env)])
    service = _done(services.update_service(service=service))
    b = _short(service.latest_created_revision)
    assert b != a and service.latest_ready_revision.endswith(b)
    assert revisions.get_revision(name=service.latest_created_revision).conditions
    assert [(t.revision, t.percent) for t in service.traffic_statuses] == [(a, 100)]

    # Traffic summing to 90 is refused; then A 90 / B 10 with the tag "candidate".
    service.traffic = [
        run_v2.TrafficTarget(type_=REVISION, revision=a, percent=80),
        run_v2.TrafficTarget(type_=REVISION, revision=b, percent=10, tag="candidate"),
    ]
    with pytest.raises(exceptions.BadRequest) as refused:
        services.update_service(service=service)
    assert "sum to 90" in refused.value.message
    assert refused.value.response.json()["error"]["status"] == "INVALID_ARGUMENT"  # type: ignore[union-attr]
    service.traffic[0].percent = 90
    service = _done(services.update_service(service=service))
    statuses = {t.revision: t for t in service.traffic_statuses}
    assert statuses[a].percent == 90 and statuses[b].percent == 10 and statuses[b].tag == "candidate"

    # 2,000 real requests through the service URL.
    load = run_load(f"{service.uri}/predict", REQUESTS, concurrency=4, max_seconds=90, json_body=INSTANCE)
    assert load.sent == REQUESTS and load.errors == 0, load.summary()
    print("load:", load.summary())

    # The split, as Cloud Monitoring reports it (REDUCE_SUM grouped by revision_name).
    deadline = time.monotonic() + 15
    per_revision: dict[str, int] = {}
    while time.monotonic() < deadline:
        per_revision = _requests_per_revision(canary, started)
        if sum(per_revision.values()) >= REQUESTS + 1:  # + the first /predict to A
            break
        time.sleep(0.3)
    assert sum(per_revision.values()) == REQUESTS + 1, per_revision
    share_b = per_revision[b] / REQUESTS
    print(f"split: {per_revision} -> B share {share_b:.4f}")
    assert abs(share_b - 0.10) <= 0.025

    # The tag URL reaches only B.
    tag_uri = statuses[b].uri
    with requests.Session() as session:
        tagged = [
            session.post(f"{tag_uri}/predict", json=INSTANCE, timeout=10).json()["revision"]
            for _ in range(20)
        ]
    assert set(tagged) == {b}

    # B fails half its requests, A none: the 5xx share of each revision's request_count.
    deadline = time.monotonic() + 15
    while (
        time.monotonic() < deadline
        and _requests_per_revision(canary, started).get(b, 0) < per_revision[b] + 20
    ):
        time.sleep(0.3)
    by_class = _series(
        canary,
        f'metric.type = "{COUNT}" AND resource.labels.service_name = "predictor"',
        {
            "per_series_aligner": "ALIGN_DELTA",
            "cross_series_reducer": "REDUCE_SUM",
            "group_by_fields": ["resource.labels.revision_name", "metric.labels.response_code_class"],
        },
        started,
    )
    counts: dict[str, dict[str, int]] = {}
    for s in by_class:
        revision_counts = counts.setdefault(s.resource.labels["revision_name"], {})
        revision_counts[s.metric.labels["response_code_class"]] = sum(p.value.int64_value for p in s.points)
    share_5xx = {rev: c.get("5xx", 0) / sum(c.values()) for rev, c in counts.items()}
    print(f"5xx: {counts} -> {share_5xx}")
    assert abs(share_5xx[b] - 0.5) <= 0.05 and share_5xx[a] == 0

    # p95 latency per revision (successful requests), through ALIGN_PERCENTILE_95.
    p95_series = _series(
        canary,
        f'metric.type = "{LATENCIES}" AND resource.labels.service_name = "predictor" '
        'AND metric.labels.response_code = "200"',
        {"per_series_aligner": "ALIGN_PERCENTILE_95"},
        started,
    )
    p95 = {s.resource.labels["revision_name"]: s.points[0].value.double_value for s in p95_series}
    print(f"p95 ms: {p95}")
    assert p95[b] >= BAD_LATENCY_MS and p95[a] < p95[b]

    # Roll back: all traffic to A, verified by reading traffic back; B is then no longer serving.
    service.traffic = [run_v2.TrafficTarget(type_=REVISION, revision=a, percent=100)]
    rolled_back = _done(services.update_service(service=service))
    read_back = services.get_service(name=rolled_back.name)
    assert [(t.revision, t.percent, t.tag) for t in read_back.traffic_statuses] == [(a, 100, "")]
    after = run_load(f"{read_back.uri}/predict", 50, concurrency=2, max_seconds=30, json_body=INSTANCE)
    assert after.by_status == {200: 50} and after.by_revision == {a: 50}
    revisions.delete_revision(name=read_back.latest_created_revision).result(timeout=10)
    assert [_short(r.name) for r in revisions.list_revisions(parent=read_back.name)] == [a]
