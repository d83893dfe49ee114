"""An in-memory ``Builds`` that honours the port's contract (``tests/contract/builds_contract.py``).

A build moves one status per observation — QUEUED, then WORKING, then its outcome — so callers polling with
:meth:`FakeBuilds.get` see the lifecycle they see on Cloud Build; :meth:`FakeBuilds.finish` ends a build at
once. What a build's steps *do* is decided by ``outcome`` (default: every step succeeds), a function of the
request, so a test scripts failures without a build server.
"""

from __future__ import annotations

import hashlib
import re
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from shared.ports.builds import (
    Build,
    BuildRequest,
    BuildStatus,
    BuiltImage,
    FailedStep,
    GitSource,
    request_problems,
    tag_problems,
)
from shared.ports.common import check
from shared.ports.errors import NotFound
from shared.ports.faults import Faults


@dataclass(frozen=True)
class FakeOutcome:
    """How a fake build ends: its status and, for a step failure, which step and exit code."""

    status: BuildStatus = BuildStatus.SUCCESS
    failing_step: int | None = None
    exit_code: int | None = None
    detail: str = ""


def always_succeeds(_request: BuildRequest) -> FakeOutcome:
    return FakeOutcome()


@dataclass
class _Record:
    build: Build
    request: BuildRequest
    outcome: FakeOutcome
    order: int
    observations: int = 0


_SUBSTITUTION = re.compile(r"\$(\$|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")
_SHA = re.compile(r"[0-9a-f]{40}")


@dataclass
class FakeBuilds:
    project: str = "fake-project"
    outcome: Callable[[BuildRequest], FakeOutcome] = always_succeeds
    faults: Faults = field(default_factory=Faults)
    started: list[BuildRequest] = field(default_factory=list)  # every accepted request, in order
    _records: dict[str, _Record] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def start(self, request: BuildRequest, *, timeout: float | None = None) -> str:
        self.faults.take("start")
        check("build request", request_problems(request))
        build_id = str(uuid.uuid4())
        revision = request.source.revision if isinstance(request.source, GitSource) else ""
        values = {"PROJECT_ID": self.project, "BUILD_ID": build_id, "LOCATION": "global"}
        if _SHA.fullmatch(revision):
            values.update(COMMIT_SHA=revision, SHORT_SHA=revision[:7], REVISION_ID=revision)
        values.update(request.substitutions)
        problems: list[str] = []
        used: set[str] = set()
        loose = request.allow_loose_substitutions

        def apply(text: str) -> str:
            return _substitute(text, values, loose, used, problems)

        images = tuple(apply(image) for image in request.images)
        tags = tuple(apply(tag) for tag in request.tags)
        for step in request.steps:
            for text in (step.name, *step.args, *step.env, step.dir, step.entrypoint):
                apply(text)
        if not loose:
            # Only user substitutions must be used: a built-in a build sets (COMMIT_SHA...) need not be.
            problems.extend(
                f"key {key!r} in the substitution data is not matched in the template"
                for key in request.substitutions
                if key.startswith("_") and key not in used
            )
        check("build request", problems)
        substitutions = dict(request.substitutions)
        if _SHA.fullmatch(revision):
            substitutions.update(COMMIT_SHA=revision, SHORT_SHA=revision[:7], REVISION_ID=revision)
        build = Build(
            id=build_id,
            status=BuildStatus.QUEUED,
            tags=tags,
            substitutions=substitutions,
            log_url=f"fake://builds/{build_id}/log",
            step_statuses=tuple(BuildStatus.QUEUED for _ in request.steps),
            source_revision=revision if _SHA.fullmatch(revision) else "",
            create_time=datetime.now(UTC),
        )
        with self._lock:
            self.started.append(request)
            self._records[build_id] = _Record(
                build=build,
                request=replace(request, images=images),
                outcome=self.outcome(request),
                order=len(self._records),
            )
        return build_id

    def get(self, build_id: str, *, timeout: float | None = None) -> Build:
        self.faults.take("get")
        with self._lock:
            record = self._record(build_id)
            record.observations += 1
            if record.observations == 2:
                self._work(record)
            elif record.observations >= 3:
                self._end(record)
            return record.build

    def find_by_tags(
        self, tags: Sequence[str], *, limit: int = 50, timeout: float | None = None
    ) -> list[Build]:
        self.faults.take("find_by_tags")
        check("tags", tag_problems(tags))
        with self._lock:
            records = sorted(self._records.values(), key=lambda record: record.order, reverse=True)
            return [r.build for r in records if set(tags) <= set(r.build.tags)][:limit]

    # -- test controls --------------------------------------------------------------------------------------

    def finish(self, build_id: str, outcome: FakeOutcome | None = None) -> Build:
        """End the build now (with ``outcome`` instead of the scripted one, if given)."""
        with self._lock:
            record = self._record(build_id)
            if outcome is not None:
                record.outcome = outcome
            self._end(record)
            return record.build

    # -- internals -------------------------------------------------------------------------------------------

    def _record(self, build_id: str) -> _Record:
        record = self._records.get(build_id)
        if record is None:
            raise NotFound(f'build "{build_id}" not found')
        return record

    def _work(self, record: _Record) -> None:
        if record.build.status is BuildStatus.QUEUED:
            record.build = replace(
                record.build,
                status=BuildStatus.WORKING,
                start_time=datetime.now(UTC),
                step_statuses=(BuildStatus.WORKING, *record.build.step_statuses[1:]),
            )

    def _end(self, record: _Record) -> None:
        if record.build.status.terminal:
            return
        self._work(record)
        outcome = record.outcome
        steps = record.request.steps
        failing: FailedStep | None = None
        if outcome.status is BuildStatus.SUCCESS:
            statuses = [BuildStatus.SUCCESS] * len(steps)
        elif outcome.failing_step is not None and 0 <= outcome.failing_step < len(steps):
            # Steps before the failing one succeeded; the ones after it never ran.
            at = outcome.failing_step
            step_status = (
                BuildStatus.TIMEOUT if outcome.status is BuildStatus.TIMEOUT else BuildStatus.FAILURE
            )
            statuses = (
                [BuildStatus.SUCCESS] * at + [step_status] + [BuildStatus.QUEUED] * (len(steps) - at - 1)
            )
            failing = FailedStep(at, steps[at].id, steps[at].name, outcome.exit_code, step_status)
        else:
            never_ran = (
                BuildStatus.CANCELLED if outcome.status is BuildStatus.CANCELLED else BuildStatus.QUEUED
            )
            statuses = [never_ran] * len(steps)
        images: tuple[BuiltImage, ...] = ()
        if outcome.status is BuildStatus.SUCCESS:
            images = tuple(
                BuiltImage(name, "sha256:" + hashlib.sha256(f"{record.build.id}/{name}".encode()).hexdigest())
                for name in record.request.images
            )
        detail = outcome.detail
        if not detail and failing is not None:
            detail = (
                f'Build step failure: build step {failing.index} "{failing.name}" failed: step exited with '
                f"non-zero status: {outcome.exit_code}"
            )
        record.build = replace(
            record.build,
            status=outcome.status,
            status_detail=detail,
            images=images,
            failing_step=failing,
            step_statuses=tuple(statuses),
            finish_time=datetime.now(UTC),
        )


def _substitute(
    text: str, values: Mapping[str, str], loose: bool, used: set[str], problems: list[str]
) -> str:
    def replace_one(match: re.Match[str]) -> str:
        if match.group(1) == "$":
            return "$"
        key = match.group("braced") or match.group("bare") or ""
        if key in values:
            used.add(key)
            return values[key]
        if not loose:
            problems.append(f"key in the template {key!r} is not a valid built-in substitution")
        return ""

    return _SUBSTITUTION.sub(replace_one, text)
