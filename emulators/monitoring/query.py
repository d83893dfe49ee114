"""The ListTimeSeries query engine: select series, align each over the alignment period, reduce across series.

Semantics follow the Cloud Monitoring API:

- points are selected by the interval ``(start, end]`` on their end time (``start`` defaults to ``end``);
- alignment windows are ``(end - (k+1)·P, end - k·P]`` for k = 0, 1, … while they overlap the interval; a
  window without data yields no point;
- aligners: ``ALIGN_NONE`` (raw points), ``ALIGN_DELTA`` (sum of the deltas; distributions merged; kind stays
  DELTA), ``ALIGN_RATE`` (delta per second, DOUBLE, GAUGE; numeric only), ``ALIGN_PERCENTILE_05/50/95/99``
  (DOUBLE, GAUGE; distributions only), ``ALIGN_SUM`` (kind kept), ``ALIGN_MEAN``, ``ALIGN_COUNT``;
- metric kinds (custom metrics bring GAUGE and CUMULATIVE): ``ALIGN_DELTA`` and ``ALIGN_RATE`` need DELTA or
  CUMULATIVE (a CUMULATIVE series is first turned into deltas between its consecutive points, a new start
  time being a reset), ``ALIGN_SUM``, ``ALIGN_MEAN`` and ``ALIGN_COUNT`` need GAUGE or DELTA;
- reducers (need an aligner): ``REDUCE_SUM``, ``REDUCE_MEAN``, ``REDUCE_MIN``, ``REDUCE_MAX``,
  ``REDUCE_COUNT``, ``REDUCE_PERCENTILE_05/50/95/99``, grouped by ``group_by_fields`` — ``metric.labels.K``,
  ``resource.labels.K`` or the shorthand ``metric.K`` / ``resource.K`` (the output keeps only those labels);
- points come back newest first.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from emulators.apiserver.errors import ApiError, invalid
from emulators.monitoring.store import Distribution, Labels, Point, SeriesData, SeriesKey, Value

MAX_WINDOWS = 100_000

_PERCENTILES = {"05": 5.0, "50": 50.0, "95": 95.0, "99": 99.0}
SUPPORTED_ALIGNERS = {
    "ALIGN_NONE",
    "ALIGN_DELTA",
    "ALIGN_RATE",
    "ALIGN_SUM",
    "ALIGN_MEAN",
    "ALIGN_COUNT",
    *(f"ALIGN_PERCENTILE_{suffix}" for suffix in _PERCENTILES),
}
SUPPORTED_REDUCERS = {
    "REDUCE_NONE",
    "REDUCE_SUM",
    "REDUCE_MEAN",
    "REDUCE_MIN",
    "REDUCE_MAX",
    "REDUCE_COUNT",
    *(f"REDUCE_PERCENTILE_{suffix}" for suffix in _PERCENTILES),
}


@dataclass
class Aggregation:
    alignment_period: float = 0.0  # seconds; 0 = not given
    aligner: str = "ALIGN_NONE"
    reducer: str = "REDUCE_NONE"
    group_by: list[str] = field(default_factory=list)


@dataclass
class OutSeries:
    metric_type: str
    metric_labels: dict[str, str]
    resource_type: str
    resource_labels: dict[str, str]
    metric_kind: str  # DELTA | GAUGE
    value_type: str  # INT64 | DOUBLE | DISTRIBUTION
    unit: str
    points: list[Point]  # newest first


def _percentile_of(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _combine(values: Iterable[Value]) -> Value:
    """Sum of numbers, or the merge of distributions."""
    items = list(values)
    if items and isinstance(items[0], Distribution):
        merged = Distribution()
        for item in items:
            assert isinstance(item, Distribution)
            merged.merge(item)
        return merged
    total: int | float = 0
    for item in items:
        assert not isinstance(item, Distribution)
        total += item
    return total


_KINDS_OF_ALIGNER = {
    "ALIGN_DELTA": ("DELTA", "CUMULATIVE"),
    "ALIGN_RATE": ("DELTA", "CUMULATIVE"),
    "ALIGN_SUM": ("GAUGE", "DELTA"),
    "ALIGN_MEAN": ("GAUGE", "DELTA"),
    "ALIGN_COUNT": ("GAUGE", "DELTA"),
}


def _validate_kind(aggregation: Aggregation, kind: str) -> None:
    allowed = _KINDS_OF_ALIGNER.get(aggregation.aligner)
    if allowed is not None and kind not in allowed:
        raise invalid(
            f"The aligner {aggregation.aligner} is not valid for metrics of kind {kind} "
            f"(only {' and '.join(allowed)})."
        )


def _as_deltas(item: SeriesData) -> SeriesData:
    """A CUMULATIVE series as DELTA points: each point's increase since the previous one of the same run
    (same start time); the first point of a run counts from its start."""
    points: list[Point] = []
    previous: Point | None = None
    for point in item.points:
        if previous is not None and previous.start == point.start:
            assert not isinstance(point.value, Distribution) and not isinstance(previous.value, Distribution)
            value = point.value - previous.value
            points.append(Point(start=previous.end, end=point.end, value=value))
        else:
            points.append(point)
        previous = point
    info = replace(item.info, metric_kind="DELTA")
    return SeriesData(key=item.key, info=info, points=points)


def _validate(aggregation: Aggregation, value_type: str | None) -> None:
    aligner, reducer = aggregation.aligner, aggregation.reducer
    if aligner not in SUPPORTED_ALIGNERS:
        raise ApiError("UNIMPLEMENTED", f"The aligner {aligner} is not supported by the Monitoring emulator.")
    if reducer not in SUPPORTED_REDUCERS:
        raise ApiError("UNIMPLEMENTED", f"The reducer {reducer} is not supported by the Monitoring emulator.")
    if aligner != "ALIGN_NONE" and aggregation.alignment_period <= 0:
        raise invalid("The alignment period must be specified (and positive) when an aligner is used.")
    if reducer != "REDUCE_NONE" and aligner == "ALIGN_NONE":
        raise invalid("A cross-series reducer requires a per-series aligner other than ALIGN_NONE.")
    for name in aggregation.group_by:
        if group_field(name) is None and name not in _TYPE_FIELDS:
            raise invalid(
                f"The group-by field {name!r} is invalid (use metric.labels.K, resource.labels.K or the "
                "shorthand metric.K, resource.K)."
            )
    if value_type is None:
        return
    if aligner == "ALIGN_RATE" and value_type == "DISTRIBUTION":
        raise invalid("The aligner ALIGN_RATE is not valid for metrics of value type DISTRIBUTION.")
    if aligner.startswith("ALIGN_PERCENTILE") and value_type != "DISTRIBUTION":
        raise invalid(f"The aligner {aligner} is only valid for metrics of value type DISTRIBUTION.")


_TYPE_FIELDS = ("metric.type", "resource.type")
# metric.labels.K, metric.label.K and the shorthand metric.K the real API also accepts (its own samples
# group by "resource.zone"); the same for resource.
_GROUP_FIELD = re.compile(r"(?P<scope>metric|resource)\.(?:labels?\.)?(?P<label>[A-Za-z_][A-Za-z0-9_]*)")


def group_field(name: str) -> tuple[str, str] | None:
    """(scope, label) a group-by field names; None for the type fields and for anything invalid."""
    found = _GROUP_FIELD.fullmatch(name)
    if found is None or name in _TYPE_FIELDS or name.partition(".")[2] in ("label", "labels"):
        return None
    return found.group("scope"), found.group("label")


def _group_value(name: str, key: SeriesKey) -> tuple[str, str, str] | None:
    """(scope, label, value) kept by grouping on ``name``; None for the type fields."""
    field = group_field(name)
    if field is None:
        return None
    scope, label = field
    value = key.metric_label(label) if scope == "metric" else key.resource_label(label)
    return (scope, label, value or "")


def _aligned_value(aligner: str, value: Value, period: float) -> Value:
    if aligner in ("ALIGN_DELTA", "ALIGN_SUM"):
        return value
    if aligner == "ALIGN_RATE":
        assert not isinstance(value, Distribution)
        return float(value) / period
    if aligner == "ALIGN_MEAN":
        return value.mean if isinstance(value, Distribution) else float(value)
    if aligner == "ALIGN_COUNT":
        return value.count if isinstance(value, Distribution) else 1
    if aligner.startswith("ALIGN_PERCENTILE_"):
        assert isinstance(value, Distribution)
        return value.percentile(_PERCENTILES[aligner.rsplit("_", 1)[1]])
    raise AssertionError(aligner)


def _aligned_types(aligner: str, value_type: str, kind: str) -> tuple[str, str]:
    """(metric kind, value type) after alignment."""
    if aligner in ("ALIGN_NONE",):
        return kind, value_type
    if aligner == "ALIGN_DELTA":
        return "DELTA", value_type
    if aligner == "ALIGN_SUM":
        return kind, value_type
    if aligner == "ALIGN_COUNT":
        return "GAUGE", "INT64"
    return "GAUGE", "DOUBLE"


def _reduce(reducer: str, values: list[Value]) -> Value:
    if reducer == "REDUCE_SUM":
        return _combine(values)
    if reducer == "REDUCE_COUNT":
        return len(values)
    if reducer.startswith("REDUCE_PERCENTILE_"):
        q = _PERCENTILES[reducer.rsplit("_", 1)[1]]
        if values and isinstance(values[0], Distribution):
            merged = _combine(values)
            assert isinstance(merged, Distribution)
            return merged.percentile(q)
        return _percentile_of([float(v) for v in values if not isinstance(v, Distribution)], q)
    numbers = [v.mean if isinstance(v, Distribution) else float(v) for v in values]
    if reducer == "REDUCE_MEAN":
        if values and isinstance(values[0], Distribution):
            merged = _combine(values)
            assert isinstance(merged, Distribution)
            return merged.mean
        return sum(numbers) / len(numbers)
    if reducer == "REDUCE_MIN":
        return min(numbers)
    if reducer == "REDUCE_MAX":
        return max(numbers)
    raise AssertionError(reducer)


def _reduced_type(reducer: str, value_type: str) -> str:
    if reducer == "REDUCE_SUM":
        return value_type
    if reducer == "REDUCE_COUNT":
        return "INT64"
    return "DOUBLE"


def query(
    series: list[SeriesData],
    matches: Callable[[SeriesKey], bool],
    start: float | None,
    end: float,
    aggregation: Aggregation,
) -> list[OutSeries]:
    """Run one ListTimeSeries query over the visible ``series`` (see the module docstring)."""
    selected = [item for item in series if matches(item.key)]
    _validate(aggregation, None)
    begin = end if start is None else start
    if begin > end:
        raise invalid("The interval start time must not be after its end time.")
    value_types = {item.info.value_type for item in selected}
    for value_type in value_types:
        _validate(aggregation, value_type)
    for kind in {item.info.metric_kind for item in selected}:
        _validate_kind(aggregation, kind)
    if aggregation.aligner in ("ALIGN_DELTA", "ALIGN_RATE"):
        selected = [_as_deltas(item) if item.info.metric_kind == "CUMULATIVE" else item for item in selected]
    if aggregation.aligner == "ALIGN_NONE":
        raw = [_raw(item, begin, end) for item in sorted(selected, key=_order)]
        return [item for item in raw if item.points]

    period = aggregation.alignment_period
    windows = max(1, math.ceil((end - begin) / period))
    if windows > MAX_WINDOWS:
        raise invalid(f"The interval spans {windows} alignment periods; at most {MAX_WINDOWS} are allowed.")
    aligned: list[tuple[SeriesData, dict[int, Value]]] = []
    for item in sorted(selected, key=_order):
        buckets: dict[int, list[Value]] = {}
        for point in item.points:
            if not _selected(point, begin, end):
                continue
            distance = end - point.end
            index = math.floor(round(distance / period, 9)) if distance > 0 else 0
            if index >= windows:
                continue
            buckets.setdefault(index, []).append(point.value)
        values = {
            index: _aligned_value(aggregation.aligner, _combine(items), period)
            for index, items in buckets.items()
        }
        if values:
            aligned.append((item, values))

    def window_point(index: int, value: Value, kind: str) -> Point:
        window_end = end - index * period
        return Point(
            start=window_end - period if kind == "DELTA" else window_end, end=window_end, value=value
        )

    if aggregation.reducer == "REDUCE_NONE":
        out = []
        for item, values in aligned:
            kind, value_type = _aligned_types(
                aggregation.aligner, item.info.value_type, item.info.metric_kind
            )
            out.append(
                OutSeries(
                    metric_type=item.key.metric_type,
                    metric_labels=dict(item.key.metric_labels),
                    resource_type=item.key.resource_type,
                    resource_labels=dict(item.key.resource_labels),
                    metric_kind=kind,
                    value_type=value_type,
                    unit=item.info.unit,
                    points=[window_point(index, values[index], kind) for index in sorted(values)],
                )
            )
        return out

    groups: dict[tuple[str, str, Labels, Labels], list[tuple[SeriesData, dict[int, Value]]]] = {}
    for item, values in aligned:
        metric_labels: list[tuple[str, str]] = []
        resource_labels: list[tuple[str, str]] = []
        for name in aggregation.group_by:
            kept = _group_value(name, item.key)
            if kept is not None:
                (metric_labels if kept[0] == "metric" else resource_labels).append((kept[1], kept[2]))
        group = (
            item.key.metric_type,
            item.key.resource_type,
            tuple(sorted(set(metric_labels))),
            tuple(sorted(set(resource_labels))),
        )
        groups.setdefault(group, []).append((item, values))
    out = []
    for (metric_type, resource_type, metric_labels_t, resource_labels_t), members in sorted(groups.items()):
        info = members[0][0].info
        kind, value_type = _aligned_types(aggregation.aligner, info.value_type, info.metric_kind)
        by_window: dict[int, list[Value]] = {}
        for _, values in members:
            for index, value in values.items():
                by_window.setdefault(index, []).append(value)
        points = [
            window_point(index, _reduce(aggregation.reducer, by_window[index]), kind)
            for index in sorted(by_window)
        ]
        out.append(
            OutSeries(
                metric_type=metric_type,
                metric_labels=dict(metric_labels_t),
                resource_type=resource_type,
                resource_labels=dict(resource_labels_t),
                metric_kind=kind,
                value_type=_reduced_type(aggregation.reducer, value_type),
                unit=info.unit,
                points=points,
            )
        )
    return out


def _order(item: SeriesData) -> tuple[str, Labels, Labels]:
    return (item.key.metric_type, item.key.resource_labels, item.key.metric_labels)


def _selected(point: Point, begin: float, end: float) -> bool:
    """A point is in ``(begin, end]`` by its end time; an instant interval takes the point covering it."""
    if begin < end:
        return begin < point.end <= end
    return point.start < end <= point.end


def _raw(item: SeriesData, begin: float, end: float) -> OutSeries:
    points = [point for point in item.points if _selected(point, begin, end)]
    return OutSeries(
        metric_type=item.key.metric_type,
        metric_labels=dict(item.key.metric_labels),
        resource_type=item.key.resource_type,
        resource_labels=dict(item.key.resource_labels),
        metric_kind=item.info.metric_kind,
        value_type=item.info.value_type,
        unit=item.info.unit,
        points=list(reversed(points)),
    )
