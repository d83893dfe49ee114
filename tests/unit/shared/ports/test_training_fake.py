"""The ``TrainingJobs`` contract against the in-memory fake."""

from __future__ import annotations

import pytest

from shared.errors import TransientError
from shared.ports.training import JobState, TrainingJobs, TrainingJobSpec
from shared.ports.training_fake import FakeJobOutcome, FakeTrainingJobs
from tests.contract.training import TrainingJobsContract

pytestmark = pytest.mark.unit


def exit_code_outcome(spec: TrainingJobSpec) -> FakeJobOutcome:
    """What the contract's trainer does: exit with the code after ``--exit``."""
    args = list(spec.args)
    code = int(args[args.index("--exit") + 1]) if "--exit" in args else 0
    if code:
        return FakeJobOutcome(
            JobState.FAILED, f"The replica workerpool0-0 exited with a non-zero status of {code}."
        )
    return FakeJobOutcome()


class TestFakeTrainingJobs(TrainingJobsContract):
    @pytest.fixture
    def training(self) -> TrainingJobs:
        return FakeTrainingJobs(project="contract", outcome=exit_code_outcome)

    @pytest.fixture
    def image(self) -> str:
        return "us-central1-docker.pkg.dev/contract/ports/trainer:1"

    def inject_unavailable(self, training: TrainingJobs, method: str) -> None:
        assert isinstance(training, FakeTrainingJobs)
        training.faults.fail_next(method, TransientError("UNAVAILABLE (injected)"))


def test_finish_ends_a_job_with_the_given_outcome_and_records_the_spec() -> None:
    training = FakeTrainingJobs()
    spec = TrainingJobSpec(display_name="t", image_uri="i")
    job = training.submit(spec)

    ended = training.finish(job.name, FakeJobOutcome(JobState.CANCELLED, "CANCELED"))

    assert (ended.state, ended.error_message) == (JobState.CANCELLED, "CANCELED")
    assert training.get(job.name) == ended
    assert training.submitted == [spec]
