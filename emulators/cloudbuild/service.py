"""The Cloud Build API (``google.devtools.cloudbuild.v1.CloudBuild``): builds, their lifecycle and operations.

Served: CreateBuild, GetBuild, ListBuilds (filter, paging), CancelBuild, RetryBuild, for global
(``projects/P/builds/ID``, name ``projects/P/locations/global/builds/ID``) and regional
(``projects/P/locations/L/builds/ID``) builds. The other methods of the API answer UNIMPLEMENTED.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.cloud.devtools.cloudbuild_v1.services.cloud_build.transports.rest_base import (
    _BaseCloudBuildRestTransport,
)
from google.cloud.devtools.cloudbuild_v1.types import cloudbuild
from google.longrunning import operations_pb2

from emulators.apiserver.errors import ApiError, failed_precondition, invalid, not_found
from emulators.apiserver.filtering import compile_filter
from emulators.apiserver.messages import to_dict
from emulators.apiserver.operations import operation
from emulators.apiserver.paging import page
from emulators.apiserver.server import AdminRequest, ApiServer
from emulators.cloudbuild import sources
from emulators.cloudbuild.buildlog import BuildLog
from emulators.cloudbuild.notify import BuildNotifier
from emulators.cloudbuild.steps import StepError, StepSpec, parse_env, plan_step
from emulators.cloudbuild.substitutions import Substituter, SubstitutionError, builtin_values, validate_keys
from emulators.common.localrun import LocalProcess, RunError, shim_dir
from emulators.common.registry import LocalRegistry, RegistryError

log = logging.getLogger("emulators.cloudbuild")

SERVICE = "google.devtools.cloudbuild.v1.CloudBuild"
Status: Any = cloudbuild.Build.Status
FailureType: Any = cloudbuild.Build.FailureInfo.FailureType
TERMINAL = {
    Status.SUCCESS,
    Status.FAILURE,
    Status.INTERNAL_ERROR,
    Status.TIMEOUT,
    Status.CANCELLED,
    Status.EXPIRED,
}
DEFAULT_TIMEOUT = dt.timedelta(minutes=10)
DEFAULT_QUEUE_TTL = dt.timedelta(hours=1)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _copy(build: cloudbuild.Build) -> cloudbuild.Build:
    copied: cloudbuild.Build = cloudbuild.Build.deserialize(cloudbuild.Build.serialize(build))
    return copied


def _seconds(duration: Any) -> float | None:
    if duration is None:
        return None
    seconds = duration.total_seconds() if isinstance(duration, dt.timedelta) else float(duration)
    return seconds if seconds > 0 else None


@dataclass
class Durations:
    queued_seconds: float = 0.3  # time a build stays QUEUED
    step_seconds: float = 0.0  # minimum duration of each step (to watch WORKING)


@dataclass
class BuildRecord:
    build: cloudbuild.Build
    location: str
    directory: Path
    request: cloudbuild.Build  # the build as requested (before substitution), for RetryBuild
    stop: threading.Event = field(default_factory=threading.Event)
    processes: set[LocalProcess] = field(default_factory=set)
    forced_failure: str | None = None
    done: threading.Event = field(default_factory=threading.Event)
    log: BuildLog = field(init=False)

    def __post_init__(self) -> None:
        self.log = BuildLog(self.directory / "build.log")

    @property
    def terminal(self) -> bool:
        return self.build.status in TERMINAL


class CloudBuildService:
    def __init__(self, server: ApiServer, project: str, state_dir: Path, registry: LocalRegistry) -> None:
        self.server = server
        self.project = project
        self.state_dir = state_dir
        self.registry = registry
        self.durations = Durations()
        self.notifier = BuildNotifier()
        self.shims = shim_dir(state_dir)
        self._lock = threading.RLock()
        self._builds: dict[tuple[str, str, str], BuildRecord] = {}  # (project, location, id)
        self._fail_next: list[str] = []
        self._register()

    # -- registration -------------------------------------------------------------------------------------

    def _register(self) -> None:
        base = _BaseCloudBuildRestTransport
        from emulators.apiserver.routing import rest_rules

        handlers: dict[str, tuple[type, type, Callable[[Any], Any]]] = {
            "CreateBuild": (cloudbuild.CreateBuildRequest, operations_pb2.Operation, self.create_build),
            "GetBuild": (cloudbuild.GetBuildRequest, cloudbuild.Build, self.get_build),
            "ListBuilds": (cloudbuild.ListBuildsRequest, cloudbuild.ListBuildsResponse, self.list_builds),
            "CancelBuild": (cloudbuild.CancelBuildRequest, cloudbuild.Build, self.cancel_build),
            "RetryBuild": (cloudbuild.RetryBuildRequest, operations_pb2.Operation, self.retry_build),
        }
        for name, (request_type, response_type, handler) in handlers.items():
            self.server.add_method(
                SERVICE, name, request_type, response_type, handler, rest_rules(base, name)
            )
        self.server.add_unimplemented(SERVICE, base, set(handlers), "Cloud Build")
        self.server.add_operations(("v1",))
        self.server.on_reset(self.reset)
        self.server.on_shutdown(self.shutdown)
        self.server.add_health_info(self.notifier.health)
        self.server.add_health_info(
            lambda: {"registry": str(self.registry.root), "builds": len(self._builds)}
        )
        self.server.add_admin("POST", r"durations", self._admin_durations)
        self.server.add_admin("POST", r"builds/(?P<id>[^/:]+):fail", self._admin_fail)
        self.server.add_admin("POST", r"builds:fail-next", self._admin_fail_next)
        self.server.add_admin("GET", r"builds/(?P<id>[^/:]+)/log", self._admin_log)
        self.server.add_admin("GET", r"builds/(?P<id>[^/:]+)/steps/(?P<step>\d+)/log", self._admin_step_log)
        self.server.add_admin(
            "GET", r"images", lambda _: [image.to_json() for image in self.registry.list_images()]
        )
        self.server.add_admin("POST", r"flush", lambda _: {"flushed": self.notifier.flush()})

    # -- helpers ------------------------------------------------------------------------------------------

    def _location_of(self, parent: str, project_id: str) -> tuple[str, str]:
        """(project, location) from ``projects/P/locations/L`` or the project id (global)."""
        if parent:
            parts = parent.split("/")
            if len(parts) != 4 or parts[0] != "projects" or parts[2] != "locations":
                raise invalid(f"invalid parent {parent!r}: expected projects/PROJECT/locations/LOCATION")
            if project_id and project_id != parts[1]:
                raise invalid(f"project_id {project_id!r} does not match parent {parent!r}")
            return parts[1], parts[3]
        if not project_id:
            raise invalid("project_id is required")
        return project_id, "global"

    def _record(self, name: str, project_id: str, build_id: str) -> BuildRecord:
        if name:
            parts = name.split("/")
            if len(parts) != 6 or parts[0] != "projects" or parts[2] != "locations" or parts[4] != "builds":
                raise invalid(f"invalid build name {name!r}")
            key = (parts[1], parts[3], parts[5])
        else:
            if not project_id or not build_id:
                raise invalid("project_id and id are required")
            key = (project_id, "global", build_id)
        with self._lock:
            record = self._builds.get(key)
        if record is None:
            raise not_found(f'Build "{key[2]}" not found.')
        return record

    def snapshot(self, record: BuildRecord) -> cloudbuild.Build:
        with self._lock:
            return _copy(record.build)

    def _publish(self, record: BuildRecord) -> None:
        self.notifier.publish(record.build.project_id, to_dict(record.build))

    def _set_status(self, record: BuildRecord, status: Any) -> None:
        with self._lock:
            record.build.status = status
            self._publish(record)

    def _finish(
        self,
        record: BuildRecord,
        status: Any,
        detail: str = "",
        failure: tuple[Any, str] | None = None,
    ) -> bool:
        """Move to a terminal status once; False when the build had already ended."""
        with self._lock:
            if record.terminal:
                return False
            now = _now()
            build = record.build
            build.status = status
            build.status_detail = detail
            build.finish_time = now
            if failure is not None:
                build.failure_info = cloudbuild.Build.FailureInfo(type_=failure[0], detail=failure[1])
            if "BUILD" not in build.timing and build.start_time:
                build.timing["BUILD"] = cloudbuild.TimeSpan(start_time=build.start_time, end_time=now)
            self._publish(record)
        record.stop.set()
        self._log(record, f"DONE {status.name}{': ' + detail if detail else ''}")
        record.done.set()
        return True

    def _kill(self, record: BuildRecord) -> None:
        with self._lock:
            processes = list(record.processes)
        for process in processes:
            process.cancel()

    def _log(self, record: BuildRecord, line: str) -> None:
        record.log.write(line)

    # -- RPCs ---------------------------------------------------------------------------------------------

    def create_build(self, request: cloudbuild.CreateBuildRequest) -> operations_pb2.Operation:
        project, location = self._location_of(request.parent, request.project_id)
        return self._create(project, location, request.build)

    def _create(self, project: str, location: str, requested: cloudbuild.Build) -> operations_pb2.Operation:
        build = _copy(requested)
        _validate(build)
        build_id = str(uuid.uuid4())
        source_subs: dict[str, str] = {}
        if "git_source" in build.source:
            try:
                resolved = sources.resolve_git(build.source.git_source.url, build.source.git_source.revision)
                source_subs = resolved.substitutions
            except sources.SourceError:
                source_subs = {}  # the fetch fails the build later, as Cloud Build reports it
        _apply_substitutions(build, project, build_id, location, source_subs)
        now = _now()
        build.id = build_id
        build.project_id = project
        build.name = f"projects/{project}/locations/{location}/builds/{build_id}"
        build.status = Status.QUEUED
        build.create_time = now
        build.log_url = f"{self.server.base_url}/_emulator/builds/{build_id}/log"
        if not build.timeout:
            build.timeout = DEFAULT_TIMEOUT
        if not build.queue_ttl:
            build.queue_ttl = DEFAULT_QUEUE_TTL
        for step in build.steps:
            step.status = Status.QUEUED
        directory = self.state_dir / "builds" / build_id
        directory.mkdir(parents=True, exist_ok=True)
        record = BuildRecord(build=build, location=location, directory=directory, request=_copy(requested))
        with self._lock:
            if self._fail_next:
                record.forced_failure = self._fail_next.pop(0)
            self._builds[(project, location, build_id)] = record
            self._publish(record)
        self._log(record, f"starting build {build_id}")
        name = (
            f"operations/build/{project}/{base64.urlsafe_b64encode(build_id.encode()).decode().rstrip('=')}"
            if location == "global"
            else f"projects/{project}/locations/{location}/operations/{uuid.uuid4()}"
        )
        threading.Thread(target=self._run, args=(record,), name=f"build-{build_id[:8]}", daemon=True).start()
        return self.server.operations.add(name, lambda: self._render_operation(name, record))

    def _render_operation(self, name: str, record: BuildRecord) -> operations_pb2.Operation:
        build = self.snapshot(record)
        metadata = cloudbuild.BuildOperationMetadata(build=build)
        if build.status not in TERMINAL:
            return operation(name, metadata=metadata)
        if build.status == Status.SUCCESS:
            return operation(name, metadata=metadata, done=True, response=build)
        code = {Status.CANCELLED: "CANCELLED", Status.TIMEOUT: "DEADLINE_EXCEEDED"}.get(
            build.status, "UNKNOWN"
        )
        message = build.status_detail or f"Build {build.status.name.lower()}; check build logs for details"
        return operation(name, metadata=metadata, done=True, error=(code, message))

    def get_build(self, request: cloudbuild.GetBuildRequest) -> cloudbuild.Build:
        return self.snapshot(self._record(request.name, request.project_id, request.id))

    def list_builds(self, request: cloudbuild.ListBuildsRequest) -> cloudbuild.ListBuildsResponse:
        project, location = self._location_of(request.parent, request.project_id)
        predicate = compile_filter(request.filter)
        with self._lock:
            records = [
                record for (p, loc, _), record in self._builds.items() if p == project and loc == location
            ]
            builds = [_copy(record.build) for record in records]
        builds.sort(key=lambda build: (build.create_time, build.id), reverse=True)
        matching = [build for build in builds if predicate(_filter_view(build))]
        items, token = page(matching, request.page_size, request.page_token, default_size=50)
        return cloudbuild.ListBuildsResponse(builds=items, next_page_token=token)

    def cancel_build(self, request: cloudbuild.CancelBuildRequest) -> cloudbuild.Build:
        record = self._record(request.name, request.project_id, request.id)
        with self._lock:
            if record.terminal:
                raise failed_precondition(
                    f"Build {record.build.id} cannot be cancelled: it is {record.build.status.name}"
                )
            for step in record.build.steps:
                if step.status in (Status.QUEUED, Status.WORKING):
                    step.status = Status.CANCELLED
        self._finish(record, Status.CANCELLED, "Build cancelled by request")
        self._kill(record)
        return self.snapshot(record)

    def retry_build(self, request: cloudbuild.RetryBuildRequest) -> operations_pb2.Operation:
        record = self._record(request.name, request.project_id, request.id)
        if not record.terminal:
            raise failed_precondition(f"Build {record.build.id} is still {record.build.status.name}")
        original = self.snapshot(record)
        retried = _copy(record.request)
        retried.substitutions.update(
            {k: v for k, v in original.substitutions.items() if k not in retried.substitutions}
        )
        project, location = original.project_id, record.location
        return self._create(project, location, retried)

    # -- execution ----------------------------------------------------------------------------------------

    def _run(self, record: BuildRecord) -> None:
        try:
            self._execute(record)
        except Exception as error:  # an emulator bug ends the build visibly, never silently
            log.exception("build %s crashed", record.build.id)
            self._finish(record, Status.INTERNAL_ERROR, f"emulator error: {error!r}")

    def _execute(self, record: BuildRecord) -> None:
        if record.stop.wait(self.durations.queued_seconds):
            return
        with self._lock:
            if record.terminal:
                return
            record.build.start_time = _now()
            record.build.status = Status.WORKING
            self._publish(record)
        started = time.monotonic()
        deadline = started + (_seconds(record.build.timeout) or DEFAULT_TIMEOUT.total_seconds())
        if record.forced_failure is not None:
            self._finish(record, Status.FAILURE, record.forced_failure)
            return
        workspace = record.directory / "workspace"
        if not self._fetch_source(record, workspace):
            return
        if not self._run_steps(record, workspace, deadline):
            return
        if time.monotonic() > deadline:
            self._finish(record, Status.TIMEOUT, "Build timeout exceeded")
            return
        if not self._push_images(record):
            return
        self._finish(record, Status.SUCCESS)

    def _fetch_source(self, record: BuildRecord, workspace: Path) -> bool:
        build = record.build
        start = _now()
        self._log(record, "FETCHSOURCE")
        try:
            if "storage_source" in build.source:
                storage = build.source.storage_source
                generation = sources.fetch_storage(
                    storage.bucket, storage.object_, storage.generation, workspace, build.project_id
                )
                with self._lock:
                    build.source_provenance.resolved_storage_source = cloudbuild.StorageSource(
                        bucket=storage.bucket, object_=storage.object_, generation=generation
                    )
            elif "git_source" in build.source:
                git = build.source.git_source
                clone = record.directory / "git"
                resolved = sources.fetch_git(git.url, git.revision, clone)
                target = clone / git.dir_ if git.dir_ else clone
                if not target.is_dir():
                    raise sources.SourceError(
                        f"git_source.dir {git.dir_!r} does not exist at {resolved.commit}"
                    )
                workspace.symlink_to(target.resolve(), target_is_directory=True)
                with self._lock:
                    build.source_provenance.resolved_git_source = cloudbuild.GitSource(
                        url=git.url, dir_=git.dir_, revision=resolved.commit
                    )
            else:
                workspace.mkdir(parents=True, exist_ok=True)
        except sources.SourceError as error:
            self._finish(
                record,
                Status.FAILURE,
                f"failed to fetch source: {error}",
                (FailureType.FETCH_SOURCE_FAILED, str(error)),
            )
            return False
        with self._lock:
            build.timing["FETCHSOURCE"] = cloudbuild.TimeSpan(start_time=start, end_time=_now())
        return not record.stop.is_set()

    def _run_steps(self, record: BuildRecord, workspace: Path, deadline: float) -> bool:
        steps = record.build.steps
        count = len(steps)
        ids = {step.id: index for index, step in enumerate(steps) if step.id}
        deps: list[list[int]] = []
        for index, step in enumerate(steps):
            if list(step.wait_for) == ["-"]:
                deps.append([])
            elif step.wait_for:
                deps.append([ids[name] for name in step.wait_for])
            else:
                deps.append(list(range(index)))
        done = [threading.Event() for _ in range(count)]
        succeeded = [False] * count
        outcome: dict[str, Any] = {}
        self._log(record, "BUILD")

        def worker(index: int) -> None:
            try:
                for dep in deps[index]:
                    done[dep].wait()
                if record.stop.is_set() or not all(succeeded[dep] for dep in deps[index]):
                    return
                result = self._run_step(record, index, workspace, deadline)
                succeeded[index] = result is None
                if result is not None and "status" not in outcome:
                    outcome.update(result)
                    record.stop.set()
                    self._kill(record)
            finally:
                done[index].set()

        threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if "status" in outcome:
            self._finish(record, outcome["status"], outcome["detail"], outcome.get("failure"))
            return False
        if record.forced_failure is not None:
            self._finish(record, Status.FAILURE, record.forced_failure)
            return False
        return not record.terminal

    def _step_env(self, record: BuildRecord, step: cloudbuild.BuildStep) -> dict[str, str]:
        build = record.build
        env = {
            "PROJECT_ID": build.project_id,
            "BUILD_ID": build.id,
            "LOCATION": record.location,
            "HOME": str(record.directory / "home"),
            "BUILDER_OUTPUT": str(record.directory / "builder-output"),
            "LOCAL_REGISTRY_DIR": str(self.registry.root),
        }
        (record.directory / "home").mkdir(exist_ok=True)
        (record.directory / "builder-output").mkdir(exist_ok=True)
        if build.options.automap_substitutions or step.automap_substitutions:
            env.update(build.substitutions)
        env.update(parse_env(build.options.env, "build.options.env"))
        env.update(parse_env(step.env, "build.steps.env"))
        return env

    def _run_step(
        self, record: BuildRecord, index: int, workspace: Path, deadline: float
    ) -> dict[str, Any] | None:
        """Run one step; None on success, else the build outcome it causes."""
        step = record.build.steps[index]
        label = f"Step #{index}{f' - {step.id!r}' if step.id else ''}".replace("'", '"')
        start = _now()
        began = time.monotonic()
        with self._lock:
            step.status = Status.WORKING
            step.timing = cloudbuild.TimeSpan(start_time=start)
        log_path = record.directory / f"step-{index}.log"
        spec = StepSpec(
            index=index,
            name=step.name,
            args=list(step.args),
            entrypoint=step.entrypoint,
            dir=step.dir_,
            env={},
            script=step.script,
        )
        outcome = None
        status = Status.SUCCESS
        result: dict[str, Any] | None = None
        limit = 0.0
        # The step's output reaches the build log while it runs, as Cloud Build streams it.
        with record.log.follow(log_path, label):
            try:
                invocation = plan_step(
                    spec, workspace, record.directory, self.registry, self.shims, self._step_env(record, step)
                )
                step_timeout = _seconds(step.timeout)
                remaining = max(deadline - time.monotonic(), 0.01)
                limit = min(step_timeout, remaining) if step_timeout else remaining
                process = LocalProcess(invocation, log_path)
                with self._lock:
                    if record.stop.is_set():
                        raise _Stopped()
                    record.processes.add(process)
                try:
                    process.start()
                    outcome = process.wait(limit)
                finally:
                    with self._lock:
                        record.processes.discard(process)
                minimum = self.durations.step_seconds - (time.monotonic() - began)
                if minimum > 0 and outcome.ok:
                    record.stop.wait(minimum)
            except _Stopped:
                status = Status.CANCELLED
            except (StepError, RunError, RegistryError, ValueError) as error:
                log_path.parent.mkdir(parents=True, exist_ok=True)
                with open(log_path, "a") as handle:
                    handle.write(f"{error}\n")
                status = Status.FAILURE
                detail = f"Build step failure: {error}"
                result = {
                    "status": Status.FAILURE,
                    "detail": detail,
                    "failure": (FailureType.USER_BUILD_STEP, detail),
                }
        if outcome is not None:
            allowed = set(step.allow_exit_codes) | {0}
            if outcome.cancelled:
                status = Status.CANCELLED
            elif outcome.timed_out:
                status = Status.TIMEOUT
                if time.monotonic() >= deadline:
                    result = {"status": Status.TIMEOUT, "detail": "Build timeout exceeded"}
                else:
                    detail = (
                        f'Build step failure: build step {index} "{step.name}" timed out after {limit:.0f}s'
                    )
                    result = {
                        "status": Status.FAILURE,
                        "detail": detail,
                        "failure": (FailureType.USER_BUILD_STEP, detail),
                    }
            elif outcome.exit_code in allowed:
                status = Status.SUCCESS
            else:
                status = Status.FAILURE
                detail = (
                    f'Build step failure: build step {index} "{step.name}" failed: step exited with non-zero '
                    f"status: {outcome.exit_code}"
                )
                if not step.allow_failure:
                    result = {
                        "status": Status.FAILURE,
                        "detail": detail,
                        "failure": (FailureType.USER_BUILD_STEP, detail),
                    }
        with self._lock:
            step.status = status
            if outcome is not None and outcome.exit_code is not None:
                step.exit_code = outcome.exit_code
            step.timing = cloudbuild.TimeSpan(start_time=start, end_time=_now())
        if status == Status.CANCELLED and result is None:
            return None if record.stop.is_set() else {"status": Status.CANCELLED, "detail": "step cancelled"}
        return result

    def _push_images(self, record: BuildRecord) -> bool:
        build = record.build
        if not build.images:
            return True
        start = _now()
        self._log(record, "PUSH")
        built: list[cloudbuild.BuiltImage] = []
        missing = []
        for name in build.images:
            try:
                image = self.registry.resolve(name)
            except RegistryError:
                missing.append(name)
                continue
            self._log(record, f"Pushing {name}\n{name}: digest: {image.digest}")
            built.append(
                cloudbuild.BuiltImage(
                    name=name,
                    digest=image.digest,
                    push_timing=cloudbuild.TimeSpan(start_time=start, end_time=_now()),
                )
            )
        if missing:
            detail = f"failed to find one or more images after execution of build steps: {missing}"
            self._finish(record, Status.FAILURE, detail, (FailureType.PUSH_IMAGE_NOT_FOUND, detail))
            return False
        with self._lock:
            build.results.images.extend(built)
            build.timing["PUSH"] = cloudbuild.TimeSpan(start_time=start, end_time=_now())
        return True

    # -- admin ----------------------------------------------------------------------------------------------

    def _admin_durations(self, request: AdminRequest) -> Any:
        for key, value in request.body.items():
            if not hasattr(self.durations, key):
                raise invalid(f"unknown duration {key!r}; known: queued_seconds, step_seconds")
            setattr(self.durations, key, float(value))
        return vars(self.durations)

    def _find(self, build_id: str) -> BuildRecord:
        with self._lock:
            for (_, _, key), record in self._builds.items():
                if key == build_id:
                    return record
        raise not_found(f'Build "{build_id}" not found.')

    def _admin_fail(self, request: AdminRequest) -> Any:
        record = self._find(request.params["id"])
        message = str(request.body.get("message") or "forced failure (emulator fault injection)")
        with self._lock:
            if record.terminal:
                raise failed_precondition(
                    f"Build {record.build.id} already ended: {record.build.status.name}"
                )
            record.forced_failure = message
            for step in record.build.steps:
                if step.status in (Status.QUEUED, Status.WORKING):
                    step.status = Status.CANCELLED
        self._finish(record, Status.FAILURE, message)
        self._kill(record)
        return to_dict(self.snapshot(record))

    def _admin_fail_next(self, request: AdminRequest) -> Any:
        count = int(request.body.get("count", 1))
        message = str(request.body.get("message") or "forced failure (emulator fault injection)")
        with self._lock:
            self._fail_next.extend([message] * count)
            return {"pending": len(self._fail_next)}

    def _admin_log(self, request: AdminRequest) -> Any:
        record = self._find(request.params["id"])
        return _text(record.directory / "build.log")

    def _admin_step_log(self, request: AdminRequest) -> Any:
        record = self._find(request.params["id"])
        return _text(record.directory / f"step-{int(request.params['step'])}.log")

    # -- lifecycle ------------------------------------------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            records = list(self._builds.values())
            self._builds.clear()
            self._fail_next.clear()
        for record in records:
            record.stop.set()
            self._kill(record)
        self.durations = Durations()

    def shutdown(self) -> None:
        for record in list(self._builds.values()):
            record.stop.set()
        LocalProcess.kill_all()
        self.notifier.close()


class _Stopped(Exception):
    pass


def _text(path: Path) -> Any:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        text = ""
    from werkzeug.wrappers import Response

    return Response(text, mimetype="text/plain")


def _validate(build: cloudbuild.Build) -> None:
    if not build.steps:
        raise invalid("invalid value for 'build.steps': at least one build step is required")
    seen: set[str] = set()
    for index, step in enumerate(build.steps):
        where = f"build.steps[{index}]"
        if not step.name:
            raise invalid(f"invalid value for '{where}.name': the builder image name is required")
        if step.script and step.args:
            raise invalid(f"invalid value for '{where}': script and args are mutually exclusive")
        if step.secret_env:
            raise ApiError("UNIMPLEMENTED", f"{where}.secretEnv: secrets are not supported by the emulator")
        if step.volumes:
            raise ApiError("UNIMPLEMENTED", f"{where}.volumes are not supported by the emulator")
        for name in step.wait_for:
            if name != "-" and name not in seen:
                raise invalid(f"invalid value for '{where}.waitFor': step {name!r} is not an earlier step id")
        if step.id:
            if step.id in seen:
                raise invalid(f"invalid value for '{where}.id': duplicate step id {step.id!r}")
            seen.add(step.id)
        try:
            parse_env(step.env, f"{where}.env")
        except ValueError as error:
            raise invalid(str(error)) from error
    try:
        parse_env(build.options.env, "build.options.env")
    except ValueError as error:
        raise invalid(str(error)) from error
    for kind in ("repo_source", "storage_source_manifest", "connected_repository"):
        if kind in build.source:
            raise ApiError("UNIMPLEMENTED", f"source.{kind} is not supported by the Cloud Build emulator")
    if build.secrets or build.available_secrets.secret_manager or build.available_secrets.inline:
        raise ApiError("UNIMPLEMENTED", "build secrets are not supported by the Cloud Build emulator")
    if build.options.dynamic_substitutions:
        raise ApiError(
            "UNIMPLEMENTED", "options.dynamicSubstitutions is not supported by the Cloud Build emulator"
        )
    if build.artifacts.objects.paths or build.artifacts.python_packages or build.artifacts.maven_artifacts:
        raise ApiError(
            "UNIMPLEMENTED", "build artifacts (other than images) are not supported by the emulator"
        )
    timeout = _seconds(build.timeout) if build.timeout else None
    if build.timeout and timeout is None:
        raise invalid("invalid value for 'build.timeout': must be positive")


def _apply_substitutions(
    build: cloudbuild.Build, project: str, build_id: str, location: str, source_subs: dict[str, str]
) -> None:
    user = dict(build.substitutions)
    try:
        validate_keys(user)
    except SubstitutionError as error:
        raise invalid(str(error)) from error
    loose = build.options.substitution_option == cloudbuild.BuildOptions.SubstitutionOption.ALLOW_LOOSE
    values = builtin_values(
        project, build_id, location, user, source_subs, service_account=build.service_account
    )
    substituter = Substituter(values, user, loose)
    for step in build.steps:
        step.name = substituter.apply(step.name)
        step.args[:] = substituter.apply_all(step.args)
        step.env[:] = substituter.apply_all(step.env)
        step.dir_ = substituter.apply(step.dir_)
        step.entrypoint = substituter.apply(step.entrypoint)
        step.id = step.id
    build.images[:] = substituter.apply_all(build.images)
    build.tags[:] = substituter.apply_all(build.tags)
    build.options.env[:] = substituter.apply_all(build.options.env)
    try:
        substituter.check()
    except SubstitutionError as error:
        raise invalid(str(error)) from error
    for key in ("COMMIT_SHA", "SHORT_SHA", "REVISION_ID", "REPO_NAME", "BRANCH_NAME", "TAG_NAME", "REF_NAME"):
        if values.get(key) and key not in build.substitutions:
            build.substitutions[key] = values[key]


def _filter_view(build: cloudbuild.Build) -> dict[str, Any]:
    view = to_dict(build, proto_names=True)
    view["build_id"] = view.get("id", "")
    view["trigger_id"] = view.get("build_trigger_id", "")
    view["images"] = list(view.get("images", [])) + [
        image["name"] for image in view.get("results", {}).get("images", [])
    ]
    return view
