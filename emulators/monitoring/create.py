"""``MetricService.CreateTimeSeries``: user-defined metric points, checked the way the real API checks them.

- ``name`` is ``projects/P``; 1 to 200 time series per request, each with exactly one point, and no series
  twice in one request;
- the metric type starts with ``custom.googleapis.com/`` or ``external.googleapis.com/`` (Google's own
  metrics cannot be written);
- ``metric_kind`` GAUGE (the default; the point's start time absent or equal to its end) or CUMULATIVE (start
  before end); DELTA is refused, as for any custom metric; ``value_type``, when given, matches the value;
- values INT64 or DOUBLE (BOOL, STRING and DISTRIBUTION are not supported by the emulator: UNIMPLEMENTED);
- ``resource.type`` is required; its ``project_id`` label is filled from ``name`` when absent (and must name
  that project when present); end times within the past 25 hours and at most 5 minutes ahead;
- the metric's kind and value type are fixed by its first write, and a series' points come in order
  (:meth:`MetricsStore.write_custom`).

Every problem is reported at once, as INVALID_ARGUMENT. Unlike the real API, which writes the valid series of
a partly invalid request and lists the others in the error, the emulator writes all or nothing.
"""

from __future__ import annotations

from typing import Any

from google.api import metric_pb2

from emulators.apiserver.errors import ApiError, invalid
from emulators.monitoring.store import CUSTOM_PREFIXES, CustomWrite, Point, SeriesKey

MAX_SERIES = 200
MAX_AGE_SECONDS = 25 * 3600
MAX_AHEAD_SECONDS = 5 * 60
_KIND = metric_pb2.MetricDescriptor.MetricKind
_TYPE = metric_pb2.MetricDescriptor.ValueType
_VALUE_TYPES = {"int64_value": "INT64", "double_value": "DOUBLE"}
_UNSUPPORTED_VALUES = {"bool_value": "BOOL", "string_value": "STRING", "distribution_value": "DISTRIBUTION"}


def _seconds(stamp: Any) -> float:
    return float(stamp.ToNanoseconds()) / 1e9


def project_of(name: str) -> str:
    parts = name.split("/")
    if len(parts) != 2 or parts[0] != "projects" or not parts[1]:
        raise invalid(f"The name {name!r} is invalid: expected projects/PROJECT_ID_OR_NUMBER.")
    return parts[1]


def parse_request(raw: Any, now: float) -> tuple[str, list[CustomWrite]]:
    """(project, one write per series) of a ``CreateTimeSeriesRequest`` protobuf, or the ApiError that
    names every problem."""
    project = project_of(raw.name)
    count = len(raw.time_series)
    if not 1 <= count <= MAX_SERIES:
        raise invalid(f"A request must contain 1 to {MAX_SERIES} time series; it has {count}.")
    problems: list[str] = []
    unsupported: list[str] = []
    writes: list[CustomWrite] = []
    seen: set[SeriesKey] = set()
    for index, series in enumerate(raw.time_series):
        where = f"timeSeries[{index}]"
        before = len(problems) + len(unsupported)
        metric_type = series.metric.type
        if not metric_type:
            problems.append(f"{where}.metric.type is required.")
        elif not metric_type.startswith(CUSTOM_PREFIXES):
            problems.append(
                f"{where}.metric.type {metric_type!r} cannot be written: only user-defined metrics "
                f"({' or '.join(CUSTOM_PREFIXES)}…) can."
            )
        if not series.resource.type:
            problems.append(f"{where}.resource.type is required.")
        resource_labels = dict(series.resource.labels)
        resource_labels.setdefault("project_id", project)
        if resource_labels["project_id"] != project:
            problems.append(
                f"{where}.resource.labels.project_id {resource_labels['project_id']!r} is not the project "
                f"of the request ({project!r})."
            )
        kind = _KIND.Name(series.metric_kind)
        if kind == "METRIC_KIND_UNSPECIFIED":
            kind = "GAUGE"
        if kind not in ("GAUGE", "CUMULATIVE"):
            problems.append(
                f"{where}.metricKind {kind} is not supported for custom metrics (GAUGE or CUMULATIVE)."
            )
        if len(series.points) != 1:
            problems.append(f"{where}.points must contain exactly one point; it has {len(series.points)}.")
            continue
        point = series.points[0]
        which = point.value.WhichOneof("value")
        if which in _UNSUPPORTED_VALUES:
            unsupported.append(
                f"{where}: {_UNSUPPORTED_VALUES[which]} values are not supported by the Cloud Monitoring "
                "emulator (INT64 and DOUBLE are)."
            )
            continue
        if which is None:
            problems.append(f"{where}.points[0].value is required.")
            continue
        value_type = _VALUE_TYPES[which]
        declared = _TYPE.Name(series.value_type)
        if declared != "VALUE_TYPE_UNSPECIFIED" and declared != value_type:
            problems.append(f"{where}.valueType {declared} does not match the point's {value_type} value.")
        if not point.interval.HasField("end_time"):
            problems.append(f"{where}.points[0].interval.endTime is required.")
            continue
        end = _seconds(point.interval.end_time)
        has_start = point.interval.HasField("start_time")
        start = _seconds(point.interval.start_time) if has_start else end
        if kind == "GAUGE" and start != end:
            problems.append(f"{where}: a GAUGE point's start time must be absent or equal to its end time.")
        if kind == "CUMULATIVE" and not (has_start and start < end):
            problems.append(f"{where}: a CUMULATIVE point's start time must be before its end time.")
        if end < now - MAX_AGE_SECONDS or end > now + MAX_AHEAD_SECONDS:
            problems.append(
                f"{where}: the point's end time must be within the past 25 hours and at most 5 minutes ahead."
            )
        key = SeriesKey(
            metric_type,
            tuple(sorted(dict(series.metric.labels).items())),
            series.resource.type,
            tuple(sorted(resource_labels.items())),
        )
        if key in seen:
            problems.append(
                f"{where}: duplicate time series in the request; only one point can be written per time "
                "series per request."
            )
        seen.add(key)
        if len(problems) + len(unsupported) > before:
            continue
        number: int | float = (
            int(point.value.int64_value) if which == "int64_value" else point.value.double_value
        )
        writes.append(
            CustomWrite(key, kind, value_type, series.unit, Point(start=start, end=end, value=number))
        )
    if problems:
        raise invalid(" ".join(problems + unsupported))
    if unsupported:
        raise ApiError("UNIMPLEMENTED", " ".join(unsupported))
    return project, writes
