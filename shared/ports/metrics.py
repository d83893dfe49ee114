"""The ``Metrics`` port: what a canary analysis reads from Cloud Monitoring about a Cloud Run service.

For a time window, per revision: requests by response code class (``2xx``, ``4xx``, ``5xx``, ...) from
``run.googleapis.com/request_count``, and the 50th/95th/99th latency percentiles of its successful (``2xx``)
requests from ``run.googleapis.com/request_latencies`` (errors are judged by their share; a fast failure
must not make a revision look quick).

Missing data is never zero: a revision Monitoring has nothing on is absent from
:attr:`ServiceMetrics.revisions` (``for_revision`` answers None), and a percentile without samples is None.
Cloud Monitoring reports Cloud Run metrics a few minutes late (seconds locally), so a window that ends "now"
may still be filling.

Numbers Cloud Run does not measure (a shadow's prediction agreement, an A/B test's conversions) are *custom
metrics* the serving image writes (``custom.googleapis.com/…``); :meth:`Metrics.custom_metric` reads their raw
points back, summed per value of one metric label (:class:`MetricSummary`).
"""

from __future__ import annotations

import math
import re
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
#: The metric types an application may write (CreateTimeSeries refuses every other).
CUSTOM_METRIC_PREFIXES = ("custom.googleapis.com/", "external.googleapis.com/")
# Metric label keys as Cloud Monitoring allows them; anything else could not appear in a filter safely.
_METRIC_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
_METRIC_TYPE = re.compile(r"[A-Za-z0-9_./-]+")


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


@dataclass(frozen=True)
class MetricSummary:
    """The raw points of a custom metric in one group: how many fell in the window and their sum."""

    points: int
    total: float

    @property
    def mean(self) -> float | None:
        """``total / points``; None without points (no data is not 0)."""
        return self.total / self.points if self.points else None


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
        """The raw points of ``metric_type`` with end time in (start, end] whose *metric* labels equal every
        item of ``where``, summed per value of the metric label ``group_by`` (series without that label are
        left out). Empty dict when nothing was written."""
        ...


def window_problems(start: datetime, end: datetime) -> list[str]:
    problems = []
    if start.tzinfo is None or end.tzinfo is None:
        problems.append("start and end must be timezone-aware")
    elif end <= start:
        problems.append(f"the window must end after it starts ({start.isoformat()} .. {end.isoformat()})")
    return problems


def custom_metric_problems(
    metric_type: str, start: datetime, end: datetime, group_by: str, where: Mapping[str, str]
) -> list[str]:
    """Every problem of a :meth:`Metrics.custom_metric` query (the adapter and the fake share it)."""
    problems = window_problems(start, end)
    if not isinstance(metric_type, str) or not _METRIC_TYPE.fullmatch(metric_type):
        problems.append(
            f"metric type {metric_type!r} must be a metric type such as custom.googleapis.com/NAME"
        )
    for key in (group_by, *where):
        if not isinstance(key, str) or not _METRIC_LABEL.fullmatch(key):
            problems.append(f"metric label {key!r} must be letters, digits or '_', not starting with a digit")
    problems += [
        f"where: the value of {key!r} must be a string" for key, v in where.items() if not isinstance(v, str)
    ]
    return problems


def _quoted(value: str) -> str:
    """A filter string literal (backslash and double quote escaped)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def summarise(points: Sequence[tuple[str, float]]) -> dict[str, MetricSummary]:
    """(group value, value) pairs summed per group value."""
    counts: dict[str, int] = {}
    totals: dict[str, float] = {}
    for group, value in points:
        counts[group] = counts.get(group, 0) + 1
        totals[group] = totals.get(group, 0.0) + value
    return {group: MetricSummary(points=counts[group], total=totals[group]) for group in sorted(counts)}


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
        wanted = dict(where or {})
        problems = custom_metric_problems(metric_type, start, end, group_by, wanted)
        if problems:
            raise InvalidInput("custom metric query", problems)
        budget = Budget(timeout)
        query = " AND ".join(
            [f"metric.type = {_quoted(metric_type)}"]
            + [f"metric.labels.{key} = {_quoted(value)}" for key, value in sorted(wanted.items())]
        )
        # Raw points (no aggregation, ALIGN_NONE): the sum and count are ours, and no alignment period can
        # move a point across the window's edge.
        request = {
            "name": f"projects/{self.project}",
            "filter": query,
            "interval": {"start_time": _timestamp(start), "end_time": _timestamp(end)},
            "view": "FULL",
        }
        low, high = start.timestamp(), end.timestamp()
        found: list[tuple[str, float]] = []
        try:
            with boundary(f"reading {metric_type} from Cloud Monitoring"):
                seconds = budget.left("reading a custom metric")
                for series in self._api().list_time_series(
                    request=request, timeout=seconds, retry=read_retry(seconds)
                ):
                    group = series.metric.labels.get(group_by)
                    if group is None:
                        continue
                    for point in series.points:
                        # The API selects by end time already; checking again keeps (start, end] exact.
                        if low < point.interval.end_time.timestamp() <= high:
                            found.append((group, _number(point.value)))
        except NotFound:
            return {}  # a metric never written has no descriptor yet: no data, not an error
        return summarise(found)

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


def _number(value: Any) -> float:
    """An INT64 or DOUBLE point value as a float (other value types are not summable: 0 is never invented,
    they are refused)."""
    if "int64_value" in value:
        return float(value.int64_value)
    if "double_value" in value:
        return float(value.double_value)
    raise InvalidInput("custom metric", [f"the point value {value!r} is neither INT64 nor DOUBLE"])


def _timestamp(moment: datetime) -> dict[str, int]:
    seconds = math.floor(moment.timestamp())
    return {"seconds": seconds, "nanos": round((moment.timestamp() - seconds) * 1e9) % 1_000_000_000}
