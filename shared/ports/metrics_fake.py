"""An in-memory ``Metrics`` that honours the port's contract (``tests/contract/metrics.py``).

Tests record requests (:meth:`FakeMetrics.record`, :meth:`FakeMetrics.record_many`) as a Cloud Run service
would report them; queries aggregate them like Cloud Monitoring: counts per response code class, latency
percentiles of the ``2xx`` requests, a revision without data absent rather than zero. Custom metric points
are written with :meth:`FakeMetrics.write_point`, as an application's CreateTimeSeries would.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shared.errors import InvalidInput
from shared.ports.faults import Faults
from shared.ports.metrics import (
    CUSTOM_METRIC_PREFIXES,
    PERCENTILES,
    LatencyPercentiles,
    MetricSummary,
    RevisionMetrics,
    ServiceMetrics,
    custom_metric_problems,
    summarise,
    window_problems,
)


@dataclass(frozen=True)
class RecordedRequest:
    service: str
    revision: str
    status: int
    latency_ms: float
    at: datetime


@dataclass(frozen=True)
class WrittenPoint:
    metric_type: str
    labels: Mapping[str, str]
    value: float
    at: datetime


def code_class(status: int) -> str:
    return f"{status // 100}xx"


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class FakeMetrics:
    faults: Faults = field(default_factory=Faults)
    requests: list[RecordedRequest] = field(default_factory=list)
    points: list[WrittenPoint] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def record(
        self, service: str, revision: str, status: int, latency_ms: float, at: datetime | None = None
    ) -> None:
        with self._lock:
            self.requests.append(
                RecordedRequest(service, revision, status, latency_ms, at or datetime.now(UTC))
            )

    def record_many(
        self,
        service: str,
        revision: str,
        count: int,
        *,
        status: int = 200,
        latency_ms: float = 10.0,
        errors: int = 0,
        error_status: int = 500,
        at: datetime | None = None,
    ) -> None:
        """``count`` requests, the first ``errors`` of them answered ``error_status``."""
        for index in range(count):
            self.record(service, revision, error_status if index < errors else status, latency_ms, at)

    def write_point(
        self, metric_type: str, labels: Mapping[str, str], value: float, at: datetime | None = None
    ) -> None:
        """One point of a custom metric (``custom.googleapis.com/…``) with these metric labels."""
        if not metric_type.startswith(CUSTOM_METRIC_PREFIXES):
            raise InvalidInput(
                "custom metric point", [f"only custom metrics can be written, not {metric_type!r}"]
            )
        moment = at or datetime.now(UTC)
        if moment.tzinfo is None:
            raise InvalidInput("custom metric point", ["the point's time must be timezone-aware"])
        with self._lock:
            self.points.append(WrittenPoint(metric_type, dict(labels), float(value), moment))

    def custom_metric(
        self,
        metric_type: str,
        start: datetime,
        end: datetime,
        *,
        group_by: str,
        where: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> dict[str, MetricSummary]:
        self.faults.take("custom_metric")
        wanted = dict(where or {})
        problems = custom_metric_problems(metric_type, start, end, group_by, wanted)
        if problems:
            raise InvalidInput("custom metric query", problems)
        with self._lock:
            selected = [
                (item.labels[group_by], item.value)
                for item in self.points
                if item.metric_type == metric_type
                and start < item.at <= end
                and group_by in item.labels
                and all(item.labels.get(key) == value for key, value in wanted.items())
            ]
        return summarise(selected)

    def revision_metrics(
        self,
        service: str,
        start: datetime,
        end: datetime,
        *,
        revisions: Sequence[str] | None = None,
        timeout: float | None = None,
    ) -> ServiceMetrics:
        self.faults.take("revision_metrics")
        problems = window_problems(start, end)
        if problems:
            raise InvalidInput("metrics window", problems)
        with self._lock:
            selected = [
                item
                for item in self.requests
                if item.service == service
                and start < item.at <= end
                and (revisions is None or item.revision in revisions)
            ]
        by_revision: dict[str, list[RecordedRequest]] = {}
        for item in selected:
            by_revision.setdefault(item.revision, []).append(item)
        result: dict[str, RevisionMetrics] = {}
        for name in sorted(by_revision):
            items = by_revision[name]
            counts: dict[str, int] = {}
            for item in items:
                counts[code_class(item.status)] = counts.get(code_class(item.status), 0) + 1
            ok = [item.latency_ms for item in items if code_class(item.status) == "2xx"]
            latency = LatencyPercentiles(*(percentile(ok, q) if ok else None for q in PERCENTILES))
            result[name] = RevisionMetrics(revision=name, requests_by_class=counts, latency=latency)
        return ServiceMetrics(service=service, start=start, end=end, revisions=result)
