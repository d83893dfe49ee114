"""Clients: created lazily, once per process, pointed at emulators only by the *_EMULATOR_HOST variables."""

from __future__ import annotations

import sys

import pytest

from shared import clients

pytestmark = pytest.mark.unit


def test_importing_the_module_creates_no_client() -> None:
    import subprocess

    code = "import shared.clients as c, sys; print(len(c._cache), 'google.cloud.pubsub_v1' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.split() == ["0", "False"]


def test_emulator_options_from_host_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDBUILD_EMULATOR_HOST", "127.0.0.1:8123")
    options = clients.emulator_options("CLOUDBUILD_EMULATOR_HOST")
    assert options is not None
    assert options["client_options"] == {"api_endpoint": "http://127.0.0.1:8123"}
    assert options["transport"] == "rest"
    monkeypatch.delenv("CLOUDBUILD_EMULATOR_HOST")
    assert clients.emulator_options("CLOUDBUILD_EMULATOR_HOST") is None


@pytest.mark.parametrize(
    ("factory", "variable"),
    [
        (clients.cloud_build, "CLOUDBUILD_EMULATOR_HOST"),
        (clients.vertex_jobs, "VERTEX_EMULATOR_HOST"),
        (clients.vertex_models, "VERTEX_EMULATOR_HOST"),
        (clients.run_services, "RUN_EMULATOR_HOST"),
    ],
)
def test_api_clients_reach_the_emulator_over_rest(factory, variable, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(variable, "127.0.0.1:9999")
    client = factory()
    assert client.api_endpoint == "http://127.0.0.1:9999"
    assert type(client.transport).__name__.endswith("RestTransport")
    assert factory() is client  # one client per process


def test_monitoring_reaches_the_emulator_over_grpc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITORING_EMULATOR_HOST", "127.0.0.1:9998")
    client = clients.monitoring()
    assert type(client.transport).__name__ == "MetricServiceGrpcTransport"
    assert clients.monitoring() is client


def test_project_id_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "p-42")
    assert clients.project_id() == "p-42"
