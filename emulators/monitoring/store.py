"""The metrics store: per-series sampled points, written by the Cloud Run router, read by ListTimeSeries.

A request served by a Cloud Run revision becomes one increment of ``run.googleapis.com/request_count`` (INT64,
DELTA, labels ``response_code`` and ``response_code_class``) and one sample of
``run.googleapis.com/request_latencies`` (DISTRIBUTION, DELTA, milliseconds, same labels), both on the
``cloud_run_revision`` monitored resource. Like the real service, the store samples: every series gets one
point per *sample period* (1 s locally, 60 s in the cloud), covering ``[k·P, (k+1)·P)``.

A point becomes visible to readers only once its sample period has ended and the *reporting delay* has passed
(Cloud Monitoring shows Cloud Run metrics up to a few minutes late; the local default is small).

*Custom metrics* (``custom.googleapis.com/…``, ``external.googleapis.com/…``) written by ``CreateTimeSeries``
are kept apart: raw points, one per write, each series with the kind and value type its metric got on its
first write in the project (the descriptor the real API auto-creates). They are visible once their end time
plus the reporting delay has passed, expire after the same retention, and ``clear`` drops them with their
descriptors.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

REQUEST_COUNT = "run.googleapis.com/request_count"
REQUEST_LATENCIES = "run.googleapis.com/request_latencies"
CLOUD_RUN_REVISION = "cloud_run_revision"
#: The metric type prefixes CreateTimeSeries accepts (user-defined metrics).
CUSTOM_PREFIXES = ("custom.googleapis.com/", "external.googleapis.com/")

# Exponential buckets of Cloud Run's request_latencies: bucket i (1..N) is [scale·g^(i-1), scale·g^i).
NUM_FINITE_BUCKETS = 100
GROWTH_FACTOR = 1.4
SCALE = 1.0


@dataclass(frozen=True)
class MetricInfo:
    metric_type: str
    value_type: str  # INT64 | DOUBLE | DISTRIBUTION
    metric_kind: str  # DELTA | GAUGE | CUMULATIVE
    unit: str
    description: str


METRICS: dict[str, MetricInfo] = {
    REQUEST_COUNT: MetricInfo(
        REQUEST_COUNT, "INT64", "DELTA", "1", "Number of requests reaching the revision."
    ),
    REQUEST_LATENCIES: MetricInfo(
        REQUEST_LATENCIES,
        "DISTRIBUTION",
        "DELTA",
        "ms",
        "Distribution of request latency in milliseconds reaching the revision.",
    ),
}


def bucket_index(value: float) -> int:
    """Index in the exponential bucket layout (0: underflow, N+1: overflow)."""
    if value < SCALE:
        return 0
    index = math.floor(math.log(value / SCALE) / math.log(GROWTH_FACTOR)) + 1
    # Guard the float edge (value exactly on a bound).
    while index > 1 and value < SCALE * GROWTH_FACTOR ** (index - 1):
        index -= 1
    while index <= NUM_FINITE_BUCKETS and value >= SCALE * GROWTH_FACTOR**index:
        index += 1
    return min(index, NUM_FINITE_BUCKETS + 1)


def bucket_bounds(index: int) -> tuple[float, float]:
    if index == 0:
        return (0.0, SCALE)
    if index > NUM_FINITE_BUCKETS:
        return (SCALE * GROWTH_FACTOR**NUM_FINITE_BUCKETS, math.inf)
    return (SCALE * GROWTH_FACTOR ** (index - 1), SCALE * GROWTH_FACTOR**index)


@dataclass
class Distribution:
    """A mergeable histogram with the exponential bucket layout, plus exact count/mean/deviation/range."""

    count: int = 0
    mean: float = 0.0
    sum_of_squared_deviation: float = 0.0
    minimum: float = math.inf
    maximum: float = -math.inf
    buckets: dict[int, int] = field(default_factory=dict)

    def add(self, value: float) -> None:
        self.count += 1
        delta = value - self.mean
        self.mean += delta / self.count
        self.sum_of_squared_deviation += delta * (value - self.mean)
        self.minimum = min(self.minimum, value)
        self.maximum = max(self.maximum, value)
        index = bucket_index(value)
        self.buckets[index] = self.buckets.get(index, 0) + 1

    def merge(self, other: Distribution) -> None:
        if other.count == 0:
            return
        total = self.count + other.count
        delta = other.mean - self.mean
        self.sum_of_squared_deviation += (
            other.sum_of_squared_deviation + delta * delta * self.count * other.count / total
        )
        self.mean += delta * other.count / total
        self.count = total
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)
        for index, count in other.buckets.items():
            self.buckets[index] = self.buckets.get(index, 0) + count

    def copy(self) -> Distribution:
        result = Distribution()
        result.merge(self)
        return result

    def percentile(self, q: float) -> float:
        """The q-th percentile, interpolated linearly inside its bucket and clamped to the observed range."""
        if self.count == 0:
            return 0.0
        rank = q / 100.0 * self.count
        seen = 0
        for index in sorted(self.buckets):
            count = self.buckets[index]
            if seen + count >= rank:
                low, high = bucket_bounds(index)
                low = max(low, self.minimum)
                high = min(high, self.maximum)
                fraction = (rank - seen) / count if count else 0.0
                return min(max(low + (high - low) * fraction, self.minimum), self.maximum)
            seen += count
        return self.maximum

    def bucket_counts(self) -> list[int]:
        """Counts for bucket 0..last non-empty (trailing empty buckets omitted, as the API allows)."""
        if not self.buckets:
            return []
        return [self.buckets.get(index, 0) for index in range(max(self.buckets) + 1)]


Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class SeriesKey:
    metric_type: str
    metric_labels: Labels
    resource_type: str
    resource_labels: Labels

    def metric_label(self, name: str) -> str | None:
        return dict(self.metric_labels).get(name)

    def resource_label(self, name: str) -> str | None:
        return dict(self.resource_labels).get(name)


Value = int | float | Distribution


@dataclass(frozen=True)
class Point:
    start: float  # epoch seconds
    end: float
    value: Value


@dataclass(frozen=True)
class SeriesData:
    key: SeriesKey
    info: MetricInfo
    points: list[Point]  # oldest first


@dataclass(frozen=True)
class CustomWrite:
    """One point of a user-defined metric, as one CreateTimeSeries series carries it."""

    key: SeriesKey
    metric_kind: str  # GAUGE | CUMULATIVE
    value_type: str  # INT64 | DOUBLE
    unit: str
    point: Point  # GAUGE: start == end


class WriteRefused(ValueError):
    """A CreateTimeSeries request the store refuses (nothing of it was stored); ``problems`` say why."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def response_code_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status <= 599 else "other"


class MetricsStore:
    """Thread-safe sampled series. ``clock`` returns epoch seconds (tests pass a fake one)."""

    def __init__(
        self,
        sample_period: float = 1.0,
        reporting_delay: float = 1.0,
        retention_seconds: float = 6 * 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if sample_period <= 0:
            raise ValueError("sample_period must be positive")
        self.sample_period = sample_period
        self.reporting_delay = reporting_delay
        self.retention_seconds = retention_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._series: dict[SeriesKey, dict[int, Value]] = {}
        self._writes = 0
        # User-defined metrics: (project, metric type) → their descriptor; series → raw points, oldest first.
        self._descriptors: dict[tuple[str, str], MetricInfo] = {}
        self._custom: dict[SeriesKey, list[Point]] = {}

    def configure(self, sample_period: float | None = None, reporting_delay: float | None = None) -> None:
        with self._lock:
            if sample_period is not None:
                if sample_period <= 0:
                    raise ValueError("samplePeriodSeconds must be positive")
                if self._series:
                    raise ValueError("samplePeriodSeconds can only change while the store is empty")
                self.sample_period = sample_period
            if reporting_delay is not None:
                if reporting_delay < 0:
                    raise ValueError("reportingDelaySeconds must not be negative")
                self.reporting_delay = reporting_delay

    def settings(self) -> dict[str, float]:
        return {"samplePeriodSeconds": self.sample_period, "reportingDelaySeconds": self.reporting_delay}

    def clear(self) -> None:
        with self._lock:
            self._series.clear()
            self._custom.clear()
            self._descriptors.clear()

    def write_custom(self, project: str, writes: Sequence[CustomWrite]) -> None:
        """Store the points of one CreateTimeSeries request, all or none (:class:`WriteRefused`): a metric's
        kind and value type are fixed by its first write, and each series' points must come in order."""
        with self._lock:
            problems: list[str] = []
            descriptors: dict[tuple[str, str], MetricInfo] = {}
            for index, write in enumerate(writes):
                metric = write.key.metric_type
                known = self._descriptors.get((project, metric)) or descriptors.get((project, metric))
                if known is None:
                    descriptors[(project, metric)] = MetricInfo(
                        metric, write.value_type, write.metric_kind, write.unit, ""
                    )
                elif (known.metric_kind, known.value_type) != (write.metric_kind, write.value_type):
                    problems.append(
                        f"timeSeries[{index}]: the metric {metric} is {known.metric_kind} {known.value_type} "
                        f"(fixed by its first write), not {write.metric_kind} {write.value_type}."
                    )
                    continue
                points = self._custom.get(write.key)
                latest = points[-1] if points else None
                if latest is not None and (
                    write.point.end <= latest.end
                    or (write.metric_kind == "CUMULATIVE" and write.point.start < latest.start)
                ):
                    problems.append(
                        f"timeSeries[{index}]: Points must be written in order. One or more of the points "
                        "specified had an older start time than the most recent point."
                    )
            if problems:
                raise WriteRefused(problems)
            self._descriptors.update(descriptors)
            for write in writes:
                self._custom.setdefault(write.key, []).append(write.point)
            self._expire_custom(self.clock())

    def record_request(
        self,
        *,
        project: str,
        location: str,
        service: str,
        revision: str,
        status: int,
        latency_ms: float,
        at: float | None = None,
    ) -> None:
        """One request served by ``revision`` (answered with ``status`` after ``latency_ms``)."""
        moment = self.clock() if at is None else at
        resource: Labels = (
            ("configuration_name", service),
            ("location", location),
            ("project_id", project),
            ("revision_name", revision),
            ("service_name", service),
        )
        labels: Labels = (
            ("response_code", str(status)),
            ("response_code_class", response_code_class(status)),
        )
        window = math.floor(moment / self.sample_period)
        count_key = SeriesKey(REQUEST_COUNT, labels, CLOUD_RUN_REVISION, resource)
        latency_key = SeriesKey(REQUEST_LATENCIES, labels, CLOUD_RUN_REVISION, resource)
        with self._lock:
            counts = self._series.setdefault(count_key, {})
            previous = counts.get(window, 0)
            counts[window] = (previous if isinstance(previous, int) else 0) + 1
            latencies = self._series.setdefault(latency_key, {})
            distribution = latencies.get(window)
            if not isinstance(distribution, Distribution):
                distribution = Distribution()
                latencies[window] = distribution
            distribution.add(max(latency_ms, 0.0))
            self._writes += 1
            if self._writes % 1000 == 0:
                self._expire(moment)

    def _expire(self, now: float) -> None:
        oldest = math.floor((now - self.retention_seconds) / self.sample_period)
        for points in self._series.values():
            for window in [window for window in points if window < oldest]:
                del points[window]
        self._expire_custom(now)

    def _expire_custom(self, now: float) -> None:
        oldest = now - self.retention_seconds
        for key in list(self._custom):
            kept = [point for point in self._custom[key] if point.end >= oldest]
            if kept:
                self._custom[key] = kept
            else:
                del self._custom[key]

    def snapshot(self, now: float | None = None) -> list[SeriesData]:
        """Every series with the points visible at ``now`` (sample period ended + reporting delay)."""
        moment = self.clock() if now is None else now
        period = self.sample_period
        result = []
        with self._lock:
            for key, points in self._series.items():
                visible = []
                for window in sorted(points):
                    end = (window + 1) * period
                    if end + self.reporting_delay > moment:
                        break
                    value = points[window]
                    copied: Value = value.copy() if isinstance(value, Distribution) else value
                    visible.append(Point(start=window * period, end=end, value=copied))
                if visible:
                    result.append(SeriesData(key=key, info=METRICS[key.metric_type], points=visible))
            for key, custom in self._custom.items():
                visible = [point for point in custom if point.end + self.reporting_delay <= moment]
                if visible:
                    info = self._descriptors[(key.resource_label("project_id") or "", key.metric_type)]
                    result.append(SeriesData(key=key, info=info, points=visible))
        return result

    def totals(self) -> dict[str, int]:
        """Requests recorded per revision (visible or not): a debugging aid for the admin endpoint."""
        with self._lock:
            out: dict[str, int] = {}
            for key, points in self._series.items():
                if key.metric_type != REQUEST_COUNT:
                    continue
                name = key.resource_label("revision_name") or ""
                out[name] = out.get(name, 0) + sum(int(v) for v in points.values() if isinstance(v, int))
            return out
