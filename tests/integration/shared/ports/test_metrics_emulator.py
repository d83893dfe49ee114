"""The ``Metrics`` contract against the Cloud Monitoring emulator, through the real ``monitoring_v3`` client
(gRPC): real requests go through the Cloud Run emulator's router to two revisions of a service, with the
candidate's errors and latency injected by the router; custom metric points are written with
``create_time_series``."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from emulators.apiserver.admin import EmulatorAdmin
from emulators.common.registry import LocalRegistry
from shared import clients
from shared.ports.deployments import CloudRunDeployments, TrafficTarget
from shared.ports.metrics import Metrics, MonitoringMetrics
from tests.contract.deployments import SERVER_SCRIPT, DeploymentsContract
from tests.contract.metrics import CustomMetricContract, CustomPoints, MetricsContract, Traffic
from tests.integration.api_emulators import PROJECT, ApiStack, running

pytestmark = pytest.mark.integration

LOCATION = "us-central1"
IMAGE = f"{LOCATION}-docker.pkg.dev/{PROJECT}/ports/server:metrics"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiStack]:
    root: Path = tmp_path_factory.mktemp("metrics-port")
    context = root / "server"
    context.mkdir()
    (context / "serve.py").write_text(SERVER_SCRIPT)
    (context / "Dockerfile").write_text(
        'FROM python:3.11-slim\nCOPY serve.py .\nENTRYPOINT ["python", "serve.py"]\n'
    )
    LocalRegistry(root / "registry").build(context, [IMAGE])
    with running(root, run=True) as api:
        clients.reset()
        yield api


@dataclass
class RoutedTraffic:
    """Requests sent to each revision's tag URL on the Cloud Run emulator."""

    admin: EmulatorAdmin
    service: str
    stable: str
    candidate: str
    urls: dict[str, str]

    def send(
        self, revision: str, count: int, *, error_rate: float = 0.0, extra_latency_ms: float = 0.0
    ) -> None:
        name = f"projects/{PROJECT}/locations/{LOCATION}/services/{self.service}/revisions/{revision}"
        fault = {"revision": name, "errorRate": error_rate, "status": 503, "latencyMs": extra_latency_ms}
        self.admin._call("POST", "router/faults", fault)
        try:
            with requests.Session() as session:
                for _ in range(count):
                    session.get(self.urls[revision], timeout=10)
        finally:
            self.admin._call("POST", "router/faults", {**fault, "errorRate": 0.0, "latencyMs": 0.0})


class TestMonitoringMetrics(MetricsContract):
    @pytest.fixture
    def metrics(self, stack: ApiStack) -> Metrics:
        return MonitoringMetrics(PROJECT, LOCATION)

    @pytest.fixture
    def traffic(self, stack: ApiStack) -> Traffic:
        deployments = CloudRunDeployments(PROJECT, LOCATION)
        contract = DeploymentsContract()
        service = f"svc-{uuid.uuid4().hex[:10]}"
        stable, candidate = contract.running(deployments, service, IMAGE)
        deployments.set_traffic(
            service, [TrafficTarget(stable, 100, "stable"), TrafficTarget(candidate, 0, "candidate")]
        )
        found = contract.settled(
            deployments,
            service,
            lambda s: s.tag_uri("stable") is not None and s.tag_uri("candidate") is not None,
        )
        urls = {stable: found.tag_uri("stable") or "", candidate: found.tag_uri("candidate") or ""}
        return RoutedTraffic(EmulatorAdmin(stack.hosts["run"]), service, stable, candidate, urls)


@dataclass
class CreatedPoints:
    """Points written through the real ``MetricServiceClient.create_time_series``, as an application does."""

    client: Any

    def write(self, metric_type: str, labels: Mapping[str, str], value: int | float, at: datetime) -> None:
        typed = {"int64_value": value} if isinstance(value, int) else {"double_value": value}
        seconds = math.floor(at.timestamp())
        self.client.create_time_series(
            request={
                "name": f"projects/{PROJECT}",
                "time_series": [
                    {
                        "metric": {"type": metric_type, "labels": dict(labels)},
                        "resource": {"type": "global"},
                        "metric_kind": "GAUGE",
                        "points": [
                            {
                                "interval": {
                                    "end_time": {"seconds": seconds, "nanos": at.microsecond * 1000}
                                },
                                "value": typed,
                            }
                        ],
                    }
                ],
            },
            timeout=10,
        )


class TestMonitoringCustomMetrics(CustomMetricContract):
    @pytest.fixture
    def metrics(self, stack: ApiStack) -> Metrics:
        return MonitoringMetrics(PROJECT, LOCATION)

    @pytest.fixture
    def custom_points(self, stack: ApiStack) -> CustomPoints:
        return CreatedPoints(clients.monitoring())
