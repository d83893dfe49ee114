"""The Monitoring emulator's store, filter language and query engine (pure, fake clock)."""

from __future__ import annotations

import pytest

from emulators.apiserver.errors import ApiError
from emulators.monitoring.filters import parse_filter
from emulators.monitoring.query import Aggregation, OutSeries, query
from emulators.monitoring.store import (
    REQUEST_COUNT,
    REQUEST_LATENCIES,
    Distribution,
    MetricsStore,
    SeriesKey,
    bucket_bounds,
    bucket_index,
)

pytestmark = pytest.mark.unit

T0 = 1_700_000_000.0  # a multiple of 60 s


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _store(delay: float = 0.0) -> tuple[MetricsStore, Clock]:
    clock = Clock(T0)
    return MetricsStore(sample_period=1.0, reporting_delay=delay, clock=clock), clock


def _record(store: MetricsStore, revision: str, status: int, latency: float, at: float) -> None:
    store.record_request(
        project="p",
        location="us-central1",
        service="svc",
        revision=revision,
        status=status,
        latency_ms=latency,
        at=at,
    )


def _run(
    store: MetricsStore, text: str, start: float, end: float, aggregation: Aggregation
) -> list[OutSeries]:
    compiled = parse_filter(text)
    return query(store.snapshot(), lambda key: compiled(key, "p"), start, end, aggregation)


COUNT = f'metric.type = "{REQUEST_COUNT}" AND resource.labels.service_name = "svc"'
LATENCY = f'metric.type = "{REQUEST_LATENCIES}"'


def test_buckets_are_exponential_and_contiguous() -> None:
    assert bucket_index(0.2) == 0
    assert bucket_index(1.0) == 1
    for value in (1.0, 1.39, 1.4, 2.5, 37.0, 1000.0, 123456.0):
        low, high = bucket_bounds(bucket_index(value))
        assert low <= value < high


def test_distribution_merge_matches_adding_everything() -> None:
    left, right, both = Distribution(), Distribution(), Distribution()
    for value in range(1, 51):
        left.add(float(value))
        both.add(float(value))
    for value in range(100, 151):
        right.add(float(value))
        both.add(float(value))
    left.merge(right)
    assert left.count == both.count == 101
    assert left.mean == pytest.approx(both.mean)
    assert left.sum_of_squared_deviation == pytest.approx(both.sum_of_squared_deviation)
    assert left.bucket_counts() == both.bucket_counts()
    # p95 of 1..50 and 100..150 lies among the high values, within one bucket of the truth (≈145).
    assert 120 <= left.percentile(95) <= 150
    assert left.percentile(50) < left.percentile(95) <= left.maximum


def test_points_are_hidden_until_the_reporting_delay_has_passed() -> None:
    store, clock = _store(delay=5.0)
    _record(store, "svc-a", 200, 10, T0 + 0.5)
    clock.now = T0 + 5.9
    assert store.snapshot() == []  # period ends at T0+1, visible from T0+6
    clock.now = T0 + 6.0
    (count, _latency) = sorted(store.snapshot(), key=lambda s: s.key.metric_type)
    assert count.points[0].value == 1 and count.points[0].start == T0 and count.points[0].end == T0 + 1


def test_reduce_sum_grouped_by_revision_and_code_class() -> None:
    store, clock = _store()
    for index in range(90):
        _record(store, "svc-a", 200, 5, T0 + index * 0.5)
    for index in range(10):
        _record(store, "svc-b", 500 if index % 2 else 200, 50, T0 + index * 0.5)
    clock.now = T0 + 120
    aggregation = Aggregation(60.0, "ALIGN_DELTA", "REDUCE_SUM", ["resource.labels.revision_name"])
    result = _run(store, COUNT, T0, T0 + 120, aggregation)
    totals = {s.resource_labels["revision_name"]: sum(p.value for p in s.points) for s in result}
    assert totals == {"svc-a": 90, "svc-b": 10}
    assert all(s.metric_labels == {} and s.value_type == "INT64" for s in result)
    by_class = _run(
        store,
        COUNT + ' AND resource.labels.revision_name = "svc-b"',
        T0,
        T0 + 120,
        Aggregation(120.0, "ALIGN_DELTA", "REDUCE_SUM", ["metric.label.response_code_class"]),
    )
    assert {s.metric_labels["response_code_class"]: s.points[0].value for s in by_class} == {
        "2xx": 5,
        "5xx": 5,
    }


def test_alignment_windows_end_at_the_interval_end_newest_first() -> None:
    store, clock = _store()
    _record(store, "svc-a", 200, 5, T0 + 10)  # point (T0+10, T0+11]
    _record(store, "svc-a", 200, 5, T0 + 70)  # point (T0+70, T0+71]
    _record(store, "svc-a", 200, 5, T0 + 71)
    clock.now = T0 + 200
    result = _run(store, COUNT, T0, T0 + 120, Aggregation(60.0, "ALIGN_DELTA"))
    (series,) = result
    assert [(p.start, p.end, p.value) for p in series.points] == [
        (T0 + 60, T0 + 120, 2),
        (T0, T0 + 60, 1),
    ]
    rate = _run(store, COUNT, T0, T0 + 120, Aggregation(60.0, "ALIGN_RATE"))
    assert rate[0].value_type == "DOUBLE" and rate[0].metric_kind == "GAUGE"
    assert rate[0].points[0].value == pytest.approx(2 / 60)
    assert rate[0].points[0].start == rate[0].points[0].end == T0 + 120
    raw = _run(store, COUNT, T0, T0 + 120, Aggregation())
    assert [p.end for p in raw[0].points] == [T0 + 72, T0 + 71, T0 + 11]


def test_percentile_aligner_per_revision_and_percentile_reducer() -> None:
    store, clock = _store()
    for index in range(100):
        _record(store, "svc-a", 200, 10 + index % 5, T0 + index * 0.1)
        _record(store, "svc-b", 200, 200 + index, T0 + index * 0.1)
    clock.now = T0 + 60
    p95 = _run(store, LATENCY, T0, T0 + 60, Aggregation(60.0, "ALIGN_PERCENTILE_95"))
    values = {s.resource_labels["revision_name"]: s.points[0].value for s in p95}
    assert 10 <= values["svc-a"] <= 14
    assert 250 <= values["svc-b"] <= 299
    pooled = _run(
        store,
        LATENCY,
        T0,
        T0 + 60,
        Aggregation(60.0, "ALIGN_DELTA", "REDUCE_PERCENTILE_50", ["resource.labels.service_name"]),
    )
    assert pooled[0].value_type == "DOUBLE" and 14 <= pooled[0].points[0].value <= 210


def test_invalid_and_unsupported_requests() -> None:
    store, clock = _store()
    _record(store, "svc-a", 200, 5, T0)
    clock.now = T0 + 60
    for bad in (
        'resource.labels.service_name = "svc"',  # no metric type
        'metric.type = "x" AND',
        'metric.type == "x"',
        'metric.typo = "x"',
        'metric.type = starts_with("x"',
        "",
    ):
        with pytest.raises(ApiError) as caught:
            parse_filter(bad)
        assert caught.value.code == "INVALID_ARGUMENT"
    for aggregation, code in (
        (Aggregation(0.0, "ALIGN_DELTA"), "INVALID_ARGUMENT"),
        (Aggregation(60.0, "ALIGN_NONE", "REDUCE_SUM"), "INVALID_ARGUMENT"),
        (Aggregation(60.0, "ALIGN_PERCENTILE_95"), "INVALID_ARGUMENT"),  # count is not a distribution
        (Aggregation(60.0, "ALIGN_INTERPOLATE"), "UNIMPLEMENTED"),
        (Aggregation(60.0, "ALIGN_DELTA", "REDUCE_SUM", ["nonsense"]), "INVALID_ARGUMENT"),
    ):
        with pytest.raises(ApiError) as caught:
            _run(store, COUNT, T0, T0 + 60, aggregation)
        assert caught.value.code == code, aggregation


def test_filter_functions_and_boolean_operators() -> None:
    key = SeriesKey(
        REQUEST_COUNT,
        (("response_code", "503"), ("response_code_class", "5xx")),
        "cloud_run_revision",
        (("revision_name", "svc-00002-abc"), ("service_name", "svc")),
    )
    cases = {
        f'metric.type = "{REQUEST_COUNT}"': True,
        f'metric.type = "{REQUEST_COUNT}" AND resource.label.revision_name = starts_with("svc-00002")': True,
        f'metric.type = "{REQUEST_COUNT}" AND metric.labels.response_code_class != "5xx"': False,
        f'metric.type = "{REQUEST_COUNT}" AND (metric.labels.response_code = "500" OR '
        'metric.labels.response_code = one_of("502", "503"))': True,
        f'metric.type = "{REQUEST_COUNT}" AND NOT resource.labels.service_name = "svc"': False,
        f'metric.type = "{REQUEST_COUNT}" AND resource.labels.revision_name = '
        'monitoring.regex.full_match("svc-\\\\d+-.*")': True,
        f'metric.type = "{REQUEST_COUNT}" AND resource.type = "gce_instance"': False,
        f'metric.type = "{REQUEST_LATENCIES}"': False,
        f'metric.type = "{REQUEST_COUNT}" AND project = "other"': False,
    }
    for text, expected in cases.items():
        assert parse_filter(text)(key, "p") is expected, text


def test_a_point_ending_on_a_window_boundary_belongs_to_the_older_window() -> None:
    store, clock = _store()
    _record(store, "svc-a", 200, 5, T0 + 29.5)  # sample (T0+29, T0+30]: ends exactly on the boundary
    _record(store, "svc-a", 200, 5, T0 + 30.0)  # sample (T0+30, T0+31]
    clock.now = T0 + 200
    (series,) = _run(store, COUNT, T0, T0 + 120, Aggregation(30.0, "ALIGN_DELTA"))
    assert [(p.start, p.end, p.value) for p in series.points] == [(T0 + 30, T0 + 60, 1), (T0, T0 + 30, 1)]
