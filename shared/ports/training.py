"""The ``TrainingJobs`` port: submit Vertex AI CustomJobs, read them back, find them by label.

Vertex publishes no completion event, so callers poll :meth:`TrainingJobs.get` (the reconciler does). A
CustomJob has no client-chosen id, so "submit" is made safe to redo by a label carrying the work's key: look
it up with :meth:`TrainingJobs.find_by_label` first, submit only when nothing is found.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from shared.ports.common import Budget, as_utc, check, label_problems, read_retry
from shared.ports.errors import boundary


class JobState(enum.StrEnum):
    """Vertex AI job states (the values are Vertex's own names, as the console and gcloud show them)."""

    UNSPECIFIED = "JOB_STATE_UNSPECIFIED"
    QUEUED = "JOB_STATE_QUEUED"
    PENDING = "JOB_STATE_PENDING"
    RUNNING = "JOB_STATE_RUNNING"
    SUCCEEDED = "JOB_STATE_SUCCEEDED"
    FAILED = "JOB_STATE_FAILED"
    CANCELLING = "JOB_STATE_CANCELLING"
    CANCELLED = "JOB_STATE_CANCELLED"
    PAUSED = "JOB_STATE_PAUSED"
    EXPIRED = "JOB_STATE_EXPIRED"
    UPDATING = "JOB_STATE_UPDATING"
    PARTIALLY_SUCCEEDED = "JOB_STATE_PARTIALLY_SUCCEEDED"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL

    @property
    def succeeded(self) -> bool:
        return self is JobState.SUCCEEDED


_TERMINAL = frozenset(
    {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.EXPIRED, JobState.PARTIALLY_SUCCEEDED}
)


@dataclass(frozen=True)
class MachineSpec:
    machine_type: str = "n1-standard-4"
    accelerator_type: str = ""
    accelerator_count: int = 0


@dataclass(frozen=True)
class TrainingJobSpec:
    """One container on one replica: what the pipeline's training needs."""

    display_name: str
    image_uri: str
    args: tuple[str, ...] = ()
    command: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    machine: MachineSpec = field(default_factory=MachineSpec)
    service_account: str = ""
    base_output_dir: str = ""  # gs://...; the job sees it as AIP_MODEL_DIR etc.
    timeout_seconds: float | None = None


@dataclass(frozen=True)
class TrainingJob:
    name: str  # projects/P/locations/L/customJobs/ID
    display_name: str
    state: JobState
    labels: Mapping[str, str] = field(default_factory=dict)
    error_message: str = ""
    image_uri: str = ""
    args: tuple[str, ...] = ()
    base_output_dir: str = ""
    create_time: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None

    @property
    def id(self) -> str:
        return self.name.rsplit("/", 1)[-1]


class TrainingJobs(Protocol):
    def submit(self, spec: TrainingJobSpec, *, timeout: float | None = None) -> TrainingJob:
        """Create the CustomJob (it starts on its own); not idempotent by itself: see the module docstring."""
        ...

    def get(self, name: str, *, timeout: float | None = None) -> TrainingJob:
        """The job now; :class:`~shared.ports.errors.NotFound` for an unknown name."""
        ...

    def find_by_label(self, key: str, value: str, *, timeout: float | None = None) -> list[TrainingJob]:
        """Jobs labelled ``key=value``, newest first."""
        ...


def spec_problems(spec: TrainingJobSpec) -> list[str]:
    """Every reason Vertex AI would refuse ``spec`` (checked before any call, by the adapter and the fake)."""
    problems = label_problems(spec.labels, "labels")
    if not spec.display_name:
        problems.append("display_name: required")
    if len(spec.display_name) > 128:
        problems.append("display_name: at most 128 characters")
    if not spec.image_uri:
        problems.append("image_uri: required")
    if not spec.machine.machine_type:
        problems.append("machine.machine_type: required")
    if spec.base_output_dir and not spec.base_output_dir.startswith("gs://"):
        problems.append(f"base_output_dir: {spec.base_output_dir!r} is not a gs:// URI")
    if spec.timeout_seconds is not None and spec.timeout_seconds <= 0:
        problems.append("timeout_seconds: must be positive")
    return problems


class VertexTrainingJobs:
    """``TrainingJobs`` over ``aiplatform_v1.JobServiceClient`` (the emulator when ``VERTEX_EMULATOR_HOST``
    is set); the client is made on first use."""

    def __init__(self, project: str, location: str, client: Any | None = None) -> None:
        self.project = project
        self.location = location
        self._client = client

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.location}"

    def _api(self) -> Any:
        if self._client is None:
            from shared import clients

            self._client = clients.vertex_jobs()
        return self._client

    def submit(self, spec: TrainingJobSpec, *, timeout: float | None = None) -> TrainingJob:
        check("training job", spec_problems(spec))
        budget = Budget(timeout)
        with boundary(f"creating CustomJob {spec.display_name!r}"):
            created = self._api().create_custom_job(
                request={"parent": self.parent, "custom_job": _job_body(spec)},
                timeout=budget.left("creating a CustomJob"),
                retry=None,  # not idempotent: callers look the job up by label first
            )
        return _to_job(created)

    def get(self, name: str, *, timeout: float | None = None) -> TrainingJob:
        seconds = Budget(timeout).left("reading a CustomJob")
        with boundary(f"reading CustomJob {name}"):
            job = self._api().get_custom_job(
                request={"name": name}, timeout=seconds, retry=read_retry(seconds)
            )
        return _to_job(job)

    def find_by_label(self, key: str, value: str, *, timeout: float | None = None) -> list[TrainingJob]:
        check("label lookup", label_problems({key: value}, "label"))
        budget = Budget(timeout)
        found: list[TrainingJob] = []
        with boundary(f"listing CustomJobs labelled {key}={value}"):
            seconds = budget.left("listing CustomJobs")
            pager = self._api().list_custom_jobs(
                request={"parent": self.parent, "filter": f'labels.{key}="{value}"'},
                timeout=seconds,
                retry=read_retry(seconds),
            )
            found.extend(_to_job(job) for job in pager)
        found.sort(key=lambda job: job.create_time.timestamp() if job.create_time else 0.0, reverse=True)
        return found


def _job_body(spec: TrainingJobSpec) -> dict[str, Any]:
    container: dict[str, Any] = {"image_uri": spec.image_uri, "args": list(spec.args)}
    if spec.command:
        container["command"] = list(spec.command)
    if spec.env:
        container["env"] = [{"name": key, "value": value} for key, value in spec.env.items()]
    machine: dict[str, Any] = {"machine_type": spec.machine.machine_type}
    if spec.machine.accelerator_type:
        machine["accelerator_type"] = spec.machine.accelerator_type
        machine["accelerator_count"] = spec.machine.accelerator_count
    job_spec: dict[str, Any] = {
        "worker_pool_specs": [{"machine_spec": machine, "replica_count": 1, "container_spec": container}]
    }
    if spec.base_output_dir:
        job_spec["base_output_directory"] = {"output_uri_prefix": spec.base_output_dir}
    if spec.service_account:
        job_spec["service_account"] = spec.service_account
    if spec.timeout_seconds:
        job_spec["scheduling"] = {"timeout": {"seconds": int(spec.timeout_seconds)}}
    return {"display_name": spec.display_name, "labels": dict(spec.labels), "job_spec": job_spec}


def _state(value: Any) -> JobState:
    try:
        return JobState(getattr(value, "name", str(value)))
    except ValueError:
        return JobState.UNSPECIFIED


def _to_job(job: Any) -> TrainingJob:
    pools = list(job.job_spec.worker_pool_specs)
    container = pools[0].container_spec if pools else None
    return TrainingJob(
        name=job.name,
        display_name=job.display_name,
        state=_state(job.state),
        labels=dict(job.labels),
        error_message=job.error.message if "error" in job else "",
        image_uri=container.image_uri if container is not None else "",
        args=tuple(container.args) if container is not None else (),
        base_output_dir=job.job_spec.base_output_directory.output_uri_prefix,
        create_time=as_utc(job.create_time),
        start_time=as_utc(job.start_time),
        end_time=as_utc(job.end_time),
    )
