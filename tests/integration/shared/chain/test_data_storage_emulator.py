"""``on_data_object`` fed by the storage emulator itself: binary ``finalized`` CloudEvents posted to the
function (served in-process by functions-framework), objects read, copied and deleted through the real
``google-cloud-storage`` client; a 500 is retried by the emulator, as Eventarc would."""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import functions_framework
import pytest
from werkzeug.serving import BaseWSGIServer, make_server

from emulators.storage import StorageEmulatorAdmin
from shared import clients
from shared.chain.data import MEMBERS
from shared.ledger import InMemoryLedger
from shared.notify import RecordingTransport
from shared.ports import Ports, fake_ports
from shared.ports.objects import StorageObjects
from shared.publisher import InMemoryPublisher
from shared.runtime import Runtime, use
from tests.functional.chain.data_support import MAIN, chain_config, invalid_csv, valid_csv
from tests.integration.api_emulators import ApiStack, running

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiStack]:
    root: Path = tmp_path_factory.mktemp("data-chain")
    with running(root, storage=True) as api:
        clients.reset()
        yield api
    clients.reset()


@pytest.fixture(scope="module")
def function_url(stack: ApiStack) -> Iterator[str]:
    """``on_data_object`` behind a WSGI server on a free loopback port (as the stack's function host)."""
    app = functions_framework.create_app("on_data_object", MAIN, "http")
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/on_data_object"
    finally:
        server.shutdown()
        thread.join(5)


@dataclass
class Setup:
    bucket: str
    runtime: Runtime
    ledger: InMemoryLedger
    publisher: InMemoryPublisher
    admin: StorageEmulatorAdmin


@pytest.fixture
def setup(stack: ApiStack, function_url: str) -> Iterator[Setup]:
    bucket = f"data-{uuid.uuid4().hex[:10]}"
    clients.storage().create_bucket(bucket)
    admin = StorageEmulatorAdmin(os.environ["STORAGE_EMULATOR_HOST"])
    admin.set_routes({bucket: [function_url]})
    fakes = fake_ports()
    ports = Ports(
        fakes.builds, fakes.training, fakes.registry, fakes.deployments, fakes.metrics, StorageObjects()
    )
    ledger, publisher = InMemoryLedger(), InMemoryPublisher()
    runtime = Runtime(chain_config(bucket=bucket), ledger, publisher, RecordingTransport(), ports=ports)
    with use(runtime):
        try:
            yield Setup(bucket, runtime, ledger, publisher, admin)
        finally:
            admin.set_routes({})
            admin.clear_faults()


def upload(bucket: str, name: str, text: str) -> int:
    blob = clients.storage().bucket(bucket).blob(name)
    blob.upload_from_string(text, content_type="text/csv")
    return int(blob.generation or 0)


def settled(admin: StorageEmulatorAdmin, bucket: str, objects: set[str]) -> dict[str, dict[str, object]]:
    """Wait until the events of ``objects`` are delivered (or dead-lettered); the deliveries by object."""
    views = admin.wait_for_deliveries(
        lambda found: (
            objects <= {d["object"] for d in found if d["status"] in ("delivered", "dead_lettered")}
        ),
        timeout=30,
        bucket=bucket,
    )
    return {str(view["object"]): dict(view) for view in views}


def test_valid_and_invalid_files_from_the_emulator(setup: Setup) -> None:
    upload(setup.bucket, "churn/good.csv", valid_csv())
    upload(setup.bucket, "churn/bad.csv", invalid_csv())
    upload(setup.bucket, "elsewhere/x.csv", "not data")
    quarantined = {"quarantine/churn/bad.csv", "quarantine/churn/bad.csv.report.json"}
    wanted = {"churn/good.csv", "churn/bad.csv", "elsewhere/x.csv", *quarantined}
    deliveries = settled(setup.admin, setup.bucket, wanted)
    # Every event, our own quarantine writes included, is answered 2xx at the first attempt.
    assert {name: (d["status"], d["attempts"]) for name, d in deliveries.items()} == dict.fromkeys(
        wanted, ("delivered", 1)
    )
    [member] = setup.ledger.query_docs(MEMBERS, equals={"dataset": "churn"})
    assert member.data["uri"] == f"gs://{setup.bucket}/churn/good.csv"
    bucket = clients.storage().bucket(setup.bucket)
    assert bucket.get_blob("churn/bad.csv") is None
    copy = bucket.get_blob("quarantine/churn/bad.csv")
    assert copy is not None and copy.download_as_text() == invalid_csv()
    report_blob = bucket.get_blob("quarantine/churn/bad.csv.report.json")
    assert report_blob is not None and report_blob.metadata["source"] == f"gs://{setup.bucket}/churn/bad.csv"
    report = json.loads(report_blob.download_as_text())
    assert {failure["check"] for failure in report["failures"]} == {"allowed", "max", "rows.min"}
    kinds = [message.json()["data"]["kind"] for message in setup.publisher.messages]
    assert kinds == ["data.quarantined"]


def test_a_transient_storage_failure_is_retried_by_the_emulator(setup: Setup) -> None:
    setup.admin.add_latency("objects.get", 0.5)  # the function's download: time to queue the fault below
    upload(setup.bucket, "churn/bad.csv", invalid_csv())
    # The next insert is the report beside the quarantined copy: an unconditional write, so the client does
    # not retry it, the step is released and the function answers 500 (the copy is already made).
    setup.admin.fail_next("objects.insert", "UNAVAILABLE")
    deliveries = settled(setup.admin, setup.bucket, {"churn/bad.csv"})
    delivery = deliveries["churn/bad.csv"]
    assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == ("delivered", 2, 200)
    assert clients.storage().bucket(setup.bucket).get_blob("churn/bad.csv") is None
    assert len({message.json()["event_id"] for message in setup.publisher.messages}) == 1
