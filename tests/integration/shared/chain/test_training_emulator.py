"""The training stage against the Vertex AI and storage emulators, through the real clients: the sample
trainer trains on two data files as one CustomJob (however often it is requested), the reconciler's
``poll_run`` reports its end once, and ``on_training_state`` registers one candidate version whose metrics
come from the trainer's own ``metrics.json``."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulators.common.registry import LocalRegistry
from shared import clients
from shared import deadline as deadlines
from shared.chain import evaluation, training
from shared.chain.contracts import Cause, TrainingRequested, parse_training_state
from shared.deadline import Deadline
from shared.events import Envelope
from shared.ledger import InMemoryLedger, RunStatus
from shared.notify import RecordingTransport
from shared.ports import Ports, fake_ports
from shared.ports.objects import StorageObjects
from shared.ports.registry import VertexModelRegistry
from shared.ports.training import VertexTrainingJobs
from shared.publisher import InMemoryPublisher
from shared.runtime import Runtime, use
from tests.functional.chain.training_support import chain_config
from tests.integration.api_emulators import PROJECT, ROOT, ApiStack, running

pytestmark = pytest.mark.integration

LOCATION = "us-central1"
IMAGE = f"{LOCATION}-docker.pkg.dev/{PROJECT}/mlops/trainer:stage"
ARTIFACTS = "demo-artifacts"  # the buckets chain_config names
DATA = "demo-data"
RUN = "data-churn-emulated"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiStack]:
    root: Path = tmp_path_factory.mktemp("training-chain")
    LocalRegistry(root / "registry").build(ROOT / "examples" / "trainer", [IMAGE])
    with running(root, storage=True, vertex=True) as api:
        clients.reset()  # the clients read the emulator variables, set now
        yield api
    clients.reset()


def make_csv(rows: int, seed: int) -> str:
    spec = importlib.util.spec_from_file_location("make_data", ROOT / "examples" / "trainer" / "make_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text: str = module.make_csv(rows=rows, seed=seed)
    return text


def test_two_files_train_one_job_and_register_one_candidate(stack: ApiStack) -> None:
    storage = clients.storage()
    for bucket in (ARTIFACTS, DATA):
        storage.create_bucket(bucket)
    objects = StorageObjects()
    uris = []
    for index, seed in enumerate((1, 2)):
        objects.write(DATA, f"churn/part-{index}.csv", make_csv(150, seed), content_type="text/csv")
        uris.append(f"gs://{DATA}/churn/part-{index}.csv")
    fakes = fake_ports(project=PROJECT)
    ports = Ports(
        fakes.builds,
        VertexTrainingJobs(PROJECT, LOCATION),
        VertexModelRegistry(PROJECT, LOCATION),
        fakes.deployments,
        fakes.metrics,
        objects,
    )
    publisher = InMemoryPublisher()
    ledger = InMemoryLedger()
    runtime = Runtime(chain_config(), ledger, publisher, RecordingTransport(), ports)
    request = TrainingRequested("churn", Cause.DATA, image=IMAGE, data_uris=tuple(uris), dataset="churn")

    with use(runtime), deadlines.bounded(Deadline(120)):
        for _ in range(2):  # a redelivery finds the step done
            training.start(runtime, RUN, request)
        [job] = ports.training.find_by_label("run-id", RUN)
        assert job.args == ("--data", uris[0], "--data", uris[1])
        emitted: list[str] = []
        end = time.monotonic() + 90
        while not emitted and time.monotonic() < end:
            run = ledger.get_run(RUN)
            assert run is not None
            emitted = training.poll_run(runtime, run)
            time.sleep(0.2)
        assert emitted == [f"training.state SUCCEEDED for {job.name}"], ports.training.get(job.name)
        [message] = [m for m in publisher.messages if m.topic_id == "mlops-training-states"]
        body = message.json()
        body.pop("occurred_at")
        state = parse_training_state(Envelope(**body))
        assert state.output_dir == f"gs://{ARTIFACTS}/runs/{RUN}/model/"

        outcome = evaluation.on_training_state(runtime, RUN, state)

    assert outcome.endswith("approval requested"), outcome
    [version] = ports.registry.find_versions("churn", {"run-id": RUN})
    assert "candidate" in version.aliases and version.labels["cause"] == "data"
    assert version.artifact_uri == state.output_dir
    metrics = version.metadata["metrics"]
    assert metrics["accuracy"] > 0.8 and metrics["rows_train"] + metrics["rows_test"] == 300
    assert metrics["data_files"] == 2  # the trainer read both files
    run = ledger.get_run(RUN)
    assert run is not None and run.status is RunStatus.RUNNING
