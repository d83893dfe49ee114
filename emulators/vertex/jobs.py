"""Vertex AI CustomJobs (JobService) and PipelineJobs (PipelineService), run locally.

A CustomJob's worker pool 0 runs its container image — which must be in the local registry (built through
the Cloud Build emulator) — as a local process: ``command`` replaces the image ENTRYPOINT, ``args`` replace
CMD, env is the image ENV + the ``AIP_*`` variables Vertex sets + the container spec's env. A PipelineJob's
tasks (KFP IR ``pipelineSpec``) run the same way, one after another in dependency order.

States follow Vertex: ``JOB_STATE_QUEUED`` → ``PENDING`` → ``RUNNING`` → ``SUCCEEDED``/``FAILED``/
``CANCELLING`` → ``CANCELLED`` (and ``PIPELINE_STATE_*`` for pipelines), with create/start/end/update times
and ``error`` on failure.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.cloud.aiplatform_v1.services.job_service.transports.rest_base import _BaseJobServiceRestTransport
from google.cloud.aiplatform_v1.services.pipeline_service.transports.rest_base import (
    _BasePipelineServiceRestTransport,
)
from google.cloud.aiplatform_v1.types import (
    custom_job,
    job_service,
    job_state,
    pipeline_job,
    pipeline_service,
    pipeline_state,
)
from google.cloud.aiplatform_v1.types import operation as vertex_operation
from google.longrunning import operations_pb2
from google.protobuf import empty_pb2
from google.rpc import status_pb2

from emulators.apiserver.errors import (
    CODES,
    ApiError,
    already_exists,
    failed_precondition,
    invalid,
    not_found,
)
from emulators.apiserver.filtering import compile_filter
from emulators.apiserver.messages import to_dict
from emulators.apiserver.operations import operation
from emulators.apiserver.paging import page
from emulators.apiserver.routing import rest_rules
from emulators.apiserver.server import AdminRequest, ApiServer
from emulators.common.localrun import LocalProcess, container_invocation, log_tail, shim_dir
from emulators.common.registry import LocalRegistry, RegistryError
from emulators.vertex.common import now, numeric_id, parse_name, parse_parent, validate_labels

log = logging.getLogger("emulators.vertex.jobs")

JOB_SERVICE = "google.cloud.aiplatform.v1.JobService"
PIPELINE_SERVICE = "google.cloud.aiplatform.v1.PipelineService"
JobState: Any = job_state.JobState
PipelineState: Any = pipeline_state.PipelineState
TaskState: Any = pipeline_job.PipelineTaskDetail.State
_PIPELINE_ID = re.compile(r"[a-z][-a-z0-9]{0,127}")
_PLACEHOLDER = re.compile(r"\{\{\$(?P<expr>[^}]*)\}\}")


@dataclass(frozen=True)
class Kind:
    collection: str
    label: str
    queued: Any
    pending: Any
    running: Any
    succeeded: Any
    failed: Any
    cancelling: Any
    cancelled: Any

    @property
    def terminal(self) -> set[Any]:
        return {self.succeeded, self.failed, self.cancelled}


CUSTOM = Kind(
    "customJobs",
    "CustomJob",
    JobState.JOB_STATE_QUEUED,
    JobState.JOB_STATE_PENDING,
    JobState.JOB_STATE_RUNNING,
    JobState.JOB_STATE_SUCCEEDED,
    JobState.JOB_STATE_FAILED,
    JobState.JOB_STATE_CANCELLING,
    JobState.JOB_STATE_CANCELLED,
)
PIPELINE = Kind(
    "pipelineJobs",
    "PipelineJob",
    PipelineState.PIPELINE_STATE_QUEUED,
    PipelineState.PIPELINE_STATE_PENDING,
    PipelineState.PIPELINE_STATE_RUNNING,
    PipelineState.PIPELINE_STATE_SUCCEEDED,
    PipelineState.PIPELINE_STATE_FAILED,
    PipelineState.PIPELINE_STATE_CANCELLING,
    PipelineState.PIPELINE_STATE_CANCELLED,
)


@dataclass
class Durations:
    queued_seconds: float = 0.2
    pending_seconds: float = 0.2
    running_seconds: float = 0.0  # minimum time in RUNNING (a job's process may take longer)


@dataclass
class JobRecord:
    kind: Kind
    resource: Any  # custom_job.CustomJob or pipeline_job.PipelineJob (proto-plus)
    directory: Path
    stop: threading.Event = field(default_factory=threading.Event)
    processes: set[LocalProcess] = field(default_factory=set)
    cancel_requested: bool = False
    forced: tuple[str, str] | None = None
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def terminal(self) -> bool:
        return self.resource.state in self.kind.terminal


Failure = tuple[str, str]  # (canonical code, message)


def _copy(message: Any) -> Any:
    return type(message).deserialize(type(message).serialize(message))


class JobsService:
    def __init__(self, server: ApiServer, project: str, state_dir: Path, registry: LocalRegistry) -> None:
        self.server = server
        self.project = project
        self.state_dir = state_dir
        self.registry = registry
        self.shims = shim_dir(state_dir)
        self.durations = Durations()
        self._lock = threading.RLock()
        self._records: dict[str, JobRecord] = {}
        self._fail_next: dict[str, list[Failure]] = {CUSTOM.collection: [], PIPELINE.collection: []}
        self._register()

    # -- registration -------------------------------------------------------------------------------------

    def _register(self) -> None:
        jobs = _BaseJobServiceRestTransport
        pipelines = _BasePipelineServiceRestTransport
        table: list[tuple[str, type, str, type, type, Callable[[Any], Any]]] = [
            (JOB_SERVICE, jobs, "CreateCustomJob", job_service.CreateCustomJobRequest, custom_job.CustomJob,
             self.create_custom_job),
            (JOB_SERVICE, jobs, "GetCustomJob", job_service.GetCustomJobRequest, custom_job.CustomJob,
             self.get_custom_job),
            (JOB_SERVICE, jobs, "ListCustomJobs", job_service.ListCustomJobsRequest,
             job_service.ListCustomJobsResponse, self.list_custom_jobs),
            (JOB_SERVICE, jobs, "CancelCustomJob", job_service.CancelCustomJobRequest, empty_pb2.Empty,
             self.cancel_custom_job),
            (JOB_SERVICE, jobs, "DeleteCustomJob", job_service.DeleteCustomJobRequest,
             operations_pb2.Operation, self.delete_custom_job),
            (PIPELINE_SERVICE, pipelines, "CreatePipelineJob", pipeline_service.CreatePipelineJobRequest,
             pipeline_job.PipelineJob, self.create_pipeline_job),
            (PIPELINE_SERVICE, pipelines, "GetPipelineJob", pipeline_service.GetPipelineJobRequest,
             pipeline_job.PipelineJob, self.get_pipeline_job),
            (PIPELINE_SERVICE, pipelines, "ListPipelineJobs", pipeline_service.ListPipelineJobsRequest,
             pipeline_service.ListPipelineJobsResponse, self.list_pipeline_jobs),
            (PIPELINE_SERVICE, pipelines, "CancelPipelineJob", pipeline_service.CancelPipelineJobRequest,
             empty_pb2.Empty, self.cancel_pipeline_job),
        ]  # fmt: skip
        for service, base, name, request_type, response_type, handler in table:
            self.server.add_method(
                service, name, request_type, response_type, handler, rest_rules(base, name)
            )
        implemented = {
            "CreateCustomJob",
            "GetCustomJob",
            "ListCustomJobs",
            "CancelCustomJob",
            "DeleteCustomJob",
        }
        self.server.add_unimplemented(JOB_SERVICE, jobs, implemented, "Vertex AI")
        implemented = {"CreatePipelineJob", "GetPipelineJob", "ListPipelineJobs", "CancelPipelineJob"}
        self.server.add_unimplemented(PIPELINE_SERVICE, pipelines, implemented, "Vertex AI")
        self.server.on_reset(self.reset)
        self.server.on_shutdown(self.shutdown)
        self.server.add_admin("POST", r"durations", self._admin_durations)
        for kind in (CUSTOM, PIPELINE):
            collection = kind.collection
            self.server.add_admin("POST", rf"{collection}/(?P<id>[^/:]+):fail", self._admin_fail)
            self.server.add_admin("POST", rf"{collection}:fail-next", self._admin_fail_next(kind))
            self.server.add_admin("GET", rf"{collection}/(?P<id>[^/:]+)/log", self._admin_log)

    # -- shared lifecycle ---------------------------------------------------------------------------------

    def _get(self, name: str, kind: Kind) -> JobRecord:
        parse_name(name, kind.collection)
        with self._lock:
            record = self._records.get(name)
        if record is None or record.kind is not kind:
            raise not_found(f"The {kind.label} {name} does not exist.")
        return record

    def _snapshot(self, record: JobRecord) -> Any:
        with self._lock:
            return _copy(record.resource)

    def _set_state(self, record: JobRecord, state: Any) -> None:
        with self._lock:
            record.resource.state = state
            record.resource.update_time = now()

    def _finish(self, record: JobRecord, state: Any, failure: Failure | None = None) -> None:
        with self._lock:
            if record.terminal:
                return
            moment = now()
            record.resource.state = state
            record.resource.end_time = moment
            record.resource.update_time = moment
            if failure is not None:
                code, message = failure
                record.resource.error = status_pb2.Status(code=CODES[code][0], message=message)
        record.stop.set()
        record.done.set()

    def _interrupted(self, record: JobRecord) -> bool:
        """Finish a job that was cancelled or forced to fail; True when it was."""
        if record.cancel_requested:
            self._finish(record, record.kind.cancelled, ("CANCELLED", "CANCELED"))
            return True
        if record.forced is not None:
            self._finish(record, record.kind.failed, record.forced)
            return True
        return False

    def _pause(self, record: JobRecord, seconds: float) -> bool:
        """Wait ``seconds``; True (and the job finished) when cancelled or forced to fail meanwhile."""
        if seconds > 0:
            record.stop.wait(seconds)
        return self._interrupted(record)

    def _start(self, record: JobRecord, work: Callable[[JobRecord], Failure | None]) -> None:
        def lifecycle() -> None:
            try:
                if self._pause(record, self.durations.queued_seconds):
                    return
                self._set_state(record, record.kind.pending)
                if self._pause(record, self.durations.pending_seconds):
                    return
                with self._lock:
                    record.resource.state = record.kind.running
                    record.resource.start_time = now()
                    record.resource.update_time = record.resource.start_time
                began = time.monotonic()
                failure = None if record.forced is not None else work(record)
                remaining = self.durations.running_seconds - (time.monotonic() - began)
                if self._pause(record, remaining):
                    return
                if failure is None:
                    self._finish(record, record.kind.succeeded)
                else:
                    self._finish(record, record.kind.failed, failure)
            except Exception as error:  # an emulator bug ends the job visibly
                log.exception("%s %s crashed", record.kind.label, record.resource.name)
                self._finish(record, record.kind.failed, ("INTERNAL", f"emulator error: {error!r}"))

        threading.Thread(target=lifecycle, name=f"{record.kind.collection}-run", daemon=True).start()

    def _cancel(self, name: str, kind: Kind) -> empty_pb2.Empty:
        record = self._get(name, kind)
        with self._lock:
            if record.terminal:
                raise failed_precondition(
                    f"Cannot cancel {kind.label} {name}: it is already in state {record.resource.state.name}."
                )
            record.cancel_requested = True
            record.resource.state = kind.cancelling
            record.resource.update_time = now()
            processes = list(record.processes)
        record.stop.set()
        for process in processes:
            process.cancel()
        return empty_pb2.Empty()

    def _list(
        self, parent: str, kind: Kind, filter_text: str, page_size: int, page_token: str
    ) -> tuple[list[Any], str]:
        project, location = parse_parent(parent)
        predicate = compile_filter(filter_text)
        prefix = f"projects/{project}/locations/{location}/{kind.collection}/"
        with self._lock:
            resources = [
                _copy(record.resource)
                for name, record in self._records.items()
                if name.startswith(prefix) and record.kind is kind
            ]
        resources.sort(key=lambda resource: (resource.create_time, resource.name), reverse=True)
        matching = [resource for resource in resources if predicate(to_dict(resource, proto_names=True))]
        return page(matching, page_size, page_token, default_size=100)

    def _run_container(
        self,
        record: JobRecord,
        image_uri: str,
        command: list[str],
        args: list[str],
        env: dict[str, str],
        label: str,
        timeout: float | None,
    ) -> Failure | None:
        try:
            image = self.registry.resolve(image_uri)
        except RegistryError as error:
            return (
                "INVALID_ARGUMENT",
                f"Unable to run image {image_uri}: {error}. The emulator runs only images built through the "
                "Cloud Build emulator (recorded in the local registry).",
            )
        log_path = record.directory / f"{label}.log"
        invocation = container_invocation(
            image, record.directory / f"{label}-rootfs", self.shims, command, args, env
        )
        process = LocalProcess(invocation, log_path)
        with self._lock:
            if record.stop.is_set():
                return None
            record.processes.add(process)
        try:
            process.start()
            outcome = process.wait(timeout)
        finally:
            with self._lock:
                record.processes.discard(process)
        if outcome.cancelled:
            return None  # the cancel or forced failure is reported by the lifecycle
        if outcome.timed_out:
            return (
                "DEADLINE_EXCEEDED",
                f"The replica {label} did not finish within the timeout of {timeout:.0f}s.",
            )
        if outcome.exit_code != 0:
            tail = log_tail(log_path, 10)
            return (
                "INVALID_ARGUMENT",
                f"The replica {label} exited with a non-zero status of {outcome.exit_code}. "
                f"Termination reason: Error. Logs: {log_path}\n{tail}",
            )
        return None

    # -- CustomJob ----------------------------------------------------------------------------------------

    def create_custom_job(self, request: job_service.CreateCustomJobRequest) -> custom_job.CustomJob:
        project, location = parse_parent(request.parent)
        job = _copy(request.custom_job)
        if not job.display_name:
            raise invalid("CustomJob.display_name must be set.")
        pools = list(job.job_spec.worker_pool_specs)
        if not pools:
            raise invalid("CustomJob.job_spec.worker_pool_specs must contain at least one worker pool.")
        first = pools[0]
        if "container_spec" not in first and "python_package_spec" not in first:
            raise invalid("worker_pool_specs[0] must set container_spec or python_package_spec.")
        if "container_spec" in first and not first.container_spec.image_uri:
            raise invalid("worker_pool_specs[0].container_spec.image_uri must be set.")
        if not first.machine_spec.machine_type:
            raise invalid("worker_pool_specs[0].machine_spec.machine_type must be set.")
        validate_labels(dict(job.labels), "CustomJob.labels")
        job_id = numeric_id()
        moment = now()
        job.name = f"projects/{project}/locations/{location}/customJobs/{job_id}"
        job.state = JobState.JOB_STATE_QUEUED
        job.create_time = moment
        job.update_time = moment
        directory = self.state_dir / "customJobs" / job_id
        directory.mkdir(parents=True, exist_ok=True)
        record = JobRecord(kind=CUSTOM, resource=job, directory=directory)
        with self._lock:
            if self._fail_next[CUSTOM.collection]:
                record.forced = self._fail_next[CUSTOM.collection].pop(0)
            self._records[job.name] = record
        self._start(record, self._run_custom_job)
        snapshot: custom_job.CustomJob = self._snapshot(record)
        return snapshot

    def _run_custom_job(self, record: JobRecord) -> Failure | None:
        job: custom_job.CustomJob = record.resource
        spec = job.job_spec
        pools = list(spec.worker_pool_specs)
        first = pools[0]
        if "python_package_spec" in first:
            return (
                "UNIMPLEMENTED",
                "python_package_spec is not supported by the emulator: use a container_spec",
            )
        if first.replica_count > 1 or any(pool.replica_count > 0 for pool in pools[1:]):
            return ("UNIMPLEMENTED", "the emulator runs a single replica (worker pool 0, replica_count 1)")
        project, _, job_id = parse_name(job.name, "customJobs")
        env = {
            "CLOUD_ML_PROJECT_ID": project,
            "CLOUD_ML_JOB_ID": job_id,
            "GOOGLE_CLOUD_PROJECT": project,
            "CLUSTER_SPEC": json.dumps(
                {
                    "cluster": {"workerpool0": ["workerpool0-0:2222"]},
                    "environment": "cloud",
                    "task": {"type": "workerpool0", "index": 0},
                    "job": json.dumps(to_dict(spec, proto_names=True)),
                }
            ),
            "TF_CONFIG": json.dumps(
                {
                    "cluster": {"workerpool0": ["workerpool0-0:2222"]},
                    "environment": "cloud",
                    "task": {"type": "workerpool0", "index": 0},
                }
            ),
        }
        base = spec.base_output_directory.output_uri_prefix.rstrip("/")
        if base:
            env.update(
                AIP_MODEL_DIR=f"{base}/model/",
                AIP_CHECKPOINT_DIR=f"{base}/checkpoints/",
                AIP_TENSORBOARD_LOG_DIR=f"{base}/logs/",
            )
        container = first.container_spec
        env.update({item.name: item.value for item in container.env})
        timeout = spec.scheduling.timeout.total_seconds() if spec.scheduling.timeout else None
        return self._run_container(
            record,
            container.image_uri,
            list(container.command),
            list(container.args),
            env,
            "workerpool0-0",
            timeout,
        )

    def get_custom_job(self, request: job_service.GetCustomJobRequest) -> custom_job.CustomJob:
        snapshot: custom_job.CustomJob = self._snapshot(self._get(request.name, CUSTOM))
        return snapshot

    def list_custom_jobs(
        self, request: job_service.ListCustomJobsRequest
    ) -> job_service.ListCustomJobsResponse:
        items, token = self._list(
            request.parent, CUSTOM, request.filter, request.page_size, request.page_token
        )
        return job_service.ListCustomJobsResponse(custom_jobs=items, next_page_token=token)

    def cancel_custom_job(self, request: job_service.CancelCustomJobRequest) -> empty_pb2.Empty:
        return self._cancel(request.name, CUSTOM)

    def delete_custom_job(self, request: job_service.DeleteCustomJobRequest) -> operations_pb2.Operation:
        record = self._get(request.name, CUSTOM)
        with self._lock:
            if not record.terminal:
                raise failed_precondition(
                    f"CustomJob {request.name} is in state {record.resource.state.name} and cannot be "
                    "deleted; cancel it first."
                )
            del self._records[request.name]
        moment = now()
        metadata = vertex_operation.DeleteOperationMetadata(
            generic_metadata=vertex_operation.GenericOperationMetadata(create_time=moment, update_time=moment)
        )
        name = f"{request.name}/operations/{numeric_id()}"
        done = operation(name, metadata=metadata, done=True, response=empty_pb2.Empty())
        return self.server.operations.add(name, lambda: done)

    # -- PipelineJob --------------------------------------------------------------------------------------

    def create_pipeline_job(
        self, request: pipeline_service.CreatePipelineJobRequest
    ) -> pipeline_job.PipelineJob:
        project, location = parse_parent(request.parent)
        job = _copy(request.pipeline_job)
        spec = _pipeline_spec(job)
        validate_labels(dict(job.labels), "PipelineJob.labels")
        job_id = request.pipeline_job_id or (
            f"{spec.get('pipelineInfo', {}).get('name', 'pipeline')}-{now().strftime('%Y%m%d%H%M%S%f')}"
        )
        if not _PIPELINE_ID.fullmatch(job_id):
            raise invalid(f"pipeline_job_id {job_id!r} must match [a-z][-a-z0-9]{{0,127}}")
        name = f"projects/{project}/locations/{location}/pipelineJobs/{job_id}"
        moment = now()
        job.name = name
        job.display_name = job.display_name or job_id
        job.state = PipelineState.PIPELINE_STATE_QUEUED
        job.create_time = moment
        job.update_time = moment
        tasks = _task_order(spec)
        for index, task in enumerate(tasks):
            job.job_detail.task_details.append(
                pipeline_job.PipelineTaskDetail(
                    task_id=index + 1, task_name=task, create_time=moment, state=TaskState.PENDING
                )
            )
        directory = self.state_dir / "pipelineJobs" / job_id
        record = JobRecord(kind=PIPELINE, resource=job, directory=directory)
        with self._lock:
            if name in self._records:
                raise already_exists(f"PipelineJob {name} already exists.")
            directory.mkdir(parents=True, exist_ok=True)
            if self._fail_next[PIPELINE.collection]:
                record.forced = self._fail_next[PIPELINE.collection].pop(0)
            self._records[name] = record
        self._start(record, lambda r: self._run_pipeline(r, spec, tasks))
        snapshot: pipeline_job.PipelineJob = self._snapshot(record)
        return snapshot

    def _run_pipeline(self, record: JobRecord, spec: dict[str, Any], tasks: list[str]) -> Failure | None:
        job: pipeline_job.PipelineJob = record.resource
        root = spec.get("root", {})
        dag = root.get("dag", {}).get("tasks", {})
        parameters = {
            name: definition.get("defaultValue")
            for name, definition in root.get("inputDefinitions", {}).get("parameters", {}).items()
        }
        parameters.update({key: value for key, value in dict(job.runtime_config.parameter_values).items()})
        parameters.update({key: value.string_value for key, value in job.runtime_config.parameters.items()})
        executors = spec.get("deploymentSpec", {}).get("executors", {})
        components = spec.get("components", {})
        for index, task_name in enumerate(tasks):
            detail = job.job_detail.task_details[index]
            with self._lock:
                detail.state = TaskState.RUNNING
                detail.start_time = now()
            failure = self._run_task(record, task_name, dag[task_name], components, executors, parameters)
            with self._lock:
                detail.end_time = now()
                if failure is None and not record.stop.is_set():
                    detail.state = TaskState.SUCCEEDED
                    continue
                if failure is None:
                    detail.state = TaskState.CANCELLED
                else:
                    detail.state = TaskState.FAILED
                    detail.error = status_pb2.Status(code=CODES[failure[0]][0], message=failure[1])
                for later in job.job_detail.task_details[index + 1 :]:
                    later.state = TaskState.NOT_TRIGGERED
            if failure is None:
                return None
            return (
                "FAILED_PRECONDITION",
                "The DAG failed because some tasks failed. "
                f"The failed tasks are: [{task_name}]. {failure[1]}",
            )
        return None

    def _run_task(
        self,
        record: JobRecord,
        task_name: str,
        task: dict[str, Any],
        components: dict[str, Any],
        executors: dict[str, Any],
        parameters: dict[str, Any],
    ) -> Failure | None:
        component = components.get(task.get("componentRef", {}).get("name", ""), {})
        executor = executors.get(component.get("executorLabel", ""), {})
        container = executor.get("container")
        if not container:
            return ("UNIMPLEMENTED", f"task {task_name}: only container executors can run in the emulator")
        inputs: dict[str, Any] = {}
        for name, spec in task.get("inputs", {}).get("parameters", {}).items():
            if "runtimeValue" in spec:
                inputs[name] = spec["runtimeValue"].get("constant", spec["runtimeValue"].get("constantValue"))
            elif "componentInputParameter" in spec:
                inputs[name] = parameters.get(spec["componentInputParameter"])
            else:
                return (
                    "UNIMPLEMENTED",
                    f"task {task_name}: input {name!r} from another task's output is not supported",
                )
        job = record.resource
        try:
            command = [_placeholders(item, inputs, job, task_name) for item in container.get("command", [])]
            args = [_placeholders(item, inputs, job, task_name) for item in container.get("args", [])]
        except ValueError as error:
            return ("UNIMPLEMENTED", f"task {task_name}: {error}")
        env = {item["name"]: item.get("value", "") for item in container.get("env", [])}
        env["GOOGLE_CLOUD_PROJECT"] = parse_name(job.name, "pipelineJobs")[0]
        return self._run_container(
            record, container.get("image", ""), command, args, env, f"task-{task_name}", None
        )

    def get_pipeline_job(self, request: pipeline_service.GetPipelineJobRequest) -> pipeline_job.PipelineJob:
        snapshot: pipeline_job.PipelineJob = self._snapshot(self._get(request.name, PIPELINE))
        return snapshot

    def list_pipeline_jobs(
        self, request: pipeline_service.ListPipelineJobsRequest
    ) -> pipeline_service.ListPipelineJobsResponse:
        items, token = self._list(
            request.parent, PIPELINE, request.filter, request.page_size, request.page_token
        )
        return pipeline_service.ListPipelineJobsResponse(pipeline_jobs=items, next_page_token=token)

    def cancel_pipeline_job(self, request: pipeline_service.CancelPipelineJobRequest) -> empty_pb2.Empty:
        return self._cancel(request.name, PIPELINE)

    # -- admin ----------------------------------------------------------------------------------------------

    def _admin_durations(self, request: AdminRequest) -> Any:
        for key, value in request.body.items():
            if not hasattr(self.durations, key):
                raise invalid(
                    f"unknown duration {key!r}; known: queued_seconds, pending_seconds, running_seconds"
                )
            setattr(self.durations, key, float(value))
        return vars(self.durations)

    def _find(self, job_id: str) -> JobRecord:
        with self._lock:
            for name, record in self._records.items():
                if name.rsplit("/", 1)[-1] == job_id:
                    return record
        raise not_found(f"no job {job_id}")

    def _admin_fail(self, request: AdminRequest) -> Any:
        record = self._find(request.params["id"])
        failure = _forced(request.body)
        with self._lock:
            if record.terminal:
                raise failed_precondition(
                    f"{record.resource.name} already ended in {record.resource.state.name}"
                )
            record.forced = failure
            processes = list(record.processes)
        record.stop.set()
        for process in processes:
            process.cancel()
        record.done.wait(10)
        return to_dict(self._snapshot(record))

    def _admin_fail_next(self, kind: Kind) -> Callable[[AdminRequest], Any]:
        def handler(request: AdminRequest) -> Any:
            count = int(request.body.get("count", 1))
            with self._lock:
                self._fail_next[kind.collection].extend([_forced(request.body)] * count)
                return {"pending": len(self._fail_next[kind.collection])}

        return handler

    def _admin_log(self, request: AdminRequest) -> Any:
        from werkzeug.wrappers import Response

        record = self._find(request.params["id"])
        texts = [path.read_text(errors="replace") for path in sorted(record.directory.glob("*.log"))]
        return Response("".join(texts), mimetype="text/plain")

    # -- lifecycle ------------------------------------------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            records = list(self._records.values())
            self._records.clear()
            for pending in self._fail_next.values():
                pending.clear()
        for record in records:
            record.stop.set()
            for process in list(record.processes):
                process.cancel()
        self.durations = Durations()

    def shutdown(self) -> None:
        with self._lock:
            records = list(self._records.values())
        for record in records:
            record.stop.set()
        LocalProcess.kill_all()


def _forced(body: dict[str, Any]) -> Failure:
    message = str(body.get("message") or "forced failure (emulator fault injection)")
    try:
        code = ApiError(body.get("code", "INTERNAL"), message).code
    except ValueError as error:
        raise invalid(str(error)) from error
    return (code, message)


def _pipeline_spec(job: pipeline_job.PipelineJob) -> dict[str, Any]:
    from google.protobuf.json_format import MessageToDict

    # proto-plus answers None for an unset Struct field, so presence is read from the raw message.
    raw = pipeline_job.PipelineJob.pb(job)
    if not raw.HasField("pipeline_spec") and job.template_uri:
        if not job.template_uri.startswith("gs://"):
            raise ApiError(
                "UNIMPLEMENTED", "the emulator reads template_uri only from gs:// (the storage emulator)"
            )
        raw.pipeline_spec.update(_read_gcs_json(job.template_uri))
    spec: dict[str, Any] = MessageToDict(raw.pipeline_spec) if raw.HasField("pipeline_spec") else {}
    if not spec:
        raise invalid(
            "PipelineJob.pipeline_spec is required: set pipeline_job.pipeline_spec (the compiled KFP "
            "pipeline) or pipeline_job.template_uri."
        )
    if "pipelineSpec" in spec and "root" not in spec:  # a full PipelineJob JSON was given
        spec = spec["pipelineSpec"]
    if not spec.get("root", {}).get("dag", {}).get("tasks"):
        raise invalid("PipelineJob.pipeline_spec.root.dag.tasks must not be empty.")
    return spec


def _read_gcs_json(uri: str) -> dict[str, Any]:
    import os

    if not os.environ.get("STORAGE_EMULATOR_HOST"):
        raise failed_precondition("template_uri needs the storage emulator: STORAGE_EMULATOR_HOST is not set")
    from google.api_core import exceptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.storage import Client

    bucket, _, path = uri[len("gs://") :].partition("/")
    client = Client(project="emulator", credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]
    try:
        data: dict[str, Any] = json.loads(client.bucket(bucket).blob(path).download_as_bytes())
    except exceptions.NotFound as error:
        raise not_found(f"template_uri {uri} not found") from error
    return data


def _task_order(spec: dict[str, Any]) -> list[str]:
    tasks: dict[str, Any] = spec["root"]["dag"]["tasks"]
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            raise invalid(f"pipeline tasks form a cycle through {name!r}")
        if name not in tasks:
            raise invalid(f"pipeline task depends on unknown task {name!r}")
        visiting.add(name)
        for dependency in tasks[name].get("dependentTasks", []):
            visit(dependency)
        visiting.discard(name)
        order.append(name)

    for name in sorted(tasks):
        visit(name)
    return order


def _placeholders(text: str, inputs: dict[str, Any], job: Any, task_name: str) -> str:
    def replace(found: re.Match[str]) -> str:
        expr = found.group("expr")
        parameter = re.fullmatch(r"\.inputs\.parameters\['([^']+)'\]", expr)
        if parameter:
            value = inputs.get(parameter.group(1))
            return value if isinstance(value, str) else json.dumps(value)
        if expr == ".pipeline_job_name":
            return str(job.name.rsplit("/", 1)[-1])
        if expr == ".pipeline_job_resource_name":
            return str(job.name)
        if expr == ".pipeline_task_name":
            return task_name
        raise ValueError(f"placeholder {{{{${expr}}}}} is not supported by the emulator")

    return _PLACEHOLDER.sub(replace, text)
