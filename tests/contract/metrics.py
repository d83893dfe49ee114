"""The behaviour every :class:`shared.ports.metrics.Metrics` implementation must show.

A concrete module subclasses :class:`MetricsContract` (providing ``metrics`` and ``traffic``) and
:class:`CustomMetricContract` (``metrics`` and ``custom_points``). ``traffic``: a service with a ``stable``
and a ``candidate`` revision (each test its own) and a way to send requests to one revision, a share of them
failing with 5xx and each slowed by some milliseconds — real requests through the Cloud Run emulator,
recorded samples for the fake.
``custom_points``: a way to write one point of a custom metric, as an application does — through
``MetricServiceClient.create_time_series`` against the emulator, ``FakeMetrics.write_point`` for the fake.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import pytest

from shared.errors import InvalidInput
from shared.ports.metrics import Metrics, MetricSummary, ServiceMetrics
from tests.contract.eventually import until


class Traffic(Protocol):
    service: str
    stable: str
    candidate: str

    def send(
        self, revision: str, count: int, *, error_rate: float = 0.0, extra_latency_ms: float = 0.0
    ) -> None:
        """``count`` requests to ``revision``: exactly ``error_rate * count`` answered 5xx, each slowed."""
        ...


class CustomPoints(Protocol):
    def write(self, metric_type: str, labels: Mapping[str, str], value: int | float, at: datetime) -> None:
        """One GAUGE point of ``metric_type`` (INT64 for an int, DOUBLE for a float) with these metric
        labels, ending at ``at``; the points of one series are written in time order."""
        ...


@dataclass
class Window:
    start: datetime

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=1)


class MetricsContract:
    REPORT_SECONDS = 30.0  # how long Monitoring may take to show a request

    @pytest.fixture
    def metrics(self) -> Metrics:
        raise NotImplementedError("a concrete contract test overrides the `metrics` fixture")

    @pytest.fixture
    def traffic(self) -> Traffic:
        raise NotImplementedError("a concrete contract test overrides the `traffic` fixture")

    def reported(
        self, metrics: Metrics, traffic: Traffic, window: Window, expected: dict[str, int]
    ) -> ServiceMetrics:
        """The service's metrics once every revision in ``expected`` shows that many requests."""

        def complete(found: ServiceMetrics) -> bool:
            return all(
                (item := found.for_revision(name)) is not None and item.requests >= count
                for name, count in expected.items()
            )

        return until(
            lambda: metrics.revision_metrics(traffic.service, window.start, window.now()),
            complete,
            self.REPORT_SECONDS,
            0.25,
        )

    def test_no_data_is_absent_never_zero(self, metrics: Metrics, traffic: Traffic) -> None:
        long_ago = datetime.now(UTC) - timedelta(hours=2)

        found = metrics.revision_metrics(traffic.service, long_ago, long_ago + timedelta(minutes=30))

        assert found.revisions == {}
        assert found.for_revision(traffic.stable) is None
        assert found.requests == 0
        assert (found.service, found.start) == (traffic.service, long_ago)

    def test_requests_by_class_and_latency_per_revision(self, metrics: Metrics, traffic: Traffic) -> None:
        window = Window(datetime.now(UTC) - timedelta(seconds=1))
        traffic.send(traffic.stable, 40)
        traffic.send(traffic.candidate, 40, error_rate=0.25, extra_latency_ms=60)

        found = self.reported(metrics, traffic, window, {traffic.stable: 40, traffic.candidate: 40})

        stable, candidate = found.for_revision(traffic.stable), found.for_revision(traffic.candidate)
        assert stable is not None and candidate is not None
        assert (candidate.requests, candidate.count("5xx"), candidate.count("2xx")) == (40, 10, 30)
        assert candidate.share("5xx") == 0.25
        assert (stable.requests, stable.count("5xx"), stable.share("5xx")) == (40, 0, 0.0)
        for item in (stable, candidate):
            p50, p95, p99 = item.latency.p50_ms, item.latency.p95_ms, item.latency.p99_ms
            assert p50 is not None and p95 is not None and p99 is not None
            assert 0 <= p50 <= p95 <= p99
        assert candidate.latency.p95_ms is not None and stable.latency.p95_ms is not None
        assert candidate.latency.p95_ms >= 40
        assert candidate.latency.p95_ms > 2 * stable.latency.p95_ms, (candidate, stable)
        assert found.requests == 80

    def test_only_the_revisions_asked_for(self, metrics: Metrics, traffic: Traffic) -> None:
        window = Window(datetime.now(UTC) - timedelta(seconds=1))
        traffic.send(traffic.stable, 5)
        traffic.send(traffic.candidate, 5)
        self.reported(metrics, traffic, window, {traffic.stable: 5, traffic.candidate: 5})

        found = metrics.revision_metrics(
            traffic.service, window.start, window.now(), revisions=[traffic.candidate]
        )

        assert set(found.revisions) == {traffic.candidate}

    def test_a_revision_that_only_failed_has_counts_but_no_latency(
        self, metrics: Metrics, traffic: Traffic
    ) -> None:
        window = Window(datetime.now(UTC) - timedelta(seconds=1))
        traffic.send(traffic.candidate, 10, error_rate=1.0)

        found = self.reported(metrics, traffic, window, {traffic.candidate: 10})

        candidate = found.for_revision(traffic.candidate)
        assert candidate is not None
        assert candidate.requests_by_class == {"5xx": 10}
        assert (candidate.latency.p50_ms, candidate.latency.p95_ms, candidate.latency.p99_ms) == (
            None,
            None,
            None,
        )
        assert found.for_revision(traffic.stable) is None

    def test_a_window_must_be_timezone_aware_and_ordered(self, metrics: Metrics, traffic: Traffic) -> None:
        now = datetime.now(UTC)
        with pytest.raises(InvalidInput):
            metrics.revision_metrics(traffic.service, now, now - timedelta(seconds=5))
        with pytest.raises(InvalidInput):
            metrics.revision_metrics(traffic.service, datetime(2030, 1, 1), datetime(2030, 1, 2))


def _custom_type() -> str:
    return f"custom.googleapis.com/contract/{uuid.uuid4().hex[:12]}"


class CustomMetricContract:
    """``Metrics.custom_metric`` over points written the way an application writes them."""

    REPORT_SECONDS = 30.0

    @pytest.fixture
    def metrics(self) -> Metrics:
        raise NotImplementedError("a concrete contract test overrides the `metrics` fixture")

    @pytest.fixture
    def custom_points(self) -> CustomPoints:
        raise NotImplementedError("a concrete contract test overrides the `custom_points` fixture")

    def summed(
        self,
        metrics: Metrics,
        metric_type: str,
        start: datetime,
        end: datetime,
        expected_points: int,
        group_by: str,
    ) -> dict[str, MetricSummary]:
        """The query's answer once it counts ``expected_points`` points (Monitoring shows them late)."""
        return until(
            lambda: metrics.custom_metric(metric_type, start, end, group_by=group_by),
            lambda found: sum(item.points for item in found.values()) >= expected_points,
            self.REPORT_SECONDS,
            0.25,
        )

    def test_points_are_summed_per_value_of_the_group_label(
        self, metrics: Metrics, custom_points: CustomPoints
    ) -> None:
        metric_type = _custom_type()
        base = datetime.now(UTC) - timedelta(minutes=10)
        for index, (outcome, value) in enumerate([("agree", 3), ("agree", 4), ("disagree", 1), ("error", 2)]):
            custom_points.write(
                metric_type, {"outcome": outcome, "instance": "i1"}, value, base + timedelta(seconds=index)
            )
        custom_points.write(metric_type, {"instance": "i1"}, 9, base + timedelta(seconds=5))  # no outcome

        found = self.summed(
            metrics,
            metric_type,
            base - timedelta(seconds=1),
            base + timedelta(minutes=1),
            4,
            group_by="outcome",
        )

        assert found == {
            "agree": MetricSummary(points=2, total=7.0),
            "disagree": MetricSummary(points=1, total=1.0),
            "error": MetricSummary(points=1, total=2.0),
        }
        assert found["agree"].mean == 3.5

    def test_where_keeps_only_points_whose_labels_match_every_item(
        self, metrics: Metrics, custom_points: CustomPoints
    ) -> None:
        metric_type = _custom_type()
        base = datetime.now(UTC) - timedelta(minutes=10)
        labelled = [
            ({"candidate": "rev-2", "source": "rev-1", "outcome": "agree"}, 5),
            ({"candidate": "rev-2", "source": "rev-0", "outcome": "agree"}, 7),
            ({"candidate": "rev-3", "source": "rev-1", "outcome": "agree"}, 11),
            ({"candidate": "rev-2", "source": "rev-1", "outcome": "error"}, 1),
        ]
        for index, (labels, value) in enumerate(labelled):
            custom_points.write(metric_type, labels, value, base + timedelta(seconds=index))
        window = (base - timedelta(seconds=1), base + timedelta(minutes=1))
        self.summed(metrics, metric_type, *window, 4, "outcome")

        only_rev2 = metrics.custom_metric(
            metric_type, *window, group_by="outcome", where={"candidate": "rev-2"}
        )
        both = metrics.custom_metric(
            metric_type, *window, group_by="outcome", where={"candidate": "rev-2", "source": "rev-1"}
        )
        nobody = metrics.custom_metric(metric_type, *window, group_by="outcome", where={"candidate": "rev-9"})

        assert only_rev2 == {"agree": MetricSummary(2, 12.0), "error": MetricSummary(1, 1.0)}
        assert both == {"agree": MetricSummary(1, 5.0), "error": MetricSummary(1, 1.0)}
        assert nobody == {}

    def test_the_window_excludes_its_start_and_includes_its_end(
        self, metrics: Metrics, custom_points: CustomPoints
    ) -> None:
        metric_type = _custom_type()
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
        end = start + timedelta(seconds=60)
        for offset, value in ((0, 1), (30, 10), (60, 100), (61, 1000)):
            custom_points.write(metric_type, {"outcome": "agree"}, value, start + timedelta(seconds=offset))
        self.summed(
            metrics,
            metric_type,
            start - timedelta(seconds=1),
            end + timedelta(seconds=2),
            4,
            group_by="outcome",
        )

        found = metrics.custom_metric(metric_type, start, end, group_by="outcome")

        assert found == {"agree": MetricSummary(points=2, total=110.0)}

    def test_int64_and_double_points_are_both_summed(
        self, metrics: Metrics, custom_points: CustomPoints
    ) -> None:
        counts, ratios = _custom_type(), _custom_type()
        base = datetime.now(UTC) - timedelta(minutes=10)
        for index in range(3):
            custom_points.write(counts, {"arm": "b"}, 2, base + timedelta(seconds=index))
            custom_points.write(ratios, {"arm": "b"}, 0.25, base + timedelta(seconds=index))
        window = (base - timedelta(seconds=1), base + timedelta(minutes=1))

        int64 = self.summed(metrics, counts, *window, 3, "arm")
        double = self.summed(metrics, ratios, *window, 3, "arm")

        assert int64 == {"b": MetricSummary(points=3, total=6.0)}
        assert double == {"b": MetricSummary(points=3, total=0.75)}
        assert double["b"].mean == 0.25

    def test_nothing_written_is_an_empty_answer(self, metrics: Metrics, custom_points: CustomPoints) -> None:
        now = datetime.now(UTC)

        found = metrics.custom_metric(_custom_type(), now - timedelta(hours=1), now, group_by="outcome")

        assert found == {}
        assert MetricSummary(points=0, total=0.0).mean is None

    def test_a_bad_query_is_refused_before_any_call(
        self, metrics: Metrics, custom_points: CustomPoints
    ) -> None:
        now = datetime.now(UTC)
        with pytest.raises(InvalidInput):
            metrics.custom_metric(_custom_type(), now, now - timedelta(seconds=5), group_by="outcome")
        with pytest.raises(InvalidInput):
            metrics.custom_metric(_custom_type(), now - timedelta(seconds=5), now, group_by='x" OR "')
        with pytest.raises(InvalidInput):
            metrics.custom_metric(
                _custom_type(), now - timedelta(seconds=5), now, group_by="outcome", where={"a b": "c"}
            )
