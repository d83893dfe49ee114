"""Cloud Monitoring API v3, the slice a rollout reads and writes: ``MetricService.ListTimeSeries`` and
``CreateTimeSeries`` (user-defined metrics, see :mod:`emulators.monitoring.create`).

The Python client (``google.cloud.monitoring_v3``) speaks gRPC only, so the emulator serves gRPC (the endpoint
``MONITORING_EMULATOR_HOST`` names) and, for curl and debugging, the same methods over REST
(``GET`` / ``POST /v3/projects/P/timeSeries``) next to the admin endpoints. The other MetricService methods
answer UNIMPLEMENTED. Data comes from a :class:`MetricsStore` — shared in memory with the Cloud Run emulator's
router when both run in one process (``python -m emulators.run --monitoring-port …``), or fed through
``POST /_emulator/requests`` when the Monitoring emulator runs on its own — and from CreateTimeSeries.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from google.api import metric_pb2
from google.cloud import monitoring_v3
from google.protobuf import empty_pb2

from emulators.apiserver.errors import ApiError, invalid
from emulators.apiserver.messages import to_pb
from emulators.apiserver.paging import page
from emulators.apiserver.routing import rules_from_options
from emulators.apiserver.server import AdminRequest, ApiServer
from emulators.monitoring.create import parse_request
from emulators.monitoring.filters import parse_filter
from emulators.monitoring.query import Aggregation, OutSeries, query
from emulators.monitoring.store import (
    GROWTH_FACTOR,
    NUM_FINITE_BUCKETS,
    SCALE,
    Distribution,
    MetricsStore,
    WriteRefused,
)

METRIC_SERVICE = "google.monitoring.v3.MetricService"
_OTHER_METHODS = (
    "ListMonitoredResourceDescriptors",
    "GetMonitoredResourceDescriptor",
    "ListMetricDescriptors",
    "GetMetricDescriptor",
    "CreateMetricDescriptor",
    "DeleteMetricDescriptor",
    "CreateServiceTimeSeries",
)
ResponsePb: Any = monitoring_v3.ListTimeSeriesResponse.pb()
TimeSeriesPb: Any = monitoring_v3.TimeSeries.pb()
AggregationPb: Any = monitoring_v3.Aggregation.pb()
ListRequestPb: Any = monitoring_v3.ListTimeSeriesRequest.pb()
HEADERS_VIEW = int(monitoring_v3.ListTimeSeriesRequest.TimeSeriesView.HEADERS)


def _seconds(stamp: Any) -> float:
    return float(stamp.ToNanoseconds()) / 1e9


def _stamp(target: Any, seconds: float) -> None:
    target.FromNanoseconds(round(seconds * 1e9))


def _fill_distribution(target: Any, value: Distribution) -> None:
    target.count = value.count
    target.mean = value.mean if value.count else 0.0
    target.sum_of_squared_deviation = value.sum_of_squared_deviation
    buckets = target.bucket_options.exponential_buckets
    buckets.num_finite_buckets = NUM_FINITE_BUCKETS
    buckets.growth_factor = GROWTH_FACTOR
    buckets.scale = SCALE
    target.bucket_counts.extend(value.bucket_counts())


def to_time_series(series: OutSeries, headers_only: bool) -> Any:
    result = TimeSeriesPb()
    result.metric.type = series.metric_type
    result.metric.labels.update(series.metric_labels)
    result.resource.type = series.resource_type
    result.resource.labels.update(series.resource_labels)
    result.metric_kind = metric_pb2.MetricDescriptor.MetricKind.Value(series.metric_kind)
    result.value_type = metric_pb2.MetricDescriptor.ValueType.Value(series.value_type)
    result.unit = series.unit
    if headers_only:
        return result
    for point in series.points:
        out = result.points.add()
        _stamp(out.interval.start_time, point.start)
        _stamp(out.interval.end_time, point.end)
        value = point.value
        if isinstance(value, Distribution):
            _fill_distribution(out.value.distribution_value, value)
        elif series.value_type == "INT64":
            out.value.int64_value = int(value)
        else:
            out.value.double_value = float(value)
    return result


class MonitoringService:
    def __init__(self, server: ApiServer, store: MetricsStore, project: str) -> None:
        self.server = server
        self.store = store
        self.project = project  # the default project of ingested requests
        self._register()

    def _register(self) -> None:
        rules = rules_from_options(
            [
                {"method": "get", "uri": "/v3/{name=projects/*}/timeSeries"},
                {"method": "get", "uri": "/v3/{name=organizations/*}/timeSeries"},
                {"method": "get", "uri": "/v3/{name=folders/*}/timeSeries"},
            ]
        )
        self.server.add_method(
            METRIC_SERVICE,
            "ListTimeSeries",
            monitoring_v3.ListTimeSeriesRequest,
            monitoring_v3.ListTimeSeriesResponse,
            self.list_time_series,
            rules,
        )
        self.server.add_method(
            METRIC_SERVICE,
            "CreateTimeSeries",
            monitoring_v3.CreateTimeSeriesRequest,
            empty_pb2.Empty,
            self.create_time_series,
            rules_from_options([{"method": "post", "uri": "/v3/{name=projects/*}/timeSeries", "body": "*"}]),
        )
        for name in _OTHER_METHODS:
            self.server.add_method(
                METRIC_SERVICE, name, empty_pb2.Empty, empty_pb2.Empty, _unimplemented(name)
            )
        self.server.on_reset(self.store.clear)
        self.server.add_health_info(lambda: {"metrics": self.store.settings()})
        self.server.add_admin("GET", r"metrics", self._admin_metrics)
        self.server.add_admin("POST", r"metrics", self._admin_configure)
        self.server.add_admin("POST", r"requests", self._admin_requests)

    def list_time_series(self, request: Any) -> Any:
        raw = to_pb(request)
        parts = raw.name.split("/")
        if len(parts) != 2 or parts[0] not in ("projects", "organizations", "folders") or not parts[1]:
            raise invalid(f"The name {raw.name!r} is invalid: expected projects/PROJECT_ID_OR_NUMBER.")
        if parts[0] != "projects":
            raise ApiError("UNIMPLEMENTED", "Only project-level time series are supported by the emulator.")
        if not raw.filter.strip():
            raise invalid("The filter is required.")
        # Only a malformed filter is an error: a metric type with no data here (any Google metric the
        # emulator does not produce, e.g. compute.googleapis.com/instance/cpu/utilization) lists nothing,
        # as the real API does for a metric without points in the interval.
        compiled = parse_filter(raw.filter)
        if not raw.HasField("interval") or not raw.interval.HasField("end_time"):
            raise invalid("The interval end time is required.")
        if raw.HasField("secondary_aggregation"):
            raise ApiError(
                "UNIMPLEMENTED", "secondary_aggregation is not supported by the Monitoring emulator."
            )
        if raw.order_by:
            raise ApiError("UNIMPLEMENTED", "order_by is not supported by the Monitoring emulator.")
        aggregation = Aggregation()
        if raw.HasField("aggregation"):
            source = raw.aggregation
            aggregation = Aggregation(
                alignment_period=source.alignment_period.ToTimedelta().total_seconds(),
                aligner=AggregationPb.Aligner.Name(source.per_series_aligner),
                reducer=AggregationPb.Reducer.Name(source.cross_series_reducer),
                group_by=list(source.group_by_fields),
            )
        end = _seconds(raw.interval.end_time)
        start = _seconds(raw.interval.start_time) if raw.interval.HasField("start_time") else None
        project = parts[1]
        result = query(
            self.store.snapshot(),
            lambda key: compiled(key, project) and key.resource_label("project_id") == project,
            start,
            end,
            aggregation,
        )
        chunk, token = page(result, raw.page_size, raw.page_token, default_size=1000)
        response = ResponsePb()
        response.time_series.extend(to_time_series(series, raw.view == HEADERS_VIEW) for series in chunk)
        response.next_page_token = token
        return response

    def create_time_series(self, request: Any) -> Any:
        project, writes = parse_request(to_pb(request), self.store.clock())
        try:
            self.store.write_custom(project, writes)
        except WriteRefused as refused:
            raise invalid(" ".join(refused.problems)) from refused
        return empty_pb2.Empty()

    # -- admin --------------------------------------------------------------------------------------------

    def _admin_metrics(self, _: AdminRequest) -> Any:
        return {**self.store.settings(), "requestsPerRevision": self.store.totals()}

    def _admin_configure(self, request: AdminRequest) -> Any:
        body = request.body
        try:
            self.store.configure(
                sample_period=float(body["samplePeriodSeconds"]) if "samplePeriodSeconds" in body else None,
                reporting_delay=float(body["reportingDelaySeconds"])
                if "reportingDelaySeconds" in body
                else None,
            )
        except (TypeError, ValueError) as error:
            raise invalid(str(error)) from error
        return self.store.settings()

    def _admin_requests(self, request: AdminRequest) -> Any:
        """Record requests as if the router had served them: ``{"requests": [{"service", "revision",
        "status", "latencyMs", "project"?, "location"?, "time"? (RFC 3339 or epoch seconds)}]}``."""
        items = request.body.get("requests")
        if not isinstance(items, list):
            raise invalid('expected {"requests": [...]}')
        for index, item in enumerate(items):
            try:
                moment = item.get("time")
                at = None
                if isinstance(moment, str):
                    at = dt.datetime.fromisoformat(moment.replace("Z", "+00:00")).timestamp()
                elif moment is not None:
                    at = float(moment)
                self.store.record_request(
                    project=str(item.get("project") or self.project),
                    location=str(item.get("location", "us-central1")),
                    service=str(item["service"]),
                    revision=str(item["revision"]),
                    status=int(item["status"]),
                    latency_ms=float(item.get("latencyMs", 0.0)),
                    at=at,
                )
            except (KeyError, TypeError, ValueError, AttributeError) as error:
                raise invalid(f"requests[{index}]: {error!r}") from error
        return {"recorded": len(items)}


def _unimplemented(name: str) -> Any:
    def handler(_: Any) -> Any:
        raise ApiError("UNIMPLEMENTED", f"{name} is not supported by the Cloud Monitoring emulator.")

    return handler
