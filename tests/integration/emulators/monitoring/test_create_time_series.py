"""``CreateTimeSeries`` on the Cloud Monitoring emulator through the unmodified ``MetricServiceClient`` (gRPC)
and over REST: points written, listed raw and aggregated, and refused the way the real API refuses them."""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from google.api import metric_pb2
from google.api_core import exceptions

from emulators.common.proc import Started, free_port, http_ok, start_process, stop_group, wait_until
from emulators.run.launch import ROOT
from shared.clients import monitoring_emulator_client

pytestmark = pytest.mark.integration

PROJECT = "custom-project"


class Monitoring:
    def __init__(self, started: Started, rest: str, grpc_host: str) -> None:
        self.started = started
        self.rest = rest
        self.client: Any = monitoring_emulator_client(grpc_host)


@pytest.fixture(scope="module")
def monitoring(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitoring]:
    root: Path = tmp_path_factory.mktemp("monitoring-create")
    port, grpc_port = free_port(), free_port()
    argv = [sys.executable, "-m", "emulators.monitoring", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--grpc-port", str(grpc_port), "--project", PROJECT, "--state-dir", str(root / "state")]
    argv += ["--metrics-delay", "0"]
    started = start_process("monitoring", argv, root / "logs", env=dict(os.environ), cwd=ROOT)
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/_emulator/health"), "monitoring", 30, started)
        yield Monitoring(started, f"127.0.0.1:{port}", f"127.0.0.1:{grpc_port}")
    finally:
        stop_group(started.pid)


def _metric() -> str:
    return f"custom.googleapis.com/test/{uuid.uuid4().hex[:10]}"


def _series(metric: str, labels: dict[str, str], value: Any, at: float, **extra: Any) -> dict[str, Any]:
    typed = {"double_value": value} if isinstance(value, float) else {"int64_value": value}
    return {
        "metric": {"type": metric, "labels": labels},
        "resource": {"type": "global"},
        "points": [{"interval": {"end_time": {"seconds": int(at)}}, "value": typed}],
        **extra,
    }


def _create(monitoring: Monitoring, *series: dict[str, Any]) -> None:
    monitoring.client.create_time_series(request={"name": f"projects/{PROJECT}", "time_series": list(series)})


def _list(monitoring: Monitoring, metric: str, start: float, end: float, **extra: Any) -> list[Any]:
    request = {
        "name": f"projects/{PROJECT}",
        "filter": f'metric.type = "{metric}"',
        "interval": {"start_time": {"seconds": int(start)}, "end_time": {"seconds": int(end)}},
        **extra,
    }
    return list(monitoring.client.list_time_series(request=request))


def test_written_points_are_listed_raw_and_summed_per_metric_label(monitoring: Monitoring) -> None:
    metric = _metric()
    base = int(time.time()) - 120
    for step in range(3):
        _create(
            monitoring,
            _series(metric, {"outcome": "agree", "instance": "a"}, 2, base + step * 10),
            _series(metric, {"outcome": "error", "instance": "a"}, 1, base + step * 10),
            _series(metric, {"outcome": "agree", "instance": "b"}, 5, base + step * 10),
        )

    raw = _list(monitoring, metric, base - 1, base + 60)
    summed = _list(
        monitoring,
        metric,
        base - 1,
        base + 60,
        aggregation={
            "alignment_period": {"seconds": 61},
            "per_series_aligner": "ALIGN_SUM",
            "cross_series_reducer": "REDUCE_SUM",
            "group_by_fields": ["metric.labels.outcome"],
        },
    )

    assert len(raw) == 3
    first = next(s for s in raw if dict(s.metric.labels) == {"outcome": "agree", "instance": "a"})
    assert dict(first.resource.labels) == {"project_id": PROJECT} and first.resource.type == "global"
    assert first.metric_kind == metric_pb2.MetricDescriptor.GAUGE
    assert first.value_type == metric_pb2.MetricDescriptor.INT64
    assert [(p.interval.end_time.timestamp(), p.value.int64_value) for p in first.points] == [
        (base + 20, 2),
        (base + 10, 2),
        (base, 2),
    ]
    assert {s.metric.labels["outcome"]: [p.value.int64_value for p in s.points] for s in summed} == {
        "agree": [21],
        "error": [3],
    }
    assert all(set(s.metric.labels) == {"outcome"} for s in summed)


def test_cumulative_doubles_over_rest_read_back_as_deltas(monitoring: Monitoring) -> None:
    metric = _metric()
    base = int(time.time()) - 120
    for offset, value in ((10, 1.5), (20, 4.0)):
        body = {
            "timeSeries": [
                {
                    "metric": {"type": metric, "labels": {"arm": "b"}},
                    "resource": {"type": "global"},
                    "metricKind": "CUMULATIVE",
                    "points": [
                        {
                            "interval": {
                                "startTime": _rfc3339(base),
                                "endTime": _rfc3339(base + offset),
                            },
                            "value": {"doubleValue": value},
                        }
                    ],
                }
            ]
        }
        answer = requests.post(
            f"http://{monitoring.rest}/v3/projects/{PROJECT}/timeSeries", json=body, timeout=5
        )
        assert answer.status_code == 200, answer.text

    (series,) = _list(
        monitoring,
        metric,
        base + 15,
        base + 60,
        aggregation={"alignment_period": {"seconds": 45}, "per_series_aligner": "ALIGN_DELTA"},
    )

    assert series.value_type == metric_pb2.MetricDescriptor.DOUBLE
    assert [p.value.double_value for p in series.points] == [2.5]


def _rfc3339(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _refused(monitoring: Monitoring, *series: dict[str, Any]) -> str:
    with pytest.raises(exceptions.InvalidArgument) as refused:
        _create(monitoring, *series)
    return str(refused.value.message)


def test_invalid_writes_are_refused_with_invalid_argument(monitoring: Monitoring) -> None:
    metric = _metric()
    now = int(time.time())
    _create(monitoring, _series(metric, {"outcome": "agree"}, 1, now - 30))

    assert "Points must be written in order" in _refused(
        monitoring, _series(metric, {"outcome": "agree"}, 1, now - 30)
    )
    assert "fixed by its first write" in _refused(
        monitoring, _series(metric, {"outcome": "x"}, 0.5, now - 20)
    )
    assert "'run.googleapis.com/request_count' cannot be written" in _refused(
        monitoring, _series("run.googleapis.com/request_count", {}, 1, now - 20)
    )
    assert "DELTA is not supported for custom metrics" in _refused(
        monitoring, _series(_metric(), {}, 1, now - 20, metric_kind="DELTA")
    )
    assert "resource.type is required" in _refused(
        monitoring, {**_series(_metric(), {}, 1, now - 20), "resource": {"type": ""}}
    )
    assert "exactly one point" in _refused(monitoring, {**_series(_metric(), {}, 1, now - 20), "points": []})
    assert "1 to 200 time series; it has 201" in _refused(
        monitoring, *(_series(_metric(), {}, 1, now - 20) for _ in range(201))
    )
    # Nothing of a refused request was written: the first series is still the only point.
    (series,) = _list(monitoring, metric, now - 60, now)
    assert [p.value.int64_value for p in series.points] == [1]


def test_unsupported_value_types_and_reset(monitoring: Monitoring) -> None:
    metric = _metric()
    now = int(time.time())
    bad = _series(metric, {}, 1, now - 5)
    bad["points"][0]["value"] = {"bool_value": True}
    with pytest.raises(exceptions.MethodNotImplemented, match="BOOL values are not supported"):
        _create(monitoring, bad)

    _create(monitoring, _series(metric, {}, 7, now - 5))
    assert len(_list(monitoring, metric, now - 60, now)) == 1
    requests.post(f"http://{monitoring.rest}/_emulator/reset", timeout=5).raise_for_status()
    assert _list(monitoring, metric, now - 60, now) == []
