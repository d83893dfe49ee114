"""The ``Builds`` port: start Cloud Build builds without waiting, read them back, find them by tag.

A build is started from a :class:`BuildRequest` (the content of a ``cloudbuild.yaml`` plus the source: a git
repository at a revision — a ``file://`` URL works against the local emulator — or a Cloud Storage archive)
and :meth:`Builds.start` answers with the build id as soon as Cloud Build has accepted it: a function never
waits on the build's operation. Completion is learned from the ``cloud-builds`` topic or by
:meth:`Builds.get`.
Tags make builds findable (:meth:`Builds.find_by_tags`), which is how a caller makes "start a build" safe to
redo: look for the build tagged with the work's key first.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from shared.ports.common import Budget, as_utc, check, read_retry
from shared.ports.errors import boundary


class BuildStatus(enum.StrEnum):
    """Cloud Build's statuses (the values are Cloud Build's own names)."""

    UNKNOWN = "STATUS_UNKNOWN"
    PENDING = "PENDING"
    QUEUED = "QUEUED"
    WORKING = "WORKING"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    TIMEOUT = "TIMEOUT"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"

    @property
    def terminal(self) -> bool:
        """The build will not change any more."""
        return self in _TERMINAL

    @property
    def failed(self) -> bool:
        """Ended without success (failure, timeout, internal error, cancelled, expired)."""
        return self.terminal and self is not BuildStatus.SUCCESS


_TERMINAL = frozenset(
    {
        BuildStatus.SUCCESS,
        BuildStatus.FAILURE,
        BuildStatus.INTERNAL_ERROR,
        BuildStatus.TIMEOUT,
        BuildStatus.CANCELLED,
        BuildStatus.EXPIRED,
    }
)


@dataclass(frozen=True)
class BuildStep:
    name: str  # the builder image, e.g. gcr.io/cloud-builders/docker
    args: tuple[str, ...] = ()
    id: str = ""
    entrypoint: str = ""
    dir: str = ""
    env: tuple[str, ...] = ()  # KEY=VALUE
    wait_for: tuple[str, ...] = ()
    script: str = ""
    timeout_seconds: float | None = None
    allow_failure: bool = False


@dataclass(frozen=True)
class GitSource:
    """A git repository at ``revision`` (branch, tag or commit); ``dir`` is the build's folder inside it."""

    url: str
    revision: str
    dir: str = ""


@dataclass(frozen=True)
class StorageSource:
    """A ``.tar.gz`` in Cloud Storage (what ``gcloud builds submit`` uploads)."""

    bucket: str
    object: str
    generation: int | None = None


@dataclass(frozen=True)
class BuildRequest:
    steps: tuple[BuildStep, ...]
    images: tuple[str, ...] = ()
    substitutions: Mapping[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    source: GitSource | StorageSource | None = None
    timeout_seconds: float | None = None
    service_account: str = ""
    allow_loose_substitutions: bool = False
    #: ``options.logging`` (e.g. ``CLOUD_LOGGING_ONLY``, which Cloud Build requires of a build that runs as a
    #: user-specified service account); "" leaves Cloud Build's default.
    logging: str = ""

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any],
        *,
        source: GitSource | StorageSource | None = None,
        substitutions: Mapping[str, str] | None = None,
        tags: Sequence[str] = (),
    ) -> BuildRequest:
        """A request from a parsed ``cloudbuild.yaml``; ``substitutions`` and ``tags`` add to the file's."""
        problems: list[str] = []
        raw_steps = config.get("steps")
        steps: list[BuildStep] = []
        if not isinstance(raw_steps, list):
            problems.append("steps: a list of build steps is required")
            raw_steps = []
        for index, raw in enumerate(raw_steps):
            if not isinstance(raw, Mapping):
                problems.append(f"steps[{index}]: must be a mapping")
                continue
            steps.append(
                BuildStep(
                    name=str(raw.get("name", "")),
                    args=_strings(raw.get("args"), f"steps[{index}].args", problems),
                    id=str(raw.get("id", "")),
                    entrypoint=str(raw.get("entrypoint", "")),
                    dir=str(raw.get("dir", "")),
                    env=_strings(raw.get("env"), f"steps[{index}].env", problems),
                    wait_for=_strings(raw.get("waitFor"), f"steps[{index}].waitFor", problems),
                    script=str(raw.get("script", "")),
                    timeout_seconds=_duration(raw.get("timeout"), f"steps[{index}].timeout", problems),
                    allow_failure=bool(raw.get("allowFailure", False)),
                )
            )
        file_substitutions = config.get("substitutions") or {}
        if not isinstance(file_substitutions, Mapping):
            problems.append("substitutions: must be a mapping")
            file_substitutions = {}
        options = config.get("options") or {}
        if not isinstance(options, Mapping):
            problems.append("options: must be a mapping")
            options = {}
        loose = options.get("substitutionOption") == "ALLOW_LOOSE"
        logging = str(options.get("logging") or "")
        images = _strings(config.get("images"), "images", problems)
        file_tags = _strings(config.get("tags"), "tags", problems)
        build_timeout = _duration(config.get("timeout"), "timeout", problems)
        check("build config", problems)
        return cls(
            steps=tuple(steps),
            images=images,
            substitutions={
                **{str(k): str(v) for k, v in file_substitutions.items()},
                **(substitutions or {}),
            },
            tags=tuple(dict.fromkeys([*file_tags, *tags])),
            source=source,
            timeout_seconds=build_timeout,
            service_account=str(config.get("serviceAccount", "")),
            allow_loose_substitutions=loose,
            logging=logging,
        )


@dataclass(frozen=True)
class BuiltImage:
    name: str
    digest: str  # sha256:...


@dataclass(frozen=True)
class FailedStep:
    index: int
    id: str
    name: str
    exit_code: int | None
    status: BuildStatus


@dataclass(frozen=True)
class Build:
    id: str
    status: BuildStatus
    status_detail: str = ""
    images: tuple[BuiltImage, ...] = ()
    tags: tuple[str, ...] = ()
    substitutions: Mapping[str, str] = field(default_factory=dict)
    log_url: str = ""
    failing_step: FailedStep | None = None
    step_statuses: tuple[BuildStatus, ...] = ()
    source_revision: str = ""  # the commit a git source resolved to ("" for other sources)
    create_time: datetime | None = None
    start_time: datetime | None = None
    finish_time: datetime | None = None

    def digest_of(self, image: str) -> str | None:
        """The pushed digest of ``image`` (its name as the build listed it), or None."""
        return next((built.digest for built in self.images if built.name == image), None)


class Builds(Protocol):
    def start(self, request: BuildRequest, *, timeout: float | None = None) -> str:
        """Start a build and return its id at once (never waits for the build)."""
        ...

    def get(self, build_id: str, *, timeout: float | None = None) -> Build:
        """The build now; :class:`~shared.ports.errors.NotFound` for an unknown id."""
        ...

    def find_by_tags(
        self, tags: Sequence[str], *, limit: int = 50, timeout: float | None = None
    ) -> list[Build]:
        """Builds carrying every one of ``tags``, newest first, at most ``limit``."""
        ...


# -- validation shared by the adapter and the fake (so both refuse the same requests the same way) ---------

_TAG = re.compile(r"[\w][\w.-]{0,127}")
_USER_KEY = re.compile(r"_[A-Z0-9_]+")
#: Built-in substitutions a manually started build may set itself, as ``gcloud builds submit
#: --substitutions=COMMIT_SHA=...`` does: they describe the source, which Cloud Build fills only for
#: triggered builds. (The same set the Cloud Build emulator accepts.)
#: Every built-in substitution Cloud Build defines (a config may reference them without passing them).
BUILTINS = frozenset(
    {
        "PROJECT_ID",
        "PROJECT_NUMBER",
        "BUILD_ID",
        "LOCATION",
        "TRIGGER_NAME",
        "TRIGGER_BUILD_CONFIG_PATH",
        "SERVICE_ACCOUNT_EMAIL",
        "SERVICE_ACCOUNT",
        "COMMIT_SHA",
        "SHORT_SHA",
        "REVISION_ID",
        "REPO_NAME",
        "REPO_FULL_NAME",
        "BRANCH_NAME",
        "TAG_NAME",
        "REF_NAME",
    }
)
SETTABLE_BUILTINS = frozenset(
    {
        "COMMIT_SHA",
        "SHORT_SHA",
        "REVISION_ID",
        "REPO_NAME",
        "REPO_FULL_NAME",
        "BRANCH_NAME",
        "TAG_NAME",
        "REF_NAME",
    }
)
#: Cloud Build's ``options.logging`` modes.
LOGGING_MODES = frozenset(
    {"LOGGING_UNSPECIFIED", "LEGACY", "GCS_ONLY", "STACKDRIVER_ONLY", "CLOUD_LOGGING_ONLY", "NONE"}
)


def tag_problems(tags: Sequence[str]) -> list[str]:
    return [f"tags: {tag!r} must match [\\w][\\w.-]{{0,127}}" for tag in tags if not _TAG.fullmatch(tag)]


def request_problems(request: BuildRequest) -> list[str]:
    """Every reason Cloud Build would refuse ``request`` before running it."""
    problems: list[str] = []
    if not request.steps:
        problems.append("steps: at least one build step is required")
    seen: set[str] = set()
    for index, step in enumerate(request.steps):
        where = f"steps[{index}]"
        if not step.name:
            problems.append(f"{where}.name: the builder image is required")
        if step.script and step.args:
            problems.append(f"{where}: script and args are mutually exclusive")
        for name in step.wait_for:
            if name != "-" and name not in seen:
                problems.append(f"{where}.waitFor: {name!r} is not the id of an earlier step")
        if step.id:
            if step.id in seen:
                problems.append(f"{where}.id: duplicate step id {step.id!r}")
            seen.add(step.id)
        for item in step.env:
            if "=" not in item:
                problems.append(f"{where}.env: {item!r} is not KEY=VALUE")
    problems.extend(tag_problems(request.tags))
    for key in request.substitutions:
        if not (_USER_KEY.fullmatch(key) or key in SETTABLE_BUILTINS):
            problems.append(
                f"substitutions: {key!r} must start with '_' and use A-Z, 0-9 and '_', or be one of the "
                f"built-ins a build may set ({', '.join(sorted(SETTABLE_BUILTINS))})"
            )
    if request.logging and request.logging not in LOGGING_MODES:
        problems.append(
            f"options.logging: {request.logging!r} is not one of {', '.join(sorted(LOGGING_MODES))}"
        )
    if isinstance(request.source, GitSource) and not (request.source.url and request.source.revision):
        problems.append("source: a git source needs a url and a revision")
    if isinstance(request.source, StorageSource) and not (request.source.bucket and request.source.object):
        problems.append("source: a storage source needs a bucket and an object")
    if request.timeout_seconds is not None and request.timeout_seconds <= 0:
        problems.append("timeout: must be positive")
    return problems


def _strings(value: Any, where: str, problems: list[str]) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        problems.append(f"{where}: must be a list")
        return ()
    return tuple(str(item) for item in value)


def _duration(value: Any, where: str, problems: list[str]) -> float | None:
    if value is None or value == "":
        return None
    text = str(value)
    try:
        return float(text.removesuffix("s"))
    except ValueError:
        problems.append(f"{where}: {text!r} is not a duration in seconds such as '600s'")
        return None


# -- the real adapter ---------------------------------------------------------------------------------------


class CloudBuildBuilds:
    """``Builds`` over ``cloudbuild_v1.CloudBuildClient`` (the emulator when ``CLOUDBUILD_EMULATOR_HOST``
    is set); the client is made on first use."""

    def __init__(self, project: str, location: str = "global", client: Any | None = None) -> None:
        self.project = project
        self.location = location
        self._client = client

    def _api(self) -> Any:
        if self._client is None:
            from shared import clients

            self._client = clients.cloud_build()
        return self._client

    def _scope(self) -> dict[str, str]:
        if self.location == "global":
            return {"project_id": self.project}
        return {"project_id": self.project, "parent": f"projects/{self.project}/locations/{self.location}"}

    def start(self, request: BuildRequest, *, timeout: float | None = None) -> str:
        check("build request", request_problems(request))
        budget = Budget(timeout)
        with boundary("starting a Cloud Build build"):
            # Not retried here: CreateBuild is not idempotent; callers dedupe by tag (find_by_tags).
            operation = self._api().create_build(
                request={**self._scope(), "build": _build_body(request)},
                timeout=budget.left("starting a build"),
                retry=None,
            )
            build_id = str(operation.metadata.build.id)
        return build_id

    def get(self, build_id: str, *, timeout: float | None = None) -> Build:
        budget = Budget(timeout)
        seconds = budget.left("reading a build")
        if self.location == "global":
            request = {"project_id": self.project, "id": build_id}
        else:
            request = {"name": f"projects/{self.project}/locations/{self.location}/builds/{build_id}"}
        with boundary(f"reading build {build_id}"):
            pb = self._api().get_build(request=request, timeout=seconds, retry=read_retry(seconds))
        return _to_build(pb)

    def find_by_tags(
        self, tags: Sequence[str], *, limit: int = 50, timeout: float | None = None
    ) -> list[Build]:
        check("tags", tag_problems(tags))
        budget = Budget(timeout)
        query = " AND ".join(f'tags="{tag}"' for tag in tags)
        found: list[Build] = []
        with boundary(f"listing builds tagged {list(tags)}"):
            seconds = budget.left("listing builds")
            pager = self._api().list_builds(
                request={**self._scope(), "filter": query, "page_size": min(limit, 100)},
                timeout=seconds,
                retry=read_retry(seconds),
            )
            for pb in pager:
                found.append(_to_build(pb))
                if len(found) >= limit:
                    break
        return found


def _build_body(request: BuildRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "steps": [_step_body(step) for step in request.steps],
        "images": list(request.images),
        "substitutions": dict(request.substitutions),
        "tags": list(request.tags),
    }
    if isinstance(request.source, GitSource):
        body["source"] = {
            "git_source": {
                "url": request.source.url,
                "revision": request.source.revision,
                "dir_": request.source.dir,
            }
        }
    elif isinstance(request.source, StorageSource):
        storage: dict[str, Any] = {"bucket": request.source.bucket, "object_": request.source.object}
        if request.source.generation:
            storage["generation"] = request.source.generation
        body["source"] = {"storage_source": storage}
    if request.timeout_seconds:
        body["timeout"] = {"seconds": int(request.timeout_seconds)}
    if request.service_account:
        body["service_account"] = request.service_account
    options: dict[str, str] = {}
    if request.allow_loose_substitutions:
        options["substitution_option"] = "ALLOW_LOOSE"
    if request.logging:
        options["logging"] = request.logging
    if options:
        body["options"] = options
    return body


def _step_body(step: BuildStep) -> dict[str, Any]:
    body: dict[str, Any] = {"name": step.name, "args": list(step.args)}
    optional: dict[str, Any] = {
        "id": step.id,
        "entrypoint": step.entrypoint,
        "dir_": step.dir,
        "env": list(step.env),
        "wait_for": list(step.wait_for),
        "script": step.script,
        "allow_failure": step.allow_failure,
    }
    body.update({key: value for key, value in optional.items() if value})
    if step.timeout_seconds:
        body["timeout"] = {"seconds": int(step.timeout_seconds)}
    return body


def _status(value: Any) -> BuildStatus:
    name = getattr(value, "name", str(value))
    try:
        return BuildStatus(name)
    except ValueError:
        return BuildStatus.UNKNOWN


def _to_build(pb: Any) -> Build:
    step_statuses = tuple(_status(step.status) for step in pb.steps)
    failing: FailedStep | None = None
    for index, step in enumerate(pb.steps):
        status = step_statuses[index]
        if status in (BuildStatus.FAILURE, BuildStatus.TIMEOUT) and not step.allow_failure:
            exit_code = int(step.exit_code) if "exit_code" in step else None
            failing = FailedStep(index, step.id, step.name, exit_code, status)
            break
    provenance = pb.source_provenance
    revision = ""
    if "resolved_git_source" in provenance:
        revision = provenance.resolved_git_source.revision
    return Build(
        id=pb.id,
        status=_status(pb.status),
        status_detail=pb.status_detail,
        images=tuple(BuiltImage(image.name, image.digest) for image in pb.results.images),
        tags=tuple(pb.tags),
        substitutions=dict(pb.substitutions),
        log_url=pb.log_url,
        failing_step=failing,
        step_statuses=step_statuses,
        source_revision=revision,
        create_time=as_utc(pb.create_time),
        start_time=as_utc(pb.start_time),
        finish_time=as_utc(pb.finish_time),
    )
