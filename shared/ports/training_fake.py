"""An in-memory ``TrainingJobs`` that honours the port's contract (``tests/contract/training_contract.py``).

A job moves one state per observation (QUEUED, PENDING, RUNNING, then its outcome), as polling Vertex shows
it; :meth:`FakeTrainingJobs.finish` ends it at once. ``outcome`` decides how a job ends from its spec
(default: it succeeds), so tests script failures without running a trainer.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from shared.ports.common import check, label_problems
from shared.ports.errors import NotFound
from shared.ports.faults import Faults
from shared.ports.training import JobState, TrainingJob, TrainingJobSpec, spec_problems


@dataclass(frozen=True)
class FakeJobOutcome:
    state: JobState = JobState.SUCCEEDED
    error_message: str = ""


def always_succeeds(_spec: TrainingJobSpec) -> FakeJobOutcome:
    return FakeJobOutcome()


_PROGRESSION = (JobState.QUEUED, JobState.PENDING, JobState.RUNNING)


@dataclass
class _Record:
    job: TrainingJob
    outcome: FakeJobOutcome
    observations: int = 0


@dataclass
class FakeTrainingJobs:
    project: str = "fake-project"
    location: str = "us-central1"
    outcome: Callable[[TrainingJobSpec], FakeJobOutcome] = always_succeeds
    faults: Faults = field(default_factory=Faults)
    submitted: list[TrainingJobSpec] = field(default_factory=list)
    _records: dict[str, _Record] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _tick: int = field(default=0, init=False, repr=False)

    def submit(self, spec: TrainingJobSpec, *, timeout: float | None = None) -> TrainingJob:
        self.faults.take("submit")
        check("training job", spec_problems(spec))
        with self._lock:
            job_id = str(random.randint(10**18, 9 * 10**18))
            # Distinct, increasing create times, so "newest first" is well defined even within a clock tick.
            self._tick += 1
            created = datetime.now(UTC) + timedelta(microseconds=self._tick)
            job = TrainingJob(
                name=f"projects/{self.project}/locations/{self.location}/customJobs/{job_id}",
                display_name=spec.display_name,
                state=JobState.QUEUED,
                labels=dict(spec.labels),
                image_uri=spec.image_uri,
                args=tuple(spec.args),
                base_output_dir=spec.base_output_dir,
                create_time=created,
            )
            self.submitted.append(spec)
            self._records[job.name] = _Record(job=job, outcome=self.outcome(spec))
            return job

    def get(self, name: str, *, timeout: float | None = None) -> TrainingJob:
        self.faults.take("get")
        with self._lock:
            record = self._record(name)
            record.observations += 1
            if record.job.state.terminal:
                pass
            elif record.observations < len(_PROGRESSION):
                state = _PROGRESSION[record.observations]
                start = datetime.now(UTC) if state is JobState.RUNNING else None
                record.job = replace(record.job, state=state, start_time=start)
            else:
                self._end(record)
            return record.job

    def find_by_label(self, key: str, value: str, *, timeout: float | None = None) -> list[TrainingJob]:
        self.faults.take("find_by_label")
        check("label lookup", label_problems({key: value}, "label"))
        with self._lock:
            jobs = [r.job for r in self._records.values() if r.job.labels.get(key) == value]
        return sorted(jobs, key=lambda job: job.create_time or datetime.min.replace(tzinfo=UTC), reverse=True)

    # -- test controls --------------------------------------------------------------------------------------

    def finish(self, name: str, outcome: FakeJobOutcome | None = None) -> TrainingJob:
        with self._lock:
            record = self._record(name)
            if outcome is not None:
                record.outcome = outcome
            self._end(record)
            return record.job

    def _record(self, name: str) -> _Record:
        record = self._records.get(name)
        if record is None:
            raise NotFound(f"The CustomJob {name} does not exist.")
        return record

    def _end(self, record: _Record) -> None:
        if record.job.state.terminal:
            return
        now = datetime.now(UTC)
        record.job = replace(
            record.job,
            state=record.outcome.state,
            error_message=record.outcome.error_message,
            start_time=record.job.start_time or now,
            end_time=now,
        )
