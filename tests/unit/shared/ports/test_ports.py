"""The ports package: the error mapping at the boundary, time budgets, the bundles, and a lean import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from google.api_core import exceptions as google_exceptions

from shared.errors import DeadlineExceeded, InvalidInput, PermanentError, TransientError
from shared.ports import FakePorts, Ports, fake_ports, production_ports
from shared.ports.common import Budget, label_problems, label_value
from shared.ports.errors import (
    AccessDenied,
    AlreadyExists,
    Conflict,
    NotFound,
    PreconditionFailed,
    api_status,
    boundary,
    translate,
)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[4]
HEAVY = (
    "google.cloud.aiplatform",
    "google.cloud.run_v2",
    "google.cloud.devtools.cloudbuild_v1",
    "google.cloud.monitoring_v3",
    "google.cloud.storage",
)


def rest_error(code: int, status: str | None, message: str = "boom") -> google_exceptions.GoogleAPICallError:
    """The exception a REST client raises for an answer with ``code`` and this canonical ``status`` body."""
    response = requests.Response()
    response.status_code = code
    error: dict[str, Any] = {"code": code, "message": message}
    if status:
        error["status"] = status
    response._content = json.dumps({"error": error}).encode()
    response.request = requests.Request("POST", "http://127.0.0.1/v1/x").prepare()
    return google_exceptions.from_http_response(response)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (rest_error(409, "ABORTED"), Conflict),
        (rest_error(409, "ALREADY_EXISTS"), AlreadyExists),
        (rest_error(409, None), Conflict),  # a bare 409: the retryable reading (read again, decide again)
        (rest_error(400, "FAILED_PRECONDITION"), PreconditionFailed),
        (rest_error(400, "INVALID_ARGUMENT"), InvalidInput),
        (rest_error(412, None), PreconditionFailed),  # Cloud Storage's generation preconditions
        (rest_error(404, "NOT_FOUND"), NotFound),
        (rest_error(403, "PERMISSION_DENIED"), AccessDenied),
        (rest_error(429, "RESOURCE_EXHAUSTED"), TransientError),
        (rest_error(503, "UNAVAILABLE"), TransientError),
        (rest_error(504, "DEADLINE_EXCEEDED"), DeadlineExceeded),
        (rest_error(501, "UNIMPLEMENTED"), PermanentError),
        (google_exceptions.Aborted("stale etag"), Conflict),  # gRPC: the exact class arrives
        (google_exceptions.AlreadyExists("taken"), AlreadyExists),
        (google_exceptions.RetryError("gave up", cause=None), DeadlineExceeded),
        (requests.exceptions.ReadTimeout("slow"), DeadlineExceeded),
        (requests.exceptions.ConnectionError("reset"), TransientError),
        (TimeoutError(), DeadlineExceeded),
    ],
)
def test_google_errors_map_onto_the_one_error_model(error: Exception, expected: type[Exception]) -> None:
    mapped = translate(error, "doing a thing")

    assert type(mapped) is expected
    assert "doing a thing" in str(mapped)


def test_permanent_and_transient_subclasses_carry_the_retry_decision() -> None:
    assert isinstance(translate(rest_error(409, "ALREADY_EXISTS"), "x"), PermanentError)
    assert isinstance(translate(rest_error(409, "ABORTED"), "x"), TransientError)
    assert isinstance(translate(rest_error(403, "PERMISSION_DENIED"), "x"), PermanentError)


def test_an_invalid_argument_keeps_the_api_message_as_its_problem() -> None:
    mapped = translate(rest_error(400, "INVALID_ARGUMENT", "spec.traffic: must sum to 100"), "updating")

    assert isinstance(mapped, InvalidInput)
    assert any("must sum to 100" in problem for problem in mapped.problems)


def test_a_bug_is_not_translated_and_the_boundary_keeps_the_cause() -> None:
    assert translate(ValueError("a bug"), "x") is None
    with pytest.raises(ValueError), boundary("x"):
        raise ValueError("a bug")

    original = rest_error(503, "UNAVAILABLE")
    with pytest.raises(TransientError) as raised, boundary("reading"):
        raise original
    assert raised.value.__cause__ is original


def test_the_status_comes_from_the_body_over_rest_and_the_class_over_grpc() -> None:
    assert api_status(rest_error(409, "ALREADY_EXISTS")) == "ALREADY_EXISTS"
    assert api_status(google_exceptions.Aborted("x")) == "ABORTED"
    assert api_status(rest_error(418, None)) == "UNKNOWN"


def test_a_budget_is_shared_by_the_calls_of_one_method() -> None:
    now = [100.0]
    budget = Budget(2.0, clock=lambda: now[0])

    assert budget.left("first") == 2.0
    now[0] += 1.5
    assert budget.left("second") == pytest.approx(0.5)
    now[0] += 0.5
    with pytest.raises(DeadlineExceeded):
        budget.left("third")
    assert Budget(None, clock=lambda: 0.0).left("default") == 30.0


def test_label_rules() -> None:
    assert label_problems({"run-id": "demo-1", "cause": "push"}, "labels") == []
    assert len(label_problems({"Run": "x", "ok": "Has Space"}, "labels")) == 2
    assert label_value("Nightly Retrain/2026.11.01") == "nightly-retrain-2026-11-01"


class Placement:
    project = "p"
    region = "europe-west1"


def test_production_ports_are_the_real_adapters_without_clients_yet() -> None:
    ports = production_ports(Placement())

    assert isinstance(ports, Ports)
    assert type(ports.builds).__name__ == "CloudBuildBuilds"
    assert ports.training.parent == "projects/p/locations/europe-west1"  # type: ignore[attr-defined]
    assert ports.deployments._services is None  # type: ignore[attr-defined]


def test_fake_ports_are_fresh_fakes_each_time() -> None:
    first, second = fake_ports(), fake_ports()

    assert isinstance(first, FakePorts) and isinstance(first, Ports)
    assert first.objects is not second.objects
    first.objects.add_bucket("b")
    assert first.objects.write("b", "x", "1").size == 1


def test_importing_the_ports_loads_no_google_client_library() -> None:
    code = "import shared.ports, shared.rollout.analysis; from shared.ports import production_ports"
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line}

    assert "shared.ports" in imported
    assert sorted(name for name in imported if name.startswith(HEAVY)) == []
