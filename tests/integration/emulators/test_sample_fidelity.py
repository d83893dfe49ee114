"""Google's own published samples, run against our API emulators through the unmodified client libraries.

Each test makes the call a sample makes (the generated ``sample_*`` snippets, python-docs-samples'
Monitoring and Cloud Build snippets) and checks the answer the real API gives, one fidelity gap each:
Vertex AI refusing a PipelineJob without a spec, Monitoring's ``group_by_fields`` shorthand and metric types
without data, Cloud Build's log streamed while a step runs, Cloud Run's server-side defaults.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from google.api import launch_stage_pb2
from google.api_core import exceptions
from google.cloud import aiplatform_v1, monitoring_v3, run_v2
from google.cloud.devtools import cloudbuild_v1

from emulators.common.registry import LocalRegistry
from shared.clients import monitoring_emulator_client
from tests.integration.api_emulators import PROJECT, ApiStack, fast_polling, poll, running

pytestmark = pytest.mark.integration

LOCATION = "us-central1"
PARENT = f"projects/{PROJECT}/locations/{LOCATION}"
SERVER_IMAGE = f"{LOCATION}-docker.pkg.dev/{PROJECT}/samples/hello:1"
HELLO_SERVER = """
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Hello).serve_forever()
"""
BuildStatus = cloudbuild_v1.Build.Status
BUILD_DONE = {BuildStatus.SUCCESS, BuildStatus.FAILURE, BuildStatus.CANCELLED, BuildStatus.TIMEOUT}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiStack]:
    root = tmp_path_factory.mktemp("samples")
    with running(root, cloudbuild=True, vertex=True, run=True) as s:
        context = root / "hello"
        context.mkdir()
        (context / "server.py").write_text(HELLO_SERVER)
        (context / "Dockerfile").write_text(
            'FROM python:3.11-slim\nWORKDIR /app\nCOPY server.py .\nCMD ["python", "server.py"]\n'
        )
        LocalRegistry(Path(s.env["LOCAL_REGISTRY_DIR"])).build(context, [SERVER_IMAGE])
        yield s


# -- Vertex AI: generated sample ``aiplatform_v1_generated_PipelineService_CreatePipelineJob_sync`` --


def test_create_pipeline_job_without_a_spec_is_invalid_argument_naming_the_field(stack: ApiStack) -> None:
    client = aiplatform_v1.PipelineServiceClient(**stack.options("vertex"))
    request = aiplatform_v1.CreatePipelineJobRequest(parent=PARENT)  # the sample sets nothing else

    with pytest.raises(exceptions.BadRequest) as caught:  # REST maps every 400 to BadRequest
        client.create_pipeline_job(request=request)

    body = caught.value.response.json()["error"]  # type: ignore[union-attr]
    assert body["status"] == "INVALID_ARGUMENT"
    assert "pipeline_spec" in body["message"]


# -- Cloud Monitoring: python-docs-samples monitoring/snippets/v3/cloud-client/snippets.py --


def _monitoring(stack: ApiStack) -> Any:
    return monitoring_emulator_client(stack.env["MONITORING_EMULATOR_HOST"])


def _last_hour() -> tuple[monitoring_v3.TimeInterval, int]:
    seconds = int(time.time())
    interval = monitoring_v3.TimeInterval(
        {"end_time": {"seconds": seconds}, "start_time": {"seconds": seconds - 3600}}
    )
    return interval, seconds


def test_group_by_accepts_the_resource_and_metric_shorthand(stack: ApiStack) -> None:
    interval, end = _last_hour()
    # Requests served 10 minutes ago: svc-a 3 x 200, svc-b 1 x 200 and 2 x 503.
    served = [("svc-a", 200)] * 3 + [("svc-b", 200)] + [("svc-b", 503)] * 2
    recorded = [
        {"service": "sample", "revision": revision, "status": status, "latencyMs": 5, "time": end - 600}
        for revision, status in served
    ]
    admin = f"http://{stack.state.extra_hosts['run--monitoring-port']}/_emulator/requests"
    requests.post(admin, json={"requests": recorded}, timeout=5).raise_for_status()

    def reduce(group_by_fields: list[str]) -> list[tuple[dict[str, str], dict[str, str], int]]:
        # list_time_series_reduce, on the metric a canary reads.
        aggregation = monitoring_v3.Aggregation(
            {
                "alignment_period": {"seconds": 3600},
                "per_series_aligner": monitoring_v3.Aggregation.Aligner.ALIGN_DELTA,
                "cross_series_reducer": monitoring_v3.Aggregation.Reducer.REDUCE_SUM,
                "group_by_fields": group_by_fields,
            }
        )
        results = _monitoring(stack).list_time_series(
            request={
                "name": f"projects/{PROJECT}",
                "filter": 'metric.type = "run.googleapis.com/request_count" AND '
                'resource.labels.service_name = "sample"',
                "interval": interval,
                "view": monitoring_v3.ListTimeSeriesRequest.TimeSeriesView.FULL,
                "aggregation": aggregation,
            }
        )
        found = [
            (dict(series.resource.labels), dict(series.metric.labels), series.points[0].value.int64_value)
            for series in results
        ]
        return sorted(found, key=repr)

    shorthand = reduce(["resource.revision_name", "metric.response_code_class"])

    assert shorthand == [
        ({"revision_name": "svc-a"}, {"response_code_class": "2xx"}, 3),
        ({"revision_name": "svc-b"}, {"response_code_class": "2xx"}, 1),
        ({"revision_name": "svc-b"}, {"response_code_class": "5xx"}, 2),
    ]
    assert shorthand == reduce(["resource.labels.revision_name", "metric.labels.response_code_class"])


def test_a_metric_type_without_data_lists_nothing(stack: ApiStack) -> None:
    interval, _ = _last_hour()
    client = _monitoring(stack)
    aggregation = monitoring_v3.Aggregation(  # list_time_series_aggregate
        {
            "alignment_period": {"seconds": 1200},
            "per_series_aligner": monitoring_v3.Aggregation.Aligner.ALIGN_MEAN,
        }
    )
    for metric_type in (
        "compute.googleapis.com/instance/cpu/utilization",
        "run.googleapis.com/container/cpu/utilizations",
    ):
        results = client.list_time_series(
            request={
                "name": f"projects/{PROJECT}",
                "filter": f'metric.type = "{metric_type}"',
                "interval": interval,
                "view": monitoring_v3.ListTimeSeriesRequest.TimeSeriesView.FULL,
                "aggregation": aggregation,
            }
        )
        assert list(results) == [], metric_type
    with pytest.raises(exceptions.InvalidArgument):  # a malformed filter is still an error
        list(
            client.list_time_series(
                request={
                    "name": f"projects/{PROJECT}",
                    "filter": 'metric.type = "compute.googleapis.com/instance/cpu/utilization" AND',
                    "interval": interval,
                }
            )
        )


# -- Cloud Build: python-docs-samples cloudbuild/snippets/quickstart.py, with a long step --


def test_build_log_shows_a_running_steps_output_so_far(stack: ApiStack) -> None:
    client = cloudbuild_v1.CloudBuildClient(**stack.options("cloudbuild"))
    build = cloudbuild_v1.Build()
    build.steps = [
        {"name": "ubuntu", "entrypoint": "bash", "args": ["-c", "echo hello world; sleep 60; echo goodbye"]}
    ]
    operation = client.create_build(project_id=PROJECT, build=build)
    build_id = operation.metadata.build.id

    def log_text() -> str:
        log_url = client.get_build(project_id=PROJECT, id=build_id).log_url
        with urllib.request.urlopen(log_url, timeout=5) as answer:
            text: str = answer.read().decode()
        return text

    try:
        poll(log_text, lambda text: "Step #0: hello world" in text, timeout=15, interval=0.2)
        running_build = client.get_build(project_id=PROJECT, id=build_id)
        assert running_build.status == BuildStatus.WORKING
        assert running_build.steps[0].status == BuildStatus.WORKING
        text = log_text()
        assert "Starting Step #0" in text and "goodbye" not in text and "Finished Step #0" not in text
    finally:
        client.cancel_build(project_id=PROJECT, id=build_id)
    poll(lambda: client.get_build(project_id=PROJECT, id=build_id).status, lambda s: s in BUILD_DONE)


# -- Cloud Run: generated sample ``run_v2_generated_Services_CreateService``, with an image only --


def _assert_server_defaults(service: run_v2.Service, concurrency: int = 80) -> None:
    template = service.template
    assert service.ingress == run_v2.IngressTraffic.INGRESS_TRAFFIC_ALL
    assert service.launch_stage == launch_stage_pb2.GA
    assert template.timeout.total_seconds() == 300
    assert template.max_instance_request_concurrency == concurrency
    assert template.scaling.max_instance_count == 100
    (container,) = template.containers
    assert list(container.ports) == [run_v2.ContainerPort(name="http1", container_port=8080)]
    assert dict(container.resources.limits) == {"cpu": "1000m", "memory": "512Mi"}
    assert container.resources.cpu_idle is True
    probe = container.startup_probe
    assert probe.tcp_socket.port == 8080
    assert (probe.timeout_seconds, probe.period_seconds, probe.failure_threshold) == (240, 240, 1)


def test_run_service_comes_back_with_the_server_side_defaults(stack: ApiStack) -> None:
    services = run_v2.ServicesClient(**stack.options("run"))
    revisions = run_v2.RevisionsClient(**stack.options("run"))
    sent = run_v2.Service(template=run_v2.RevisionTemplate(containers=[run_v2.Container(image=SERVER_IMAGE)]))

    created = services.create_service(parent=PARENT, service=sent, service_id="hello").result(
        timeout=60, polling=fast_polling()
    )

    _assert_server_defaults(created)
    read = services.get_service(name=created.name)
    _assert_server_defaults(read)
    (listed,) = [item for item in services.list_services(parent=PARENT) if item.name == created.name]
    _assert_server_defaults(listed)
    revision = revisions.get_revision(name=read.latest_ready_revision)
    assert revision.timeout.total_seconds() == 300 and revision.max_instance_request_concurrency == 80
    assert revision.launch_stage == launch_stage_pb2.GA
    assert revision.containers[0].ports[0].container_port == 8080

    # Resending the template as first sent, or as read back, changes nothing: no new revision.
    sent.name = created.name
    same = services.update_service(service=sent).result(timeout=60, polling=fast_polling())
    again = services.update_service(service=read).result(timeout=60, polling=fast_polling())
    assert same.latest_created_revision == again.latest_created_revision == read.latest_created_revision
    assert again.generation == read.generation

    # A value the caller sets is kept; the other defaults stay.
    again.template.max_instance_request_concurrency = 10
    again.ingress = run_v2.IngressTraffic.INGRESS_TRAFFIC_INTERNAL_ONLY
    updated = services.update_service(service=again).result(timeout=60, polling=fast_polling())
    assert updated.ingress == run_v2.IngressTraffic.INGRESS_TRAFFIC_INTERNAL_ONLY
    updated.ingress = run_v2.IngressTraffic.INGRESS_TRAFFIC_ALL  # to check the rest with the helper
    _assert_server_defaults(updated, concurrency=10)
    assert updated.latest_created_revision != read.latest_created_revision
