"""The behaviour every :class:`shared.ports.metrics.Metrics` implementation must show.

A concrete module subclasses :class:`MetricsContract` and provides ``metrics`` and ``traffic``: a service
with a ``stable`` and a ``candidate`` revision (each test its own) and a way to send requests to one revision,
a share of them failing with 5xx and each slowed by some milliseconds — real requests through the Cloud Run
emulator, recorded samples for the fake.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import pytest

from shared.errors import InvalidInput
from shared.ports.metrics import Metrics, ServiceMetrics
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
