"""The ``Deployments`` port: Cloud Run services, their revisions and how traffic is split between them.

What a rollout needs and nothing more: read a service (revisions with their readiness, the traffic it was
asked for and the traffic it serves, tag URLs), create it with a first revision, deploy a revision with a
deterministic name at 0% behind a tag (the current split is pinned to named revisions first, so the new
revision never takes traffic by being "latest"), set a split, and read the served split back.

Mutations return once Cloud Run has accepted them, never waiting for a revision to become ready: a rollout
advances on ticks and reads the service again. Every update carries the service's ``etag``; when another
writer got in first the port raises :class:`~shared.ports.errors.Conflict` (transient: read again, then
decide again — never retry the same write blindly).
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from shared.errors import TransientError
from shared.ports.common import Budget, as_utc, check, label_problems, read_retry
from shared.ports.errors import AlreadyExists, NotFound, boundary


class RevisionState(enum.StrEnum):
    PENDING = "pending"  # starting (or not yet reconciled)
    READY = "ready"  # can serve traffic
    FAILED = "failed"  # will never serve (it did not start)


@dataclass(frozen=True)
class TrafficTarget:
    """A share of the service's traffic; ``revision=""`` means "the latest ready revision"."""

    revision: str
    percent: int
    tag: str = ""


@dataclass(frozen=True)
class TrafficStatus:
    """The traffic a revision actually serves, with its tag URL."""

    revision: str
    percent: int
    tag: str = ""
    uri: str = ""


@dataclass(frozen=True)
class RevisionSpec:
    name: str  # the full revision name: it must start with "<service>-" (see revision_name)
    image: str
    env: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Revision:
    name: str
    state: RevisionState
    message: str = ""
    image: str = ""
    env: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    create_time: datetime | None = None

    @property
    def ready(self) -> bool:
        return self.state is RevisionState.READY


@dataclass(frozen=True)
class Service:
    name: str  # the short name (service id)
    resource_name: str  # projects/P/locations/L/services/NAME
    uri: str
    etag: str
    ready: bool  # the last change is fully in effect
    reconciling: bool
    message: str = ""  # why it is not ready, when it failed
    latest_ready_revision: str = ""
    latest_created_revision: str = ""
    traffic: tuple[TrafficTarget, ...] = ()  # as asked for
    traffic_statuses: tuple[TrafficStatus, ...] = ()  # as served
    revisions: tuple[Revision, ...] = ()  # oldest first

    def revision(self, name: str) -> Revision | None:
        return next((revision for revision in self.revisions if revision.name == name), None)

    def percent_of(self, revision: str) -> int:
        """The share of the traffic ``revision`` serves now."""
        return sum(status.percent for status in self.traffic_statuses if status.revision == revision)

    def tag_uri(self, tag: str) -> str | None:
        return next(
            (status.uri for status in self.traffic_statuses if status.tag == tag and status.uri), None
        )

    def serving(self) -> list[tuple[str, int]]:
        """``(revision, percent)`` for every revision serving a share, in the order Cloud Run lists them."""
        return [(status.revision, status.percent) for status in self.traffic_statuses if status.percent > 0]


class Deployments(Protocol):
    def get_service(self, service: str, *, timeout: float | None = None) -> Service | None:
        """The service with its revisions, or None when it does not exist."""
        ...

    def create_service(
        self, service: str, revision: RevisionSpec, *, tag: str = "", timeout: float | None = None
    ) -> str:
        """Create the service with ``revision`` taking 100% (behind ``tag``, if given); returns the etag.
        Redoing it after success is harmless; a service that exists with other revisions is AlreadyExists."""
        ...

    def deploy_revision(
        self,
        service: str,
        revision: RevisionSpec,
        *,
        tag: str = "candidate",
        etag: str | None = None,
        timeout: float | None = None,
    ) -> str:
        """Add ``revision`` at 0% behind ``tag`` (moving the tag from any other revision), every other share
        pinned as it is; returns the new etag. Redoing it keeps the revision's current share."""
        ...

    def set_traffic(
        self,
        service: str,
        targets: Sequence[TrafficTarget],
        *,
        etag: str | None = None,
        timeout: float | None = None,
    ) -> str:
        """Ask for the split ``targets`` (percents summing to 100, unique tags); returns the new etag."""
        ...

    def get_traffic(self, service: str, *, timeout: float | None = None) -> tuple[TrafficStatus, ...]:
        """The split the service serves now (one read; what a rollback is verified with)."""
        ...


# -- names and validation shared by the adapter and the fake -------------------------------------------------

_SERVICE_ID = re.compile(r"[a-z]([-a-z0-9]{0,47}[a-z0-9])?")
_REVISION_NAME = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
_TAG = re.compile(r"[a-z]([-a-z0-9]{0,44}[a-z0-9])?")
MAX_REVISION_NAME = 63


def revision_name(service: str, suffix: str) -> str:
    """A valid, deterministic revision name ``<service>-<suffix>`` (suffix lowercased and cleaned; a long
    one is shortened with a hash of the whole, so different suffixes never collide)."""
    cleaned = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]", "-", suffix.lower())).strip("-") or "rev"
    name = f"{service}-{cleaned}"
    if len(name) > MAX_REVISION_NAME:
        digest = hashlib.sha256(suffix.encode()).hexdigest()[:8]
        name = f"{name[: MAX_REVISION_NAME - 9].rstrip('-')}-{digest}"
    return name


def spec_problems(service: str, spec: RevisionSpec) -> list[str]:
    problems = label_problems(spec.labels, "revision labels")
    if not _SERVICE_ID.fullmatch(service):
        problems.append(
            f"service: {service!r} must be lowercase letters, digits and '-', at most 49 characters"
        )
    if not spec.name.startswith(f"{service}-") or not _REVISION_NAME.fullmatch(spec.name):
        problems.append(
            f"revision: {spec.name!r} must start with {service + '-'!r} and be lowercase letters, digits "
            f"and '-', at most {MAX_REVISION_NAME} characters"
        )
    if not spec.image:
        problems.append("image: required")
    for name in spec.env:
        if not name or name == "PORT" or name.startswith("K_"):
            problems.append(f"env: {name!r} is reserved by Cloud Run")
    return problems


def traffic_problems(targets: Sequence[TrafficTarget]) -> list[str]:
    problems: list[str] = []
    if not targets:
        problems.append("traffic: at least one target is required")
    tags: set[str] = set()
    for index, target in enumerate(targets):
        if not 0 <= target.percent <= 100:
            problems.append(f"traffic[{index}].percent: {target.percent} is not between 0 and 100")
        if target.tag:
            if not _TAG.fullmatch(target.tag):
                problems.append(f"traffic[{index}].tag: {target.tag!r} is not a valid tag")
            if target.tag in tags:
                problems.append(f"traffic: tag {target.tag!r} is used more than once")
            tags.add(target.tag)
    total = sum(target.percent for target in targets)
    if targets and total != 100:
        problems.append(f"traffic: the percents must sum to 100, not {total}")
    return problems


def pinned_with(current: Service, revision: str, tag: str) -> list[TrafficTarget]:
    """The service's asked-for split with every share pinned to a named revision, ``tag`` moved onto
    ``revision`` (kept at its share, 0% when new). Raises TransientError when "latest" cannot be pinned
    because no revision is ready yet (the new revision would otherwise take that share when it is ready)."""
    targets: list[TrafficTarget] = []
    for target in current.traffic:
        name = target.revision
        if not name:
            if not current.latest_ready_revision:
                raise TransientError(
                    f"service {current.name} has no ready revision to pin its traffic to; try again later"
                )
            name = current.latest_ready_revision
        keep_tag = "" if target.tag == tag else target.tag
        targets.append(TrafficTarget(name, target.percent, keep_tag))
    share = sum(target.percent for target in targets if target.revision == revision)
    merged: dict[tuple[str, str], int] = {}
    for target in targets:
        if target.revision == revision:
            continue
        merged[(target.revision, target.tag)] = merged.get((target.revision, target.tag), 0) + target.percent
    pinned = [
        TrafficTarget(name, percent, kept) for (name, kept), percent in merged.items() if percent or kept
    ]
    return [*pinned, TrafficTarget(revision, share, tag)]


# -- the real adapter ----------------------------------------------------------------------------------------


class CloudRunDeployments:
    """``Deployments`` over ``run_v2`` (the emulator when ``RUN_EMULATOR_HOST`` is set); clients are made on
    first use."""

    def __init__(
        self,
        project: str,
        location: str,
        services_client: Any | None = None,
        revisions_client: Any | None = None,
    ) -> None:
        self.project = project
        self.location = location
        self._services = services_client
        self._revisions = revisions_client

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.location}"

    def _services_api(self) -> Any:
        if self._services is None:
            from shared import clients

            self._services = clients.run_services()
        return self._services

    def _revisions_api(self) -> Any:
        if self._revisions is None:
            from shared import clients

            self._revisions = clients.run_revisions()
        return self._revisions

    def _read(self, service: str, budget: Budget) -> Any | None:
        seconds = budget.left(f"reading service {service}")
        try:
            with boundary(f"reading Cloud Run service {service}"):
                return self._services_api().get_service(
                    request={"name": f"{self.parent}/services/{service}"},
                    timeout=seconds,
                    retry=read_retry(seconds),
                )
        except NotFound:
            return None

    def get_service(self, service: str, *, timeout: float | None = None) -> Service | None:
        budget = Budget(timeout)
        pb = self._read(service, budget)
        if pb is None:
            return None
        with boundary(f"listing the revisions of {service}"):
            seconds = budget.left("listing revisions")
            pager = self._revisions_api().list_revisions(
                request={"parent": pb.name}, timeout=seconds, retry=read_retry(seconds)
            )
            revisions = sorted((_to_revision(item) for item in pager), key=_created)
        return _to_service(pb, tuple(revisions))

    def get_traffic(self, service: str, *, timeout: float | None = None) -> tuple[TrafficStatus, ...]:
        pb = self._read(service, Budget(timeout))
        if pb is None:
            raise NotFound(f"Cloud Run service {service} does not exist")
        return _to_service(pb, ()).traffic_statuses

    def create_service(
        self, service: str, revision: RevisionSpec, *, tag: str = "", timeout: float | None = None
    ) -> str:
        target = TrafficTarget(revision.name, 100, tag)
        check("Cloud Run service", spec_problems(service, revision) + traffic_problems([target]))
        from google.cloud import run_v2

        budget = Budget(timeout)
        body = run_v2.Service(
            template=_template(run_v2.RevisionTemplate(), revision, run_v2),
            traffic=_traffic([target], run_v2),
        )
        try:
            with boundary(f"creating Cloud Run service {service}"):
                operation = self._services_api().create_service(
                    request={"parent": self.parent, "service_id": service, "service": body},
                    timeout=budget.left("creating a service"),
                    retry=None,
                )
            return _etag_of(operation)
        except AlreadyExists:
            existing = self._read(service, budget)
            names = {existing.latest_created_revision.rsplit("/", 1)[-1]} if existing is not None else set()
            if existing is not None and revision.name in names:
                return str(existing.etag)  # our own earlier create: done already
            raise

    def deploy_revision(
        self,
        service: str,
        revision: RevisionSpec,
        *,
        tag: str = "candidate",
        etag: str | None = None,
        timeout: float | None = None,
    ) -> str:
        check("revision", spec_problems(service, revision))
        from google.cloud import run_v2

        budget = Budget(timeout)
        pb = self._read(service, budget)
        if pb is None:
            raise NotFound(f"Cloud Run service {service} does not exist; create it first")
        targets = pinned_with(_to_service(pb, ()), revision.name, tag)
        check("traffic", traffic_problems(targets))
        _template(pb.template, revision, run_v2)
        pb.traffic = _traffic(targets, run_v2)
        return self._update(pb, etag, budget)

    def set_traffic(
        self,
        service: str,
        targets: Sequence[TrafficTarget],
        *,
        etag: str | None = None,
        timeout: float | None = None,
    ) -> str:
        check("traffic", traffic_problems(targets))
        from google.cloud import run_v2

        budget = Budget(timeout)
        pb = self._read(service, budget)
        if pb is None:
            raise NotFound(f"Cloud Run service {service} does not exist")
        pb.traffic = _traffic(targets, run_v2)
        return self._update(pb, etag, budget)

    def _update(self, pb: Any, etag: str | None, budget: Budget) -> str:
        if etag is not None:
            pb.etag = etag  # the caller's precondition: the service as the caller last saw it
        with boundary(f"updating Cloud Run service {pb.name.rsplit('/', 1)[-1]}"):
            operation = self._services_api().update_service(
                request={"service": pb}, timeout=budget.left("updating a service"), retry=None
            )
        return _etag_of(operation)


def _template(template: Any, spec: RevisionSpec, run_v2: Any) -> Any:
    """``template`` (the service's current one, so its other settings carry over) set to run ``spec``."""
    template.revision = spec.name
    template.labels = dict(spec.labels)
    container = template.containers[0] if len(template.containers) else run_v2.Container()
    container.image = spec.image
    container.env = [run_v2.EnvVar(name=key, value=value) for key, value in spec.env.items()]
    container.args = list(spec.args)
    template.containers = [container]
    return template


def _traffic(targets: Sequence[TrafficTarget], run_v2: Any) -> list[Any]:
    kinds = run_v2.TrafficTargetAllocationType
    return [
        run_v2.TrafficTarget(
            type_=kinds.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION
            if target.revision
            else kinds.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST,
            revision=target.revision,
            percent=target.percent,
            tag=target.tag,
        )
        for target in targets
    ]


def _etag_of(operation: Any) -> str:
    metadata = getattr(operation, "metadata", None)
    return str(getattr(metadata, "etag", "") or "")


def _short(name: str) -> str:
    return name.rsplit("/", 1)[-1] if name else ""


def _created(revision: Revision) -> float:
    return revision.create_time.timestamp() if revision.create_time else 0.0


def _condition_state(condition: Any) -> str:
    return str(getattr(condition.state, "name", condition.state))


def _to_revision(pb: Any) -> Revision:
    state, message = RevisionState.PENDING, ""
    for condition in pb.conditions:
        if condition.type_ == "Ready":
            name = _condition_state(condition)
            if name == "CONDITION_SUCCEEDED":
                state = RevisionState.READY
            elif name == "CONDITION_FAILED":
                state, message = RevisionState.FAILED, condition.message
    container = pb.containers[0] if len(pb.containers) else None
    return Revision(
        name=_short(pb.name),
        state=state,
        message=message,
        image=container.image if container is not None else "",
        env={item.name: item.value for item in container.env} if container is not None else {},
        labels=dict(pb.labels),
        create_time=as_utc(pb.create_time),
    )


def _to_service(pb: Any, revisions: tuple[Revision, ...]) -> Service:
    terminal = pb.terminal_condition
    state = _condition_state(terminal)
    return Service(
        name=_short(pb.name),
        resource_name=pb.name,
        uri=pb.uri,
        etag=pb.etag,
        ready=state == "CONDITION_SUCCEEDED" and not pb.reconciling,
        reconciling=bool(pb.reconciling),
        message=terminal.message if state == "CONDITION_FAILED" else "",
        latest_ready_revision=_short(pb.latest_ready_revision),
        latest_created_revision=_short(pb.latest_created_revision),
        traffic=tuple(
            TrafficTarget(item.revision if _is_revision(item) else "", item.percent, item.tag)
            for item in pb.traffic
        ),
        traffic_statuses=tuple(
            TrafficStatus(item.revision, item.percent, item.tag, item.uri) for item in pb.traffic_statuses
        ),
        revisions=revisions,
    )


def _is_revision(target: Any) -> bool:
    kind = str(getattr(target.type_, "name", target.type_))
    return kind.endswith("REVISION") or (kind.endswith("UNSPECIFIED") and bool(target.revision))
