"""User-defined metrics in the Monitoring emulator: CreateTimeSeries checks, the store's custom series and
how ListTimeSeries aligns GAUGE and CUMULATIVE points (pure, fake clock)."""

from __future__ import annotations

from typing import Any

import pytest
from google.cloud import monitoring_v3

from emulators.apiserver.errors import ApiError
from emulators.monitoring.create import parse_request
from emulators.monitoring.filters import parse_filter
from emulators.monitoring.query import Aggregation, OutSeries, query
from emulators.monitoring.store import MetricsStore, WriteRefused

pytestmark = pytest.mark.unit

T0 = 1_700_000_000.0
METRIC = "custom.googleapis.com/mlops/shadow_comparisons"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _series(
    value: Any = 1,
    at: float = T0 - 10,
    *,
    metric: str = METRIC,
    labels: dict[str, str] | None = None,
    kind: str = "GAUGE",
    start: float | None = None,
    resource: dict[str, Any] | None = None,
    points: int = 1,
) -> dict[str, Any]:
    typed = {"double_value": value} if isinstance(value, float) else {"int64_value": value}
    if isinstance(value, dict):
        typed = value
    interval: dict[str, Any] = {"end_time": {"seconds": int(at), "nanos": round((at % 1) * 1e9)}}
    if start is not None:
        interval["start_time"] = {"seconds": int(start)}
    return {
        "metric": {"type": metric, "labels": labels or {"outcome": "agree"}},
        "resource": resource if resource is not None else {"type": "global"},
        "metric_kind": kind,
        "points": [{"interval": interval, "value": typed}] * points,
    }


def _request(*series: dict[str, Any], name: str = "projects/p") -> Any:
    return monitoring_v3.CreateTimeSeriesRequest.pb(
        monitoring_v3.CreateTimeSeriesRequest(name=name, time_series=list(series))
    )


def _write(store: MetricsStore, *series: dict[str, Any]) -> None:
    project, writes = parse_request(_request(*series), store.clock())
    store.write_custom(project, writes)


def _store() -> tuple[MetricsStore, Clock]:
    clock = Clock(T0)
    return MetricsStore(reporting_delay=1.0, clock=clock), clock


def _list(store: MetricsStore, start: float, end: float, aggregation: Aggregation) -> list[OutSeries]:
    compiled = parse_filter(f'metric.type = "{METRIC}"')
    return query(store.snapshot(), lambda key: compiled(key, "p"), start, end, aggregation)


def test_a_gauge_point_is_stored_with_project_filled_and_read_raw() -> None:
    store, _ = _store()
    _write(store, _series(3, T0 - 10, labels={"outcome": "agree", "candidate": "rev-2"}))

    (series,) = _list(store, T0 - 60, T0, Aggregation())

    assert series.resource_labels == {"project_id": "p"}
    assert series.metric_labels == {"outcome": "agree", "candidate": "rev-2"}
    assert (series.metric_kind, series.value_type) == ("GAUGE", "INT64")
    assert [(p.start, p.end, p.value) for p in series.points] == [(T0 - 10, T0 - 10, 3)]


def test_points_are_visible_only_after_the_reporting_delay_and_cleared_by_reset() -> None:
    store, clock = _store()
    _write(store, _series(1, T0 - 0.5))
    assert _list(store, T0 - 60, T0, Aggregation()) == []
    clock.now = T0 + 1
    assert len(_list(store, T0 - 60, T0, Aggregation())) == 1
    store.clear()
    assert _list(store, T0 - 60, T0, Aggregation()) == []


def test_retention_drops_old_custom_points() -> None:
    clock = Clock(T0)
    store = MetricsStore(reporting_delay=0.0, retention_seconds=60, clock=clock)
    _write(store, _series(1, T0 - 30))
    clock.now = T0 + 40
    _write(store, _series(2, T0 + 30, labels={"outcome": "error"}))

    found = _list(store, T0 - 100, T0 + 40, Aggregation())

    assert [s.metric_labels["outcome"] for s in found] == ["error"]


def test_align_sum_reduce_sum_groups_gauge_points_by_a_metric_label() -> None:
    store, _ = _store()
    for index in range(3):
        at = T0 - 30 + index * 5
        _write(
            store,
            _series(2, at, labels={"outcome": "agree", "instance": "a"}),
            _series(1, at, labels={"outcome": "error", "instance": "a"}),
            _series(4, at, labels={"outcome": "agree", "instance": "b"}),
        )

    found = _list(
        store,
        T0 - 60,
        T0,
        Aggregation(60, "ALIGN_SUM", "REDUCE_SUM", ["metric.labels.outcome"]),
    )

    totals = {s.metric_labels["outcome"]: [p.value for p in s.points] for s in found}
    assert totals == {"agree": [18], "error": [3]}
    assert {(s.metric_kind, s.value_type) for s in found} == {("GAUGE", "INT64")}


def test_cumulative_points_become_deltas_under_align_delta() -> None:
    store, _ = _store()
    for at, value in ((T0 - 40, 5.0), (T0 - 30, 7.5), (T0 - 20, 10.0)):
        _write(store, _series(value, at, kind="CUMULATIVE", start=T0 - 50))

    (series,) = _list(store, T0 - 35, T0, Aggregation(60, "ALIGN_DELTA"))

    assert series.value_type == "DOUBLE" and series.metric_kind == "DELTA"
    assert [p.value for p in series.points] == [5.0]  # 7.5 - 5 and 10 - 7.5 fall in (T0 - 35, T0]


def test_aligners_refuse_the_wrong_metric_kind() -> None:
    store, _ = _store()
    _write(store, _series(1, T0 - 10))
    with pytest.raises(ApiError, match="ALIGN_DELTA is not valid for metrics of kind GAUGE"):
        _list(store, T0 - 60, T0, Aggregation(60, "ALIGN_DELTA"))


def test_the_first_write_fixes_kind_and_value_type() -> None:
    store, _ = _store()
    _write(store, _series(1, T0 - 20))
    with pytest.raises(WriteRefused, match=r"GAUGE INT64 .fixed by its first write., not GAUGE DOUBLE"):
        _write(store, _series(1.5, T0 - 10, labels={"outcome": "other"}))
    with pytest.raises(WriteRefused, match="not CUMULATIVE INT64"):
        _write(store, _series(1, T0 - 10, kind="CUMULATIVE", start=T0 - 15, labels={"outcome": "x"}))


def test_points_must_be_written_in_order_and_a_refused_request_writes_nothing() -> None:
    store, _ = _store()
    _write(store, _series(1, T0 - 10))
    with pytest.raises(WriteRefused, match="Points must be written in order"):
        _write(store, _series(5, T0 - 5, labels={"outcome": "error"}), _series(2, T0 - 10))

    (series,) = _list(store, T0 - 60, T0, Aggregation())
    assert [p.value for p in series.points] == [1]


@pytest.mark.parametrize(
    ("series", "message"),
    [
        (_series(metric="run.googleapis.com/request_count"), "'run.googleapis.com/request_count' cannot"),
        (_series(metric=""), "metric.type is required"),
        (_series(resource={"type": ""}), "resource.type is required"),
        (
            _series(resource={"type": "global", "labels": {"project_id": "q"}}),
            "project_id 'q' is not the project",
        ),
        (_series(kind="DELTA", start=T0 - 20), "DELTA is not supported for custom metrics"),
        (_series(points=2), "exactly one point; it has 2"),
        (_series(start=T0 - 20), "GAUGE point's start time must be absent or equal"),
        (_series(kind="CUMULATIVE"), "CUMULATIVE point's start time must be before"),
        (_series(at=T0 - 26 * 3600), "within the past 25 hours"),
        (_series(at=T0 + 600), "at most 5 minutes ahead"),
    ],
)
def test_invalid_series_are_refused_naming_the_problem(series: dict[str, Any], message: str) -> None:
    with pytest.raises(ApiError) as refused:
        parse_request(_request(series), T0)
    assert refused.value.code == "INVALID_ARGUMENT"
    assert message in refused.value.message


def test_request_shape_is_checked() -> None:
    with pytest.raises(ApiError, match="expected projects/"):
        parse_request(_request(_series(), name="organizations/1"), T0)
    with pytest.raises(ApiError, match="1 to 200 time series; it has 0"):
        parse_request(_request(), T0)
    many = [_series(labels={"n": str(index)}) for index in range(201)]
    with pytest.raises(ApiError, match="it has 201"):
        parse_request(_request(*many), T0)
    with pytest.raises(ApiError, match="duplicate time series"):
        parse_request(_request(_series(), _series()), T0)
    assert len(parse_request(_request(*many[:200]), T0)[1]) == 200


def test_bool_string_and_distribution_values_are_unsupported_by_the_emulator() -> None:
    for value in ({"bool_value": True}, {"string_value": "x"}, {"distribution_value": {"count": 1}}):
        with pytest.raises(ApiError) as refused:
            parse_request(_request(_series(value)), T0)
        assert refused.value.code == "UNIMPLEMENTED"
        assert "not supported by the Cloud Monitoring emulator" in refused.value.message
