"""The behaviour every :class:`shared.ports.training.TrainingJobs` implementation must show.

A concrete module subclasses :class:`TrainingJobsContract` and provides ``training``, ``image`` (a trainer
image that exits with the code given by ``--exit N``, 0 by default) and :meth:`inject_unavailable`.
"""

from __future__ import annotations

import time
import uuid

import pytest

from shared.errors import InvalidInput, PermanentError, TransientError
from shared.ports.errors import NotFound
from shared.ports.training import JobState, MachineSpec, TrainingJob, TrainingJobs, TrainingJobSpec
from tests.contract.eventually import until

#: A trainer for the contract: exits with the code after ``--exit`` (the real adapter runs it).
TRAINER_SCRIPT = """
import sys
code = int(sys.argv[sys.argv.index("--exit") + 1]) if "--exit" in sys.argv else 0
print("contract trainer exiting with", code, flush=True)
sys.exit(code)
"""


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class TrainingJobsContract:
    FINISH_SECONDS = 90.0

    @pytest.fixture
    def training(self) -> TrainingJobs:
        raise NotImplementedError("a concrete contract test overrides the `training` fixture")

    @pytest.fixture
    def image(self) -> str:
        raise NotImplementedError("a concrete contract test overrides the `image` fixture")

    def inject_unavailable(self, training: TrainingJobs, method: str) -> None:
        raise NotImplementedError

    def spec(self, image: str, run: str, *args: str) -> TrainingJobSpec:
        return TrainingJobSpec(
            display_name=f"train-{run}",
            image_uri=image,
            args=args,
            labels={"run-id": run, "cause": "contract"},
            machine=MachineSpec("n1-standard-4"),
            base_output_dir=f"gs://contract-models/{run}",
            env={"CONTRACT": "1"},
        )

    def finished(self, training: TrainingJobs, name: str) -> TrainingJob:
        return until(lambda: training.get(name), lambda job: job.state.terminal, self.FINISH_SECONDS, 0.2)

    def test_a_submitted_job_starts_queued_and_ends_succeeded(
        self, training: TrainingJobs, image: str
    ) -> None:
        run = unique("ok")

        job = training.submit(self.spec(image, run, "--data", "gs://d/x.csv"))

        assert job.state is JobState.QUEUED and not job.state.terminal
        assert "/customJobs/" in job.name and job.id == job.name.rsplit("/", 1)[-1]
        assert job.display_name == f"train-{run}"
        assert job.labels == {"run-id": run, "cause": "contract"}
        ended = self.finished(training, job.name)
        assert ended.state is JobState.SUCCEEDED and ended.state.succeeded
        assert ended.error_message == ""
        assert ended.image_uri == image
        assert ended.args == ("--data", "gs://d/x.csv")
        assert ended.base_output_dir == f"gs://contract-models/{run}"
        assert ended.end_time is not None and ended.create_time is not None

    def test_a_failing_job_ends_failed_with_its_error(self, training: TrainingJobs, image: str) -> None:
        job = training.submit(self.spec(image, unique("bad"), "--exit", "3"))

        ended = self.finished(training, job.name)

        assert ended.state is JobState.FAILED
        assert ended.state.terminal and not ended.state.succeeded
        assert "3" in ended.error_message

    def test_find_by_label_returns_only_matching_jobs_newest_first(
        self, training: TrainingJobs, image: str
    ) -> None:
        run, other = unique("same"), unique("other")
        first = training.submit(self.spec(image, run))
        time.sleep(0.05)
        second = training.submit(self.spec(image, run))
        training.submit(self.spec(image, other))

        assert [job.name for job in training.find_by_label("run-id", run)] == [second.name, first.name]
        assert training.find_by_label("run-id", unique("none")) == []

    def test_an_unknown_job_is_not_found(self, training: TrainingJobs, image: str) -> None:
        known = training.submit(self.spec(image, unique("known")))
        missing = known.name.rsplit("/", 1)[0] + "/1234567890123456789"

        with pytest.raises(NotFound) as raised:
            training.get(missing)
        assert isinstance(raised.value, PermanentError)

    def test_a_spec_vertex_would_refuse_names_every_problem(self, training: TrainingJobs) -> None:
        spec = TrainingJobSpec(display_name="", image_uri="", labels={"Run-ID": "x"})

        with pytest.raises(InvalidInput) as raised:
            training.submit(spec)

        assert len(raised.value.problems) == 3  # display name, image, label key

    def test_unavailable_is_transient_and_the_next_call_works(
        self, training: TrainingJobs, image: str
    ) -> None:
        run = unique("retry")
        self.inject_unavailable(training, "submit")

        with pytest.raises(TransientError):
            training.submit(self.spec(image, run))
        job = training.submit(self.spec(image, run))

        assert [found.name for found in training.find_by_label("run-id", run)] == [job.name]
