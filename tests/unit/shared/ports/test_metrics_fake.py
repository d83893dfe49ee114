"""The ``Metrics`` contract against the in-memory fake."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import pytest

from shared.errors import InvalidInput
from shared.ports.metrics import Metrics
from shared.ports.metrics_fake import FakeMetrics, percentile
from tests.contract.metrics import CustomMetricContract, CustomPoints, MetricsContract, Traffic

pytestmark = pytest.mark.unit

BASE_LATENCY_MS = 5.0


@dataclass
class RecordedTraffic:
    metrics: FakeMetrics
    service: str = "churn-predictor"
    stable: str = "churn-predictor-stable"
    candidate: str = "churn-predictor-candidate"

    def send(
        self, revision: str, count: int, *, error_rate: float = 0.0, extra_latency_ms: float = 0.0
    ) -> None:
        self.metrics.record_many(
            self.service,
            revision,
            count,
            errors=round(count * error_rate),
            latency_ms=BASE_LATENCY_MS + extra_latency_ms,
        )


class TestFakeMetrics(MetricsContract):
    @pytest.fixture
    def metrics(self) -> Metrics:
        return FakeMetrics()

    @pytest.fixture
    def traffic(self, metrics: Metrics) -> Traffic:
        assert isinstance(metrics, FakeMetrics)
        return RecordedTraffic(metrics)


def test_percentiles_interpolate_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]

    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 95) == pytest.approx(95.05)
    assert percentile([7.0], 99) == 7.0


@dataclass
class WrittenPoints:
    metrics: FakeMetrics

    def write(self, metric_type: str, labels: Mapping[str, str], value: int | float, at: datetime) -> None:
        self.metrics.write_point(metric_type, labels, value, at)


class TestFakeCustomMetrics(CustomMetricContract):
    @pytest.fixture
    def metrics(self) -> Metrics:
        return FakeMetrics()

    @pytest.fixture
    def custom_points(self, metrics: Metrics) -> CustomPoints:
        assert isinstance(metrics, FakeMetrics)
        return WrittenPoints(metrics)


def test_the_fake_writes_only_custom_metrics_with_aware_times() -> None:
    metrics = FakeMetrics()
    with pytest.raises(InvalidInput):
        metrics.write_point("run.googleapis.com/request_count", {"a": "b"}, 1)
    with pytest.raises(InvalidInput):
        metrics.write_point("custom.googleapis.com/x", {"a": "b"}, 1, datetime(2030, 1, 1))
    metrics.write_point("custom.googleapis.com/x", {"a": "b"}, 1)
    assert [(p.metric_type, p.value) for p in metrics.points] == [("custom.googleapis.com/x", 1.0)]
