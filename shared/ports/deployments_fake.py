"""An in-memory ``Deployments`` that honours the port's contract (``tests/contract/deployments_contract.py``).

It keeps Cloud Run's rules that a rollout relies on: a template change makes a revision (a name reused with a
different image or env is AlreadyExists), a split names existing revisions and sums to 100 with unique tags,
every change needs the current etag (a stale one is a Conflict), and the served split follows the asked-for
one only once every revision in it is ready. A new revision becomes ready on the next read of the service
(as polling Cloud Run shows it), unless :meth:`FakeDeployments.fail_revisions` made it fail to start.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from shared.errors import InvalidInput
from shared.ports.common import check
from shared.ports.deployments import (
    Revision,
    RevisionSpec,
    RevisionState,
    Service,
    TrafficStatus,
    TrafficTarget,
    pinned_with,
    spec_problems,
    traffic_problems,
)
from shared.ports.errors import AlreadyExists, Conflict, NotFound
from shared.ports.faults import Faults


@dataclass
class _Entry:
    service: Service
    specs: dict[str, RevisionSpec] = field(default_factory=dict)
    generation: int = 1
    pending: set[str] = field(default_factory=set)  # revisions that become ready (or fail) on the next read


@dataclass
class FakeDeployments:
    project: str = "fake-project"
    location: str = "us-central1"
    faults: Faults = field(default_factory=Faults)
    _entries: dict[str, _Entry] = field(default_factory=dict, init=False, repr=False)
    _failing: dict[str, str] = field(default_factory=dict, init=False, repr=False)  # revision -> why
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _tick: int = field(default=0, init=False, repr=False)

    # -- the port --------------------------------------------------------------------------------------------

    def get_service(self, service: str, *, timeout: float | None = None) -> Service | None:
        self.faults.take("get_service")
        with self._lock:
            entry = self._entries.get(service)
            if entry is None:
                return None
            self._settle(entry)
            return entry.service

    def get_traffic(self, service: str, *, timeout: float | None = None) -> tuple[TrafficStatus, ...]:
        self.faults.take("get_traffic")
        with self._lock:
            entry = self._entries.get(service)
            if entry is None:
                raise NotFound(f"Cloud Run service {service} does not exist")
            return entry.service.traffic_statuses

    def create_service(
        self, service: str, revision: RevisionSpec, *, tag: str = "", timeout: float | None = None
    ) -> str:
        self.faults.take("create_service")
        target = TrafficTarget(revision.name, 100, tag)
        check("Cloud Run service", spec_problems(service, revision) + traffic_problems([target]))
        with self._lock:
            existing = self._entries.get(service)
            if existing is not None:
                if existing.service.latest_created_revision == revision.name:
                    return existing.service.etag
                raise AlreadyExists(f"Resource '{service}' already exists.")
            self._owner_check(service, revision)
            entry = _Entry(
                service=Service(
                    name=service,
                    resource_name=f"projects/{self.project}/locations/{self.location}/services/{service}",
                    uri=f"https://{service}-fake.a.run.app",
                    etag=_etag(service, 1),
                    ready=False,
                    reconciling=True,
                    traffic=(target,),
                )
            )
            self._entries[service] = entry
            self._add_revision(entry, revision)
            return entry.service.etag

    def deploy_revision(
        self,
        service: str,
        revision: RevisionSpec,
        *,
        tag: str = "candidate",
        etag: str | None = None,
        timeout: float | None = None,
    ) -> str:
        self.faults.take("deploy_revision")
        check("revision", spec_problems(service, revision))
        with self._lock:
            entry = self._entry(service, etag)
            targets = pinned_with(entry.service, revision.name, tag)
            check("traffic", traffic_problems(targets))
            known = entry.specs.get(revision.name)
            if known is not None and known != revision:
                raise AlreadyExists(
                    f"Revision named '{revision.name}' with different configuration already exists."
                )
            if known is None:
                self._owner_check(service, revision)
                self._add_revision(entry, revision)
            self._change(entry, targets)
            return entry.service.etag

    def set_traffic(
        self,
        service: str,
        targets: Sequence[TrafficTarget],
        *,
        etag: str | None = None,
        timeout: float | None = None,
    ) -> str:
        self.faults.take("set_traffic")
        check("traffic", traffic_problems(targets))
        with self._lock:
            entry = self._entry(service, etag)
            unknown = [t.revision for t in targets if t.revision and t.revision not in entry.specs]
            if unknown:
                raise InvalidInput("traffic", [f"revision {name!r} does not exist" for name in unknown])
            self._change(entry, list(targets))
            return entry.service.etag

    # -- test controls ---------------------------------------------------------------------------------------

    def fail_revisions(self, *names: str, message: str = "the container failed to start") -> None:
        """The named revisions (deployed now or later) fail to start instead of becoming ready."""
        with self._lock:
            for name in names:
                self._failing[name] = message

    # -- internals -------------------------------------------------------------------------------------------

    def _entry(self, service: str, etag: str | None) -> _Entry:
        entry = self._entries.get(service)
        if entry is None:
            raise NotFound(f"Cloud Run service {service} does not exist")
        if etag is not None and etag != entry.service.etag:
            raise Conflict(f"the etag {etag} of service {service} is stale: it changed since it was read")
        return entry

    def _owner_check(self, service: str, revision: RevisionSpec) -> None:
        for other, entry in self._entries.items():
            if other != service and revision.name in entry.specs:
                raise AlreadyExists(f"Revision named '{revision.name}' already exists.")

    def _add_revision(self, entry: _Entry, spec: RevisionSpec) -> None:
        self._tick += 1
        revision = Revision(
            name=spec.name,
            state=RevisionState.PENDING,
            image=spec.image,
            env=dict(spec.env),
            labels=dict(spec.labels),
            create_time=datetime.now(UTC) + timedelta(microseconds=self._tick),
        )
        entry.specs[spec.name] = spec
        entry.pending.add(spec.name)
        entry.service = replace(
            entry.service, revisions=(*entry.service.revisions, revision), latest_created_revision=spec.name
        )

    def _change(self, entry: _Entry, targets: list[TrafficTarget]) -> None:
        entry.generation += 1
        entry.service = replace(
            entry.service,
            traffic=tuple(targets),
            etag=_etag(entry.service.name, entry.generation),
            ready=False,
            reconciling=True,
        )
        self._route(entry)

    def _settle(self, entry: _Entry) -> None:
        """What time does on Cloud Run: pending revisions start (or fail), then traffic follows."""
        if entry.pending:
            revisions = []
            for revision in entry.service.revisions:
                if revision.name in entry.pending:
                    failure = self._failing.get(revision.name)
                    state = RevisionState.FAILED if failure else RevisionState.READY
                    revision = replace(revision, state=state, message=failure or "")
                revisions.append(revision)
            entry.pending.clear()
            ready = [revision.name for revision in revisions if revision.ready]
            entry.service = replace(
                entry.service,
                revisions=tuple(revisions),
                latest_ready_revision=ready[-1] if ready else "",
            )
        self._route(entry)

    def _route(self, entry: _Entry) -> None:
        service = entry.service
        states = {revision.name: revision.state for revision in service.revisions}
        resolved: list[TrafficStatus] = []
        failed = ""
        waiting = False
        for target in service.traffic:
            name = target.revision or service.latest_ready_revision
            state = states.get(name, RevisionState.PENDING) if name else RevisionState.PENDING
            if state is RevisionState.FAILED:
                failed = failed or f"Revision '{name}' is not ready and cannot serve traffic."
            elif state is RevisionState.PENDING:
                waiting = True
            uri = f"https://{target.tag}---{service.name}-fake.a.run.app" if target.tag else ""
            resolved.append(TrafficStatus(name, target.percent, target.tag, uri))
        if failed:
            entry.service = replace(service, ready=False, reconciling=False, message=failed)
        elif waiting:
            entry.service = replace(service, ready=False, reconciling=True, message="")
        else:
            entry.service = replace(
                service, ready=True, reconciling=False, message="", traffic_statuses=tuple(resolved)
            )


def _etag(service: str, generation: int) -> str:
    return '"' + hashlib.sha256(f"{service}:{generation}".encode()).hexdigest()[:24] + '"'
