"""Contract tests of the Cloud Run Admin API v2 emulator through the unmodified ``run_v2`` clients.

The clients are the ones ``shared.clients`` builds from ``RUN_EMULATOR_HOST`` (REST, anonymous credentials).
Images are recorded straight into the local registry here (a tiny HTTP server); the build-through-Cloud-Build
path is exercised by ``test_canary_traffic.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from google.api_core import exceptions
from google.api_core.future.polling import DEFAULT_POLLING
from google.cloud import run_v2

from emulators.common.proc import free_port, group_alive, pid_alive, port_open
from emulators.common.registry import LocalRegistry
from emulators.run.launch import RunEmulator, start_run_emulator
from shared import clients

pytestmark = pytest.mark.integration

PROJECT = "run-project"
LOCATION = "us-central1"
PARENT = f"projects/{PROJECT}/locations/{LOCATION}"
IMAGE = "us-docker.pkg.dev/run-project/apps/echo:1"
GRPC_PORT = free_port()
POLLING = DEFAULT_POLLING.with_delay(initial=0.1, maximum=0.5, multiplier=1.5)
REVISION = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION
LATEST = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST
State = run_v2.Condition.State

ECHO_SERVER = """
import json, os, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

if os.environ.get("CRASH"):
    print("crashing on purpose", flush=True)
    sys.exit(3)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        env = {k: v for k, v in os.environ.items() if k.startswith(("K_", "GREETING")) or k == "PORT"}
        body = json.dumps({"revision": os.environ["K_REVISION"], "env": env, "argv": sys.argv[1:]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


def record_echo_image(registry_dir: Path, work: Path) -> None:
    context = work / "echo"
    context.mkdir(parents=True, exist_ok=True)
    (context / "serve.py").write_text(ECHO_SERVER)
    (context / "Dockerfile").write_text(
        'FROM python:3.11-slim\nWORKDIR /app\nCOPY serve.py .\nENTRYPOINT ["python", "serve.py"]\n'
    )
    LocalRegistry(registry_dir).build(context, [IMAGE])


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunEmulator]:
    root = tmp_path_factory.mktemp("run")
    record_echo_image(root / "registry", root)
    started = start_run_emulator(
        root, PROJECT, ["--metrics-delay", "0", "--startup-timeout", "20", "--grpc-port", str(GRPC_PORT)]
    )
    saved = {key: os.environ.get(key) for key in started.env()}
    os.environ.update(started.env())
    clients.reset()
    try:
        yield started
    finally:
        clients.reset()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        started.stop()


@pytest.fixture(scope="module")
def services(emulator: RunEmulator) -> run_v2.ServicesClient:
    client: run_v2.ServicesClient = clients.run_services()
    return client


@pytest.fixture(scope="module")
def revisions(emulator: RunEmulator) -> run_v2.RevisionsClient:
    client: run_v2.RevisionsClient = clients.run_revisions()
    return client


@pytest.fixture(autouse=True)
def _clear_faults(emulator: RunEmulator) -> Iterator[None]:
    yield
    requests.delete(f"http://{emulator.host}/_emulator/faults", timeout=5)
    requests.delete(f"http://{emulator.host}/_emulator/router/faults", timeout=5)


def template(
    *env: tuple[str, str], revision: str = "", args: list[str] | None = None
) -> run_v2.RevisionTemplate:
    container = run_v2.Container(
        image=IMAGE, env=[run_v2.EnvVar(name=name, value=value) for name, value in env], args=args or []
    )
    return run_v2.RevisionTemplate(revision=revision, containers=[container])


def create(services: run_v2.ServicesClient, service_id: str, **fields: Any) -> run_v2.Service:
    operation = services.create_service(
        parent=PARENT, service_id=service_id, service=run_v2.Service(template=template(), **fields)
    )
    result: run_v2.Service = operation.result(timeout=30, polling=POLLING)
    return result


def update(services: run_v2.ServicesClient, service: run_v2.Service) -> run_v2.Service:
    result: run_v2.Service = services.update_service(service=service).result(timeout=30, polling=POLLING)
    return result


def short(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def status_of(error: exceptions.GoogleAPICallError) -> str:
    """The canonical status in the REST error body (REST maps e.g. ABORTED and ALREADY_EXISTS both to 409)."""
    return str(error.response.json()["error"]["status"])  # type: ignore[union-attr]


def pinned(*split: tuple[str, int, str]) -> list[run_v2.TrafficTarget]:
    return [
        run_v2.TrafficTarget(type_=REVISION, revision=name, percent=pct, tag=tag) for name, pct, tag in split
    ]


def served_by(url: str, count: int) -> dict[str, int]:
    seen: dict[str, int] = {}
    with requests.Session() as session:
        for _ in range(count):
            revision = session.get(url, timeout=10).json()["revision"]
            seen[revision] = seen.get(revision, 0) + 1
    return seen


def test_create_service_serves_and_reports_true_outputs(
    services: run_v2.ServicesClient, revisions: run_v2.RevisionsClient
) -> None:
    operation = services.create_service(
        parent=PARENT,
        service_id="hello",
        service=run_v2.Service(template=template(("GREETING", "hi"), args=["--flag"]), labels={"team": "ml"}),
    )
    assert isinstance(operation.metadata, run_v2.Service) or operation.metadata is None
    service = operation.result(timeout=30, polling=POLLING)
    name = f"{PARENT}/services/hello"
    assert service.name == name and service.generation == 1 and service.observed_generation == 1
    assert not service.reconciling and service.etag and service.uid
    assert (
        service.terminal_condition.type_ == "Ready"
        and service.terminal_condition.state == State.CONDITION_SUCCEEDED
    )
    assert {c.type_: c.state for c in service.conditions} == {
        "ConfigurationsReady": State.CONDITION_SUCCEEDED,
        "RoutesReady": State.CONDITION_SUCCEEDED,
    }
    assert service.latest_created_revision == service.latest_ready_revision
    assert service.latest_ready_revision.startswith(f"{name}/revisions/hello-00001-")
    rev = short(service.latest_ready_revision)
    assert [(t.type_, t.revision, t.percent) for t in service.traffic_statuses] == [(LATEST, rev, 100)]
    assert service.uri.startswith("http://127.0.0.1:") and list(service.urls) == [service.uri]

    answer = requests.get(service.uri, timeout=10).json()
    assert answer["revision"] == rev and answer["argv"] == ["--flag"]
    assert answer["env"]["GREETING"] == "hi" and answer["env"]["K_SERVICE"] == "hello"
    assert answer["env"]["K_CONFIGURATION"] == "hello" and answer["env"]["PORT"].isdigit()

    assert services.get_service(name=name) == service
    assert name in [s.name for s in services.list_services(parent=PARENT)]
    assert name in [s.name for s in services.list_services(parent=f"projects/{PROJECT}/locations/-")]
    revision = revisions.get_revision(name=service.latest_ready_revision)
    assert revision.service == "hello" and revision.containers[0].image == IMAGE
    assert {c.type_: c.state for c in revision.conditions}["Ready"] == State.CONDITION_SUCCEEDED
    assert (
        revision.observed_generation == 1
        and not revision.reconciling
        and revision.log_uri.startswith("file://")
    )
    assert [r.name for r in revisions.list_revisions(parent=name)] == [revision.name]

    with pytest.raises(exceptions.Conflict) as caught:
        create(services, "hello")
    assert status_of(caught.value) == "ALREADY_EXISTS"
    with pytest.raises(exceptions.NotFound):
        services.get_service(name=f"{PARENT}/services/nope")


def test_pinned_split_survives_template_change_then_traffic_moves(
    services: run_v2.ServicesClient, revisions: run_v2.RevisionsClient, emulator: RunEmulator
) -> None:
    service = create(services, "split")
    a = short(service.latest_ready_revision)
    service.traffic = pinned((a, 100, ""))
    service.template = template(("GREETING", "v2"))
    updated = update(services, service)
    b = short(updated.latest_created_revision)
    assert b != a and b.startswith("split-00002-") and updated.latest_ready_revision.endswith(b)
    assert updated.generation == 2 == updated.observed_generation and updated.etag != service.etag
    assert [(t.revision, t.percent) for t in updated.traffic_statuses] == [(a, 100)]
    assert served_by(updated.uri, 10) == {a: 10}  # B is ready but gets 0%

    updated.traffic = pinned((a, 90, ""), (b, 10, "candidate"))
    split = update(services, updated)
    assert [(t.revision, t.percent, t.tag) for t in split.traffic_statuses] == [
        (a, 90, ""),
        (b, 10, "candidate"),
    ]
    tag_uri = split.traffic_statuses[1].uri
    assert tag_uri.startswith("http://127.0.0.1:") and tag_uri != split.uri
    assert served_by(split.uri, 100) == {a: 90, b: 10}
    assert served_by(tag_uri, 10) == {b: 10}

    with pytest.raises(exceptions.BadRequest) as caught:
        revisions.delete_revision(name=split.latest_created_revision)
    assert status_of(caught.value) == "FAILED_PRECONDITION" and "serving" in caught.value.message

    # Roll back: all traffic to A, the tag goes away (its URL stops answering), then B can be deleted.
    split.traffic = pinned((a, 100, ""))
    back = update(services, split)
    assert [(t.revision, t.percent, t.tag) for t in back.traffic_statuses] == [(a, 100, "")]
    port = int(tag_uri.rsplit(":", 1)[1])
    assert not port_open("127.0.0.1", port)
    deleted = revisions.delete_revision(name=back.latest_created_revision).result(timeout=10, polling=POLLING)
    assert deleted.name == back.latest_created_revision
    assert [short(r.name) for r in revisions.list_revisions(parent=back.name)] == [a]
    with pytest.raises(exceptions.NotFound):
        revisions.get_revision(name=back.latest_created_revision)


def test_template_revision_names_and_validation(services: run_v2.ServicesClient) -> None:
    service = create(services, "named")
    a = short(service.latest_ready_revision)
    service.template = template(("GREETING", "x"), revision="named-blue")
    blue = update(services, service)
    assert short(blue.latest_ready_revision) == "named-blue"

    blue.template = template(("GREETING", "changed"), revision="named-blue")
    with pytest.raises(exceptions.Conflict) as caught:
        update(services, blue)
    assert status_of(caught.value) == "ALREADY_EXISTS"

    cases: list[tuple[run_v2.RevisionTemplate | None, list[run_v2.TrafficTarget], str]] = [
        (None, pinned((a, 50, ""), ("named-blue", 40, "")), "sum to 90"),
        (None, pinned((a, 50, "x"), ("named-blue", 50, "x")), "tag 'x' is used more than once"),
        (None, pinned(("named-nope", 100, "")), "'named-nope' does not exist"),
        (None, pinned(("hello-elsewhere", 100, "")), "does not exist"),
        (template(revision="other-name"), [], "must start with the service name"),
    ]
    for new_template, traffic, expected in cases:
        candidate = services.get_service(name=blue.name)
        if new_template is not None:
            candidate.template = new_template
        candidate.traffic = traffic
        with pytest.raises(exceptions.BadRequest) as caught:
            update(services, candidate)
        assert status_of(caught.value) == "INVALID_ARGUMENT" and expected in caught.value.message, (
            caught.value
        )


def test_traffic_naming_another_services_revision_is_rejected(services: run_v2.ServicesClient) -> None:
    first = create(services, "owner-a")
    second = create(services, "owner-b")
    second.traffic = pinned((short(first.latest_ready_revision), 100, ""))
    with pytest.raises(exceptions.BadRequest) as caught:
        update(services, second)
    assert "belongs to service 'owner-a'" in caught.value.message


def test_grpc_transport_reports_the_exact_status_classes(emulator: RunEmulator) -> None:
    """Over gRPC (the production default) the three refusals arrive as their own exception classes."""
    import grpc
    from google.cloud.run_v2.services.revisions.transports import RevisionsGrpcTransport
    from google.cloud.run_v2.services.services.transports import ServicesGrpcTransport

    channel = grpc.insecure_channel(f"127.0.0.1:{GRPC_PORT}")
    services = run_v2.ServicesClient(transport=ServicesGrpcTransport(channel=channel))
    revisions = run_v2.RevisionsClient(transport=RevisionsGrpcTransport(channel=channel))
    service = services.create_service(
        parent=PARENT, service_id="grpc-codes", service=run_v2.Service(template=template())
    ).result(timeout=30, polling=POLLING)
    serving = short(service.latest_ready_revision)

    service.traffic = pinned((serving, 90, ""))
    with pytest.raises(exceptions.InvalidArgument, match="90"):
        services.update_service(service=service)

    with pytest.raises(exceptions.FailedPrecondition):
        revisions.delete_revision(name=service.latest_ready_revision)

    fresh = services.get_service(name=service.name)
    fresh.labels["step"] = "one"
    services.update_service(service=fresh).result(timeout=30, polling=POLLING)
    service.traffic = pinned((serving, 100, ""))
    service.labels["step"] = "two"  # still carries the first etag
    with pytest.raises(exceptions.Aborted):
        services.update_service(service=service)
    channel.close()


def test_stale_etag_is_aborted(services: run_v2.ServicesClient) -> None:
    service = create(services, "etag")
    fresh = services.get_service(name=service.name)
    fresh.labels["step"] = "one"
    assert update(services, fresh).generation == 2
    service.labels["step"] = "two"  # still carries the generation-1 etag
    with pytest.raises(exceptions.Conflict) as caught:
        update(services, service)
    assert status_of(caught.value) == "ABORTED"
    with pytest.raises(exceptions.Conflict):
        services.delete_service(request={"name": service.name, "etag": service.etag})


def test_revision_that_exits_at_start_fails_and_never_gets_a_request(
    services: run_v2.ServicesClient, revisions: run_v2.RevisionsClient, emulator: RunEmulator
) -> None:
    service = create(services, "crashy")
    good = short(service.latest_ready_revision)
    service.template = template(("CRASH", "1"))
    with pytest.raises(exceptions.GoogleAPICallError) as caught:
        update(services, service)
    assert "not ready and cannot serve traffic" in caught.value.message
    after = services.get_service(name=service.name)
    bad = short(after.latest_created_revision)
    assert bad != good and short(after.latest_ready_revision) == good
    assert after.terminal_condition.state == State.CONDITION_FAILED and after.observed_generation == 2
    failed = revisions.get_revision(name=after.latest_created_revision)
    ready = {c.type_: c for c in failed.conditions}["Ready"]
    assert ready.state == State.CONDITION_FAILED and "exited with status 3" in ready.message
    assert served_by(after.uri, 20) == {good: 20}
    totals = requests.get(f"http://{emulator.monitoring_rest}/_emulator/metrics", timeout=5).json()
    assert bad not in totals["requestsPerRevision"]

    # A service whose only revision crashes: the URL answers 503 and no revision is charged.
    operation = services.create_service(
        parent=PARENT, service_id="crashy-new", service=run_v2.Service(template=template(("CRASH", "1")))
    )
    with pytest.raises(exceptions.GoogleAPICallError):
        operation.result(timeout=30, polling=POLLING)
    lonely = services.get_service(name=f"{PARENT}/services/crashy-new")
    assert lonely.latest_ready_revision == "" and len(lonely.traffic_statuses) == 0
    assert requests.get(lonely.uri, timeout=5).status_code == 503


def test_fault_injection_rpc_and_readiness(services: run_v2.ServicesClient, emulator: RunEmulator) -> None:
    admin = f"http://{emulator.host}/_emulator"
    service = create(services, "faulty")
    requests.post(f"{admin}/faults", json={"method": "GetService", "code": "INTERNAL", "count": 2}, timeout=5)
    for _ in range(2):
        with pytest.raises(exceptions.InternalServerError):
            services.get_service(name=service.name, retry=None)
    assert services.get_service(name=service.name).name == service.name

    requests.post(f"{admin}/revisions:fail-next", json={"count": 1, "service": service.name}, timeout=5)
    service.template = template(("GREETING", "never"))
    with pytest.raises(exceptions.GoogleAPICallError) as caught:
        update(services, service)
    assert "injected fault" in caught.value.message
    listed = requests.get(f"{admin}/revisions", timeout=5).json()
    states = {short(item["name"]): item["state"] for item in listed if "/services/faulty/" in item["name"]}
    assert sorted(states.values()) == ["CONDITION_FAILED", "CONDITION_SUCCEEDED"]

    # A router fault: half of the revision's requests answered 503 by the router, deterministically.
    fault = {"revision": services.get_service(name=service.name).latest_ready_revision, "errorRate": 0.5}
    assert (
        requests.post(f"{admin}/router/faults", json={**fault, "status": 503}, timeout=5).status_code == 200
    )
    with requests.Session() as session:
        codes = [session.get(service.uri, timeout=10).status_code for _ in range(20)]
    assert codes.count(503) == 10 and codes.count(200) == 10


def test_delete_service_stops_its_revisions(services: run_v2.ServicesClient, emulator: RunEmulator) -> None:
    service = create(services, "doomed")
    listed = requests.get(f"http://{emulator.host}/_emulator/revisions", timeout=5).json()
    pid = next(item["pid"] for item in listed if "/services/doomed/" in item["name"])
    deleted = services.delete_service(name=service.name).result(timeout=10, polling=POLLING)
    assert deleted.name == service.name
    with pytest.raises(exceptions.NotFound):
        services.get_service(name=service.name)
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pid_alive(pid)
    assert not port_open("127.0.0.1", int(service.uri.rsplit(":", 1)[1]))


def test_unsupported_features_fail_clearly(services: run_v2.ServicesClient) -> None:
    sidecars = run_v2.RevisionTemplate(
        containers=[run_v2.Container(image=IMAGE), run_v2.Container(image=IMAGE)]
    )
    with pytest.raises(exceptions.MethodNotImplemented) as caught:
        services.create_service(
            parent=PARENT, service_id="sidecars", service=run_v2.Service(template=sidecars)
        )
    assert "sidecars" in caught.value.message
    with pytest.raises(exceptions.MethodNotImplemented):
        services.get_iam_policy(request={"resource": f"{PARENT}/services/hello"})
    missing = run_v2.RevisionTemplate(containers=[run_v2.Container(image="us-docker.pkg.dev/x/y/missing:1")])
    operation = services.create_service(
        parent=PARENT, service_id="noimage", service=run_v2.Service(template=missing)
    )
    with pytest.raises(exceptions.GoogleAPICallError) as failed:
        operation.result(timeout=30, polling=POLLING)
    assert "not found" in failed.value.message


def test_sigterm_stops_revisions_and_router(tmp_path: Path) -> None:
    """A second emulator: SIGTERM must leave no revision process and no listener behind."""
    record_echo_image(tmp_path / "registry", tmp_path)
    emulator = start_run_emulator(tmp_path, PROJECT)
    try:
        base = f"http://{emulator.host}/v2/{PARENT}/services"
        body = {"template": {"containers": [{"image": IMAGE}]}}
        requests.post(f"{base}?serviceId=bye", data=json.dumps(body), timeout=10).raise_for_status()
        deadline = time.monotonic() + 20
        listed: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            listed = requests.get(f"http://{emulator.host}/_emulator/revisions", timeout=5).json()
            if listed and listed[0]["running"] and listed[0]["ready"]:
                break
            time.sleep(0.1)
        assert listed and listed[0]["ready"], f"the revision never became ready: {listed}"
        pid, port = listed[0]["pid"], listed[0]["port"]
        uri = requests.get(f"{base}/bye", timeout=5).json()["uri"]
        assert requests.get(uri, timeout=5).status_code == 200
        os.killpg(emulator.started.pid, signal.SIGTERM)
        # Generous: on a loaded 2-core machine stopping the revision and the listeners can take seconds.
        deadline = time.monotonic() + 20
        while group_alive(emulator.started.pid) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(emulator.started.pid, os.WNOHANG)
            time.sleep(0.05)
        log_tail = Path(emulator.started.log_path).read_text(errors="replace")[-2000:]
        assert not group_alive(emulator.started.pid), f"the emulator did not exit on SIGTERM:\n{log_tail}"
        assert not pid_alive(pid) and not group_alive(pid), "a revision process outlived the emulator"
        assert not port_open("127.0.0.1", port)
        assert not port_open("127.0.0.1", int(uri.rsplit(":", 1)[1]))
    finally:
        emulator.stop()
