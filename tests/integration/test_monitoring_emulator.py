"""Contract tests of the Cloud Monitoring emulator through the unmodified ``MetricServiceClient`` (gRPC).

The stand-alone emulator (``python -m emulators.monitoring``) is fed exact requests through
``POST /_emulator/requests`` so every aggregation can be checked against known numbers; the Cloud Run router
feeding the same store is covered by ``test_canary_traffic.py``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from google.api import metric_pb2
from google.api_core import exceptions
from google.cloud import monitoring_v3

from emulators.common.proc import Started, free_port, http_ok, start_process, stop_group, wait_until
from emulators.run.launch import ROOT
from shared.clients import monitoring_emulator_client

pytestmark = pytest.mark.integration

PROJECT = "mon-project"
COUNT = "run.googleapis.com/request_count"
LATENCIES = "run.googleapis.com/request_latencies"
# A fixed minute in the past, aligned to 60 s, so the data is visible whatever the delay and the clock.
BASE = (int(time.time()) // 60 - 30) * 60


class Monitoring:
    def __init__(self, started: Started, rest: str, grpc_host: str) -> None:
        self.started = started
        self.rest = rest
        self.grpc_host = grpc_host
        self.client: Any = monitoring_emulator_client(grpc_host)

    def admin(self, verb: str, path: str, body: Any = None) -> Any:
        response = requests.request(verb, f"http://{self.rest}/_emulator/{path}", json=body, timeout=5)
        response.raise_for_status()
        return response.json()


@pytest.fixture(scope="module")
def monitoring(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitoring]:
    root: Path = tmp_path_factory.mktemp("monitoring")
    port, grpc_port = free_port(), free_port()
    argv = [sys.executable, "-m", "emulators.monitoring", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--grpc-port", str(grpc_port), "--project", PROJECT, "--state-dir", str(root / "state")]
    argv += ["--metrics-delay", "0"]
    started = start_process("monitoring", argv, root / "logs", env=dict(os.environ), cwd=ROOT)
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/_emulator/health"), "monitoring", 30, started)
        server = Monitoring(started, f"127.0.0.1:{port}", f"127.0.0.1:{grpc_port}")
        requests_ = []
        # Revision A: 90 requests, all 200, 10-14 ms. Revision B: 10 requests, 5 of them 500, 200-209 ms.
        for index in range(90):
            requests_.append(_request("svc-a", 200, 10 + index % 5, BASE + 5 + index * 0.5))
        for index in range(10):
            requests_.append(_request("svc-b", 500 if index % 2 else 200, 200 + index, BASE + 5 + index))
        # Another service and another project, which filters must leave out.
        requests_.append(_request("other-a", 200, 1, BASE + 5, service="other"))
        requests_.append({**_request("svc-a", 200, 1, BASE + 5), "project": "someone-else"})
        assert server.admin("POST", "requests", {"requests": requests_}) == {"recorded": 102}
        yield server
    finally:
        stop_group(started.pid)


def _request(revision: str, status: int, latency: float, at: float, service: str = "svc") -> dict[str, Any]:
    return {"service": service, "revision": revision, "status": status, "latencyMs": latency, "time": at}


def _interval(start: float, end: float) -> dict[str, Any]:
    return {"start_time": {"seconds": int(start)}, "end_time": {"seconds": int(end)}}


def _list(
    monitoring: Monitoring, filter_: str, aggregation: dict[str, Any] | None = None, **extra: Any
) -> list[Any]:
    request: dict[str, Any] = {
        "name": f"projects/{PROJECT}",
        "filter": filter_,
        "interval": _interval(BASE, BASE + 120),
        **extra,
    }
    if aggregation is not None:
        request["aggregation"] = aggregation
    return list(monitoring.client.list_time_series(request=request))


SVC = 'resource.type = "cloud_run_revision" AND resource.labels.service_name = "svc"'


def test_reduce_sum_grouped_by_revision(monitoring: Monitoring) -> None:
    series = _list(
        monitoring,
        f'metric.type = "{COUNT}" AND {SVC}',
        {
            "alignment_period": {"seconds": 120},
            "per_series_aligner": "ALIGN_DELTA",
            "cross_series_reducer": "REDUCE_SUM",
            "group_by_fields": ["resource.labels.revision_name"],
        },
    )
    totals = {s.resource.labels["revision_name"]: [p.value.int64_value for p in s.points] for s in series}
    assert totals == {"svc-a": [90], "svc-b": [10]}
    first = series[0]
    assert first.metric.type == COUNT and first.resource.type == "cloud_run_revision"
    assert dict(first.metric.labels) == {} and set(first.resource.labels) == {"revision_name"}
    assert first.metric_kind == metric_pb2.MetricDescriptor.DELTA
    assert first.value_type == metric_pb2.MetricDescriptor.INT64
    point = first.points[0]
    assert point.interval.end_time.timestamp() == BASE + 120 and point.interval.start_time.timestamp() == BASE


def test_5xx_share_by_response_code_class(monitoring: Monitoring) -> None:
    series = _list(
        monitoring,
        f'metric.type = "{COUNT}" AND {SVC} AND resource.labels.revision_name = "svc-b"',
        {
            "alignment_period": {"seconds": 120},
            "per_series_aligner": "ALIGN_DELTA",
            "cross_series_reducer": "REDUCE_SUM",
            "group_by_fields": ["metric.labels.response_code_class"],
        },
    )
    assert {s.metric.labels["response_code_class"]: s.points[0].value.int64_value for s in series} == {
        "2xx": 5,
        "5xx": 5,
    }


def test_raw_points_alignment_and_rate(monitoring: Monitoring) -> None:
    raw = _list(monitoring, f'metric.type = "{COUNT}" AND resource.labels.revision_name = "svc-b"')
    assert sorted(s.metric.labels["response_code"] for s in raw) == ["200", "500"]
    ends = [p.interval.end_time.timestamp() for p in raw[0].points]
    assert ends == sorted(ends, reverse=True) and len(ends) == 5  # one point per 1 s sample, newest first
    per_minute = _list(
        monitoring,
        f'metric.type = "{COUNT}" AND resource.labels.revision_name = "svc-a"',
        {
            "alignment_period": {"seconds": 30},
            "per_series_aligner": "ALIGN_RATE",
            "cross_series_reducer": "REDUCE_SUM",
        },
    )
    (series,) = per_minute
    # 90 requests at 2/s from BASE+5 to BASE+49.5: windows (BASE+30, BASE+60] and (BASE, BASE+30].
    values = [round(p.value.double_value * 30) for p in series.points]
    assert values == [40, 50] and sum(values) == 90


def test_percentile_aligner_and_reducer(monitoring: Monitoring) -> None:
    per_revision = _list(
        monitoring,
        f'metric.type = "{LATENCIES}" AND {SVC} AND metric.labels.response_code = "200"',
        {"alignment_period": {"seconds": 120}, "per_series_aligner": "ALIGN_PERCENTILE_95"},
    )
    p95 = {s.resource.labels["revision_name"]: s.points[0].value.double_value for s in per_revision}
    assert 10 <= p95["svc-a"] <= 14 and 200 <= p95["svc-b"] <= 208
    pooled = _list(
        monitoring,
        f'metric.type = "{LATENCIES}" AND {SVC}',
        {
            "alignment_period": {"seconds": 120},
            "per_series_aligner": "ALIGN_DELTA",
            "cross_series_reducer": "REDUCE_PERCENTILE_99",
            "group_by_fields": ["resource.labels.service_name"],
        },
    )
    assert len(pooled) == 1 and 200 <= pooled[0].points[0].value.double_value <= 209
    distribution = (
        _list(
            monitoring,
            f'metric.type = "{LATENCIES}" AND resource.labels.revision_name = "svc-a"',
            {"alignment_period": {"seconds": 120}, "per_series_aligner": "ALIGN_DELTA"},
        )[0]
        .points[0]
        .value.distribution_value
    )
    assert distribution.count == 90 and distribution.mean == pytest.approx(12.0)
    assert sum(distribution.bucket_counts) == 90
    assert distribution.bucket_options.exponential_buckets.growth_factor == pytest.approx(1.4)


def test_invalid_and_unsupported_requests(monitoring: Monitoring) -> None:
    for bad in (f'metric.type = "{COUNT}" AND', 'resource.labels.service_name = "svc"', "metric.type ~ 'x'"):
        with pytest.raises(exceptions.InvalidArgument):
            _list(monitoring, bad)
    with pytest.raises(exceptions.InvalidArgument):
        _list(monitoring, f'metric.type = "{COUNT}"', {"cross_series_reducer": "REDUCE_SUM"})
    with pytest.raises(exceptions.InvalidArgument):
        _list(
            monitoring,
            f'metric.type = "{COUNT}"',
            {"alignment_period": {"seconds": 60}, "per_series_aligner": "ALIGN_PERCENTILE_95"},
        )
    assert _list(monitoring, 'metric.type = "run.googleapis.com/nope"') == []  # no data lists nothing
    with pytest.raises(exceptions.MethodNotImplemented):
        _list(
            monitoring,
            f'metric.type = "{COUNT}"',
            {"alignment_period": {"seconds": 60}, "per_series_aligner": "ALIGN_INTERPOLATE"},
        )
    with pytest.raises(exceptions.MethodNotImplemented):
        list(monitoring.client.list_metric_descriptors(name=f"projects/{PROJECT}"))


def test_headers_view_paging_and_rest(monitoring: Monitoring) -> None:
    headers = _list(
        monitoring,
        f'metric.type = "{COUNT}"',
        view=monitoring_v3.ListTimeSeriesRequest.TimeSeriesView.HEADERS,
    )
    assert len(headers) == 4 and all(len(s.points) == 0 for s in headers)  # a, b/200, b/500, other
    pages = monitoring.client.list_time_series(
        request={
            "name": f"projects/{PROJECT}",
            "filter": f'metric.type = "{COUNT}"',
            "interval": _interval(BASE, BASE + 120),
            "page_size": 3,
        }
    ).pages
    assert [len(page.time_series) for page in pages] == [3, 1]
    rest = requests.get(
        f"http://{monitoring.rest}/v3/projects/{PROJECT}/timeSeries",
        params={
            "filter": f'metric.type = "{COUNT}" AND resource.labels.service_name = "other"',
            "interval.startTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(BASE)),
            "interval.endTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(BASE + 120)),
        },
        timeout=5,
    )
    assert rest.status_code == 200, rest.text
    assert rest.json()["timeSeries"][0]["points"][0]["value"]["int64Value"] == "1"


def test_reporting_delay_hides_fresh_points(monitoring: Monitoring) -> None:
    monitoring.admin("POST", "metrics", {"reportingDelaySeconds": 2.0})
    try:
        now = time.time()
        monitoring.admin("POST", "requests", {"requests": [_request("late-a", 200, 5, now, service="late")]})
        query = f'metric.type = "{COUNT}" AND resource.labels.service_name = "late"'

        def visible() -> int:
            series = monitoring.client.list_time_series(
                request={
                    "name": f"projects/{PROJECT}",
                    "filter": query,
                    "interval": _interval(now - 60, now + 60),
                }
            )
            return sum(p.value.int64_value for s in series for p in s.points)

        assert visible() == 0
        deadline = time.monotonic() + 10
        while visible() == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert visible() == 1 and time.time() >= now + 2.0
    finally:
        monitoring.admin("POST", "metrics", {"reportingDelaySeconds": 0.0})
