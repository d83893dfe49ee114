"""The ``Metrics`` port: what a canary analysis reads from Cloud Monitoring about a Cloud Run service.

For a time window, per revision: requests by response code class (``2xx``, ``4xx``, ``5xx``, ...) from
``run.googleapis.com/request_count``, and the 50th/95th/99th latency percentiles of its successful (``2xx``)
requests from ``run.googleapis.com/request_latencies`` (errors are judged by their share; a fast failure
must not make a revision look quick).

Missing data is never zero: a revision Monitoring has nothing on is absent from
:attr:`ServiceMetrics.revisions` (``for_revision`` answers None), and a percentile without samples is None.
Cloud Monitoring reports Cloud Run metrics a few minutes late (seconds locally), so a window that ends "now"
may still be filling.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from shared.errors import InvalidInput
from shared.ports.common import Budget, read_retry
from shared.ports.errors import NotFound, boundary

REQUEST_COUNT = "run.googleapis.com/request_count"
REQUEST_LATENCIES = "run.googleapis.com/request_latencies"
#: Cloud Monitoring's smallest alignment period; a shorter window still gets one aligned point.
MIN_ALIGNMENT_SECONDS = 60
PERCENTILES = (50, 95, 99)


@dataclass(frozen=True)
class LatencyPercentiles:
    """Milliseconds; None where there were no samples."""

    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None

    def get(self, percentile: int) -> float | None:
        return {50: self.p50_ms, 95: self.p95_ms, 99: self.p99_ms}[percentile]


@dataclass(frozen=True)
class RevisionMetrics:
    revision: str
    requests_by_class: Mapping[str, int] = field(default_factory=dict)  # "2xx" -> count
    latency: LatencyPercentiles = field(default_factory=LatencyPercentiles)

    @property
    def requests(self) -> int:
        return sum(self.requests_by_class.values())

    def count(self, code_class: str) -> int:
        return self.requests_by_class.get(code_class, 0)

    def share(self, code_class: str) -> float | None:
        """The share of requests in ``code_class``; None without requests (no data is not 0%)."""
        total = self.requests
        return self.count(code_class) / total if total else None


@dataclass(frozen=True)
class ServiceMetrics:
    service: str
    start: datetime
    end: datetime
    revisions: Mapping[str, RevisionMetrics] = field(default_factory=dict)

    def for_revision(self, revision: str) -> RevisionMetrics | None:
        return self.revisions.get(revision)

    @property
    def requests(self) -> int:
        return sum(item.requests for item in self.revisions.values())


class Metrics(Protocol):
    def revision_metrics(
        self,
        service: str,
        start: datetime,
        end: datetime,
        *,
        revisions: Sequence[str] | None = None,
        timeout: float | None = None,
    ) -> ServiceMetrics:
        """Per-revision request counts and latency percentiles of ``service`` over ``(start, end]``
        (only ``revisions``, when given)."""
        ...


def window_problems(start: datetime, end: datetime) -> list[str]:
    problems = []
    if start.tzinfo is None or end.tzinfo is None:
        problems.append("start and end must be timezone-aware")
    elif end <= start:
        problems.append(f"the window must end after it starts ({start.isoformat()} .. {end.isoformat()})")
    return problems


class MonitoringMetrics:
    """``Metrics`` over ``monitoring_v3.MetricServiceClient`` (the emulator when ``MONITORING_EMULATOR_HOST``
    is set); the client is made on first use."""

    def __init__(self, project: str, location: str = "", client: Any | None = None) -> None:
        self.project = project
        self.location = location  # "" = every region the service runs in
        self._client = client

    def _api(self) -> Any:
        if self._client is None:
            from shared import clients

            self._client = clients.monitoring()
        return self._client

    def revision_metrics(
        self,
        service: str,
        start: datetime,
        end: datetime,
        *,
        revisions: Sequence[str] | None = None,
        timeout: float | None = None,
    ) -> ServiceMetrics:
        problems = window_problems(start, end)
        if problems:
            raise InvalidInput("metrics window", problems)
        budget = Budget(timeout)
        selector = f'resource.type = "cloud_run_revision" AND resource.labels.service_name = "{service}"'
        if self.location:
            selector += f' AND resource.labels.location = "{self.location}"'
        counts: dict[str, dict[str, int]] = {}
        for item in self._series(
            f'metric.type = "{REQUEST_COUNT}" AND {selector}',
            start,
            end,
            "ALIGN_DELTA",
            "REDUCE_SUM",
            ["resource.labels.revision_name", "metric.labels.response_code_class"],
            budget,
        ):
            per_class = counts.setdefault(item.resource.labels["revision_name"], {})
            code_class = item.metric.labels["response_code_class"]
            per_class[code_class] = per_class.get(code_class, 0) + sum(
                int(p.value.int64_value) for p in item.points
            )
        latencies: dict[str, dict[int, float]] = {}
        successes = f'{selector} AND metric.labels.response_code_class = "2xx"'
        for percentile in PERCENTILES:
            for item in self._series(
                f'metric.type = "{REQUEST_LATENCIES}" AND {successes}',
                start,
                end,
                "ALIGN_DELTA",
                f"REDUCE_PERCENTILE_{percentile}",
                ["resource.labels.revision_name"],
                budget,
            ):
                values = [float(p.value.double_value) for p in item.points]
                if values and all(math.isfinite(value) for value in values):
                    latencies.setdefault(item.resource.labels["revision_name"], {})[percentile] = max(values)
        names = set(counts) | set(latencies)
        if revisions is not None:
            names &= set(revisions)
        return ServiceMetrics(
            service=service,
            start=start,
            end=end,
            revisions={
                name: RevisionMetrics(
                    revision=name,
                    requests_by_class=counts.get(name, {}),
                    latency=LatencyPercentiles(*(latencies.get(name, {}).get(p) for p in PERCENTILES)),
                )
                for name in sorted(names)
            },
        )

    def _series(
        self,
        query: str,
        start: datetime,
        end: datetime,
        aligner: str,
        reducer: str,
        group_by: list[str],
        budget: Budget,
    ) -> list[Any]:
        # One alignment period covering the whole window: each series yields (at most) one point.
        period = max(MIN_ALIGNMENT_SECONDS, math.ceil((end - start).total_seconds()))
        request = {
            "name": f"projects/{self.project}",
            "filter": query,
            "interval": {"start_time": _timestamp(start), "end_time": _timestamp(end)},
            "aggregation": {
                "alignment_period": {"seconds": period},
                "per_series_aligner": aligner,
                "cross_series_reducer": reducer,
                "group_by_fields": group_by,
            },
        }
        try:
            with boundary(f"reading {query.split('AND')[0].strip()} from Cloud Monitoring"):
                seconds = budget.left("reading metrics")
                return list(
                    self._api().list_time_series(request=request, timeout=seconds, retry=read_retry(seconds))
                )
        except NotFound:
            return []  # a metric Monitoring has never seen is no data, not an error


def _timestamp(moment: datetime) -> dict[str, int]:
    seconds = math.floor(moment.timestamp())
    return {"seconds": seconds, "nanos": round((moment.timestamp() - seconds) * 1e9) % 1_000_000_000}
