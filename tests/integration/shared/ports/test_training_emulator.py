"""The ``TrainingJobs`` contract against the Vertex AI emulator, through the real ``aiplatform_v1`` client.

The trainer image is recorded straight into the stack's local registry (the emulator runs its command as a
local process); one emulator per module with short job lifecycles.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.api_core import exceptions as google_exceptions

from emulators.apiserver.admin import EmulatorAdmin
from emulators.common.registry import LocalRegistry
from shared import clients
from shared.errors import DeadlineExceeded, TransientError
from shared.ports.training import TrainingJobs, VertexTrainingJobs
from tests.contract.training import TRAINER_SCRIPT, TrainingJobsContract, unique
from tests.integration.api_emulators import PROJECT, ApiStack, running

pytestmark = pytest.mark.integration

LOCATION = "us-central1"
IMAGE = f"{LOCATION}-docker.pkg.dev/{PROJECT}/ports/trainer:contract"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiStack]:
    root: Path = tmp_path_factory.mktemp("training-port")
    context = root / "trainer"
    context.mkdir()
    (context / "train.py").write_text(TRAINER_SCRIPT)
    (context / "Dockerfile").write_text(
        'FROM python:3.11-slim\nCOPY train.py .\nENTRYPOINT ["python", "train.py"]\n'
    )
    LocalRegistry(root / "registry").build(context, [IMAGE])
    with running(root, storage=True, vertex=True) as api:
        clients.reset()
        yield api


@pytest.fixture
def admin(stack: ApiStack) -> Iterator[EmulatorAdmin]:
    admin = EmulatorAdmin(stack.hosts["vertex"])
    yield admin
    admin.clear_faults()


class TestVertexTrainingJobs(TrainingJobsContract):
    @pytest.fixture
    def training(self, stack: ApiStack, admin: EmulatorAdmin) -> TrainingJobs:
        return VertexTrainingJobs(PROJECT, LOCATION)

    @pytest.fixture
    def image(self) -> str:
        return IMAGE

    def inject_unavailable(self, training: TrainingJobs, method: str) -> None:
        rpc = {"submit": "CreateCustomJob", "get": "GetCustomJob"}[method]
        EmulatorAdmin(os.environ["VERTEX_EMULATOR_HOST"]).fail_next(rpc, "UNAVAILABLE")


def test_reads_are_retried_within_the_budget_and_the_google_error_is_the_cause(
    stack: ApiStack, admin: EmulatorAdmin
) -> None:
    training = VertexTrainingJobs(PROJECT, LOCATION)
    job = training.submit(TrainingJobsContract().spec(IMAGE, unique("cause")))

    # The port retries reads within its budget: two injected faults, then the answer.
    admin.fail_next("GetCustomJob", "UNAVAILABLE", count=2)
    assert training.get(job.name, timeout=10).name == job.name

    admin.fail_next("CreateCustomJob", "RESOURCE_EXHAUSTED")
    with pytest.raises(TransientError) as raised:
        training.submit(TrainingJobsContract().spec(IMAGE, unique("cause")))
    assert isinstance(raised.value.__cause__, google_exceptions.TooManyRequests)


def test_a_slow_answer_ends_at_the_timeout_as_a_deadline(stack: ApiStack, admin: EmulatorAdmin) -> None:
    admin.add_latency("ListCustomJobs", 3.0)

    with pytest.raises(DeadlineExceeded):
        VertexTrainingJobs(PROJECT, LOCATION).find_by_label("run-id", "slow", timeout=0.5)
