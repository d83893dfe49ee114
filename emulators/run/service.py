"""The Cloud Run Admin API v2 (``google.cloud.run.v2.Services`` and ``.Revisions``) with revisions that serve.

Served: CreateService, GetService, ListServices, UpdateService, DeleteService (the mutating ones as
long-running operations whose result — and metadata — is the Service), GetRevision, ListRevisions,
DeleteRevision (an operation whose result is the Revision), and the operations API under ``/v2``. The IAM
methods answer UNIMPLEMENTED.

Semantics kept true to the documentation:

- every change of ``template`` creates a revision, named ``template.revision`` (which must start with
  ``SERVICE-``) or ``SERVICE-00001-abc``; the same name with a different template → ALREADY_EXISTS;
- an empty ``traffic`` means 100% to the latest ready revision; a split pinned to named revisions survives a
  template change (the new revision gets 0% until traffic is moved); percents must sum to 100, tags must be
  unique, named revisions must exist in the service (or be the one this request creates) → INVALID_ARGUMENT;
- a revision runs as a local process (image from the local registry, ``PORT``, the template's env and args),
  becomes ready when it accepts connections on ``PORT`` (or answers its HTTP startup probe), and is marked
  failed — never receiving traffic — when it cannot start; traffic moves to a revision only once it is ready;
- ``generation``, ``observed_generation``, ``reconciling``, ``conditions``, ``terminal_condition``,
  ``latest_created_revision``, ``latest_ready_revision``, ``traffic_statuses`` (tag URIs), ``uri``, ``urls``
  and ``etag`` are kept true; a stale etag → ABORTED; deleting a revision that traffic references →
  FAILED_PRECONDITION;
- the server-side defaults (ingress, launch stage, template timeout, concurrency, scaling, container port,
  resources, startup probe) are filled in on create and update and shown by every read
  (:mod:`emulators.run.defaults`).

State lives in :mod:`emulators.run.model`, spec validation in :mod:`emulators.run.validation`; the
``/_emulator/`` admin endpoints (fault injection, router, revision logs) in :mod:`emulators.run.admin`.
"""

from __future__ import annotations

import logging
import random
import string
import threading
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from google.cloud import run_v2
from google.cloud.run_v2.services.revisions.transports.rest_base import _BaseRevisionsRestTransport
from google.cloud.run_v2.services.services.transports.rest_base import _BaseServicesRestTransport
from google.longrunning import operations_pb2

from emulators.apiserver.errors import ApiError, already_exists, failed_precondition, invalid, not_found
from emulators.apiserver.messages import to_pb
from emulators.apiserver.operations import operation
from emulators.apiserver.paging import page
from emulators.apiserver.routing import rest_rules
from emulators.apiserver.server import ApiServer
from emulators.common.localrun import RunError, container_invocation, shim_dir
from emulators.common.proc import free_port
from emulators.common.registry import LocalRegistry, RegistryError
from emulators.monitoring.store import MetricsStore
from emulators.run.defaults import apply_service_defaults
from emulators.run.model import (
    BY_REVISION,
    FAILED,
    LATEST,
    RECONCILING,
    REVISION_FAILED,
    SERVICE_ID,
    SPEC_FIELDS,
    SUCCEEDED,
    OperationEntry,
    ReadinessFaults,
    RevisionEntry,
    RevisionPb,
    ServiceEntry,
    ServicePb,
    Settings,
    copy_field,
    etag,
    fingerprint,
    fingerprint_field,
    now,
    parse_revision_name,
    parse_service_name,
    set_condition,
)
from emulators.run.revisions import RevisionProcess
from emulators.run.router import Backend, RequestRecord, Router
from emulators.run.validation import validate_template, validate_traffic

log = logging.getLogger("emulators.run")

SERVICES = "google.cloud.run.v2.Services"
REVISIONS = "google.cloud.run.v2.Revisions"


class RunService:
    def __init__(
        self,
        server: ApiServer,
        project: str,
        state_dir: Path,
        registry: LocalRegistry,
        metrics: MetricsStore,
        router_host: str = "127.0.0.1",
        router_first_port: int = 0,
    ) -> None:
        self.server = server
        self.project = project
        self.state_dir = state_dir
        self.registry = registry
        self.metrics = metrics
        self.settings = Settings()
        self.shims = shim_dir(state_dir)
        self.router = Router(router_host, self._record, router_first_port)
        self._lock = threading.RLock()
        self._services: dict[str, ServiceEntry] = {}
        self.readiness_faults = ReadinessFaults()  # filled through the admin API (emulators.run.admin)
        self._register()

    # -- registration -------------------------------------------------------------------------------------

    def _register(self) -> None:
        services: dict[str, tuple[type, type, Callable[[Any], Any]]] = {
            "CreateService": (run_v2.CreateServiceRequest, operations_pb2.Operation, self.create_service),
            "GetService": (run_v2.GetServiceRequest, run_v2.Service, self.get_service),
            "ListServices": (run_v2.ListServicesRequest, run_v2.ListServicesResponse, self.list_services),
            "UpdateService": (run_v2.UpdateServiceRequest, operations_pb2.Operation, self.update_service),
            "DeleteService": (run_v2.DeleteServiceRequest, operations_pb2.Operation, self.delete_service),
        }
        revisions: dict[str, tuple[type, type, Callable[[Any], Any]]] = {
            "GetRevision": (run_v2.GetRevisionRequest, run_v2.Revision, self.get_revision),
            "ListRevisions": (run_v2.ListRevisionsRequest, run_v2.ListRevisionsResponse, self.list_revisions),
            "DeleteRevision": (run_v2.DeleteRevisionRequest, operations_pb2.Operation, self.delete_revision),
        }
        for service, transport, methods in (
            (SERVICES, _BaseServicesRestTransport, services),
            (REVISIONS, _BaseRevisionsRestTransport, revisions),
        ):
            for name, (request_type, response_type, handler) in methods.items():
                rules = rest_rules(transport, name)
                self.server.add_method(service, name, request_type, response_type, handler, rules)
        self.server.add_operations(("v2",))
        self.server.add_unimplemented(SERVICES, _BaseServicesRestTransport, set(services), "Cloud Run")
        self.server.on_reset(self.reset)
        self.server.on_shutdown(self.shutdown)
        self.server.add_health_info(self._health)

    def _health(self) -> dict[str, Any]:
        with self._lock:
            revisions = [rev for entry in self._services.values() for rev in entry.revisions.values()]
            return {
                "project": self.project,
                "registry": str(self.registry.root),
                "services": len(self._services),
                "revisions": len(revisions),
                "revisionsRunning": sum(
                    1 for rev in revisions if rev.process and rev.process.exit_code() is None
                ),
            }

    # -- helpers ------------------------------------------------------------------------------------------

    def _entry(self, name: str) -> ServiceEntry:
        parse_service_name(name)
        entry = self._services.get(name)
        if entry is None:
            raise not_found(
                f"Resource '{name.rsplit('/', 1)[-1]}' of kind 'SERVICE' in region "
                f"'{name.split('/')[3]}' in project '{name.split('/')[1]}' does not exist."
            )
        return entry

    def _operation(self, project: str, location: str, entry: ServiceEntry | None, generation: int) -> Any:
        name = f"projects/{project}/locations/{location}/operations/{uuid.uuid4()}"
        state = OperationEntry(name=name, generation=generation)
        if entry is not None:
            entry.operations.append(state)
        return state

    def _render(self, state: OperationEntry, entry: ServiceEntry | None) -> Callable[[], Any]:
        def render() -> Any:
            with self._lock:
                if state.done:
                    return operation(
                        state.name,
                        metadata=state.result,
                        done=True,
                        response=None if state.error else state.result,
                        error=state.error,
                    )
                snapshot = self._service_snapshot(entry) if entry is not None else None
                return operation(state.name, metadata=snapshot, done=False)

        return render

    def _finish(self, state: OperationEntry, result: Any, error: tuple[str, str] | None = None) -> None:
        state.done = True
        state.result = result
        state.error = error

    def _service_snapshot(self, entry: ServiceEntry) -> Any:
        copied = ServicePb()
        copied.CopyFrom(entry.pb)
        return copied

    def _revision_snapshot(self, revision: RevisionEntry) -> Any:
        copied = RevisionPb()
        copied.CopyFrom(revision.pb)
        return copied

    def _revision_owner(self, short: str) -> str | None:
        for entry in self._services.values():
            if short in entry.revisions:
                return entry.short
        return None

    # -- services -----------------------------------------------------------------------------------------

    def create_service(self, request: Any) -> Any:
        raw = to_pb(request)
        parts = raw.parent.split("/")
        if len(parts) != 4 or parts[0] != "projects" or parts[2] != "locations" or parts[3] == "-":
            raise invalid(f"invalid parent {raw.parent!r}: expected projects/PROJECT/locations/LOCATION")
        if not raw.service_id:
            raise invalid("service_id is required.")
        if not SERVICE_ID.fullmatch(raw.service_id):
            raise invalid(
                f"service_id {raw.service_id!r} is invalid: use lowercase letters, digits and hyphens, start "
                "with a letter, end with a letter or digit, at most 49 characters."
            )
        return self._create(parts[1], parts[3], raw.service_id, raw.service, bool(raw.validate_only))

    def _create(self, project: str, location: str, short: str, requested: Any, validate_only: bool) -> Any:
        name = f"projects/{project}/locations/{location}/services/{short}"
        with self._lock:
            if name in self._services:
                raise already_exists(f"Resource '{short}' already exists.")
            validate_template(requested.template, short)
            revision_short = requested.template.revision or ""
            validate_traffic(requested.traffic, None, revision_short or None, short, self._revision_owner)
            service = ServicePb()
            for spec in SPEC_FIELDS:
                copy_field(requested, service, spec)
            apply_service_defaults(service)
            moment = now().replace(tzinfo=None)
            service.name = name
            service.uid = str(uuid.uuid4())
            service.generation = 1
            service.create_time.FromDatetime(moment)
            service.update_time.FromDatetime(moment)
            service.creator = service.last_modifier = "emulator@localhost"
            if len(service.traffic) == 0:
                service.traffic.add(type_=LATEST, percent=100)
            service.etag = etag(service.uid, service.generation)
            entry = ServiceEntry(
                pb=service,
                project=project,
                location=location,
                short=short,
                template_fingerprint=fingerprint(service.template),
            )
            if validate_only:
                state = self._operation(project, location, None, 1)
                self._finish(state, self._service_snapshot(entry))
                return self.server.operations.add(state.name, self._render(state, None))
            port = self.router.open(name, entry.owner)
            service.uri = f"http://{self.router.host}:{port}"
            service.urls.append(service.uri)
            self._services[name] = entry
            self._new_revision(entry, service.template)
            state = self._operation(project, location, entry, service.generation)
            self._reconcile(entry)
            return self.server.operations.add(state.name, self._render(state, entry))

    def get_service(self, request: Any) -> Any:
        with self._lock:
            return self._service_snapshot(self._entry(request.name))

    def list_services(self, request: Any) -> Any:
        parts = request.parent.split("/")
        if len(parts) != 4 or parts[0] != "projects" or parts[2] != "locations":
            raise invalid(f"invalid parent {request.parent!r}: expected projects/PROJECT/locations/LOCATION")
        with self._lock:
            entries = [
                entry
                for name, entry in sorted(self._services.items())
                if entry.project == parts[1] and parts[3] in ("-", entry.location)
            ]
            chunk, token = page(entries, request.page_size, request.page_token)
            response = run_v2.ListServicesResponse.pb()()
            response.services.extend(self._service_snapshot(entry) for entry in chunk)
            response.next_page_token = token
            return response

    def update_service(self, request: Any) -> Any:
        raw = to_pb(request)
        requested = raw.service
        project, location, short = parse_service_name(requested.name)
        with self._lock:
            entry = self._services.get(requested.name)
            if entry is None:
                if raw.allow_missing:
                    return self._create(project, location, short, requested, bool(raw.validate_only))
                self._entry(requested.name)
            assert entry is not None
            if requested.etag and requested.etag != entry.pb.etag:
                raise ApiError(
                    "ABORTED",
                    f"The etag {requested.etag} does not match the current etag {entry.pb.etag} of service "
                    f"{short}: it was changed since it was read. Read it again and retry.",
                )
            fields = list(SPEC_FIELDS)
            if len(raw.update_mask.paths):
                unknown = [path for path in raw.update_mask.paths if path not in SPEC_FIELDS]
                if unknown:
                    raise invalid(
                        f"update_mask: cannot update {', '.join(unknown)} (not a settable Service field)."
                    )
                fields = list(raw.update_mask.paths)
            proposed = ServicePb()
            proposed.CopyFrom(entry.pb)
            for spec in fields:
                copy_field(requested, proposed, spec)
            # Before any comparison: resending the template as first sent (without the defaults) or as
            # read back (with them) is no change, so it creates no revision.
            apply_service_defaults(proposed)
            if len(proposed.traffic) == 0:
                proposed.traffic.add(type_=LATEST, percent=100)
            validate_template(proposed.template, short)
            template_changed = fingerprint(proposed.template) != entry.template_fingerprint
            creating: str | None = None
            if template_changed and proposed.template.revision:
                existing = entry.revisions.get(proposed.template.revision)
                if existing is not None and existing.fingerprint != fingerprint(proposed.template):
                    raise already_exists(
                        f"Revision named '{proposed.template.revision}' with different configuration already "
                        "exists."
                    )
                if existing is None:
                    if self._revision_owner(proposed.template.revision) is not None:
                        raise already_exists(f"Revision named '{proposed.template.revision}' already exists.")
                    creating = proposed.template.revision
            elif template_changed:
                creating = "(new)"
            validate_traffic(proposed.traffic, entry, creating, short, self._revision_owner)
            spec_changed = any(
                fingerprint_field(proposed, spec) != fingerprint_field(entry.pb, spec) for spec in SPEC_FIELDS
            )
            if raw.validate_only:
                state = self._operation(project, location, None, entry.pb.generation)
                self._finish(state, proposed)
                return self.server.operations.add(state.name, self._render(state, None))
            if spec_changed:
                entry.pb.CopyFrom(proposed)
                entry.pb.generation += 1
                entry.pb.update_time.FromDatetime(now().replace(tzinfo=None))
                entry.pb.last_modifier = "emulator@localhost"
                entry.pb.etag = etag(entry.pb.uid, entry.pb.generation)
            if template_changed:
                entry.template_fingerprint = fingerprint(entry.pb.template)
                if creating is not None:
                    self._new_revision(entry, entry.pb.template)
                else:
                    entry.latest_created = proposed.template.revision
            state = self._operation(project, location, entry, entry.pb.generation)
            self._reconcile(entry)
            return self.server.operations.add(state.name, self._render(state, entry))

    def delete_service(self, request: Any) -> Any:
        with self._lock:
            entry = self._entry(request.name)
            if request.etag and request.etag != entry.pb.etag:
                raise ApiError(
                    "ABORTED", f"The etag {request.etag} does not match the current etag of the service."
                )
            snapshot = self._service_snapshot(entry)
            snapshot.delete_time.FromDatetime(now().replace(tzinfo=None))
            state = self._operation(entry.project, entry.location, None, entry.pb.generation)
            self._finish(state, snapshot)
            if not request.validate_only:
                del self._services[entry.name]
                self._teardown(entry)
            return self.server.operations.add(state.name, self._render(state, None))

    def _teardown(self, entry: ServiceEntry) -> None:
        for key in list(self.router.keys()):
            if key == entry.name or key.startswith(entry.name + "#"):
                self.router.close(key)
        for revision in entry.revisions.values():
            revision.deleted = True
        processes = [rev.process for rev in entry.revisions.values() if rev.process is not None]
        for operation_state in entry.operations:
            if not operation_state.done:
                self._finish(operation_state, None, ("ABORTED", "The service was deleted."))
        threading.Thread(target=_stop_all, args=(processes,), daemon=True).start()

    # -- revisions ----------------------------------------------------------------------------------------

    def _new_revision(self, entry: ServiceEntry, template: Any) -> RevisionEntry:
        entry.counter += 1
        if template.revision:
            short = template.revision
        else:
            while True:
                suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=3))
                short = f"{entry.short}-{entry.counter:05d}-{suffix}"
                if self._revision_owner(short) is None:
                    break
        moment = now().replace(tzinfo=None)
        revision = RevisionPb()
        revision.name = f"{entry.name}/revisions/{short}"
        revision.uid = str(uuid.uuid4())
        revision.generation = 1
        revision.labels.update(template.labels)
        revision.annotations.update(template.annotations)
        revision.create_time.FromDatetime(moment)
        revision.update_time.FromDatetime(moment)
        revision.launch_stage = entry.pb.launch_stage
        revision.service = entry.short
        for spec in (
            "scaling",
            "vpc_access",
            "max_instance_request_concurrency",
            "timeout",
            "service_account",
            "containers",
            "volumes",
            "execution_environment",
            "encryption_key",
            "session_affinity",
            "node_selector",
        ):
            copy_field(template, revision, spec)
        revision.reconciling = True
        revision.creator = "emulator@localhost"
        revision.etag = etag(revision.uid, 1)
        log_path = self.state_dir / "revisions" / short / "revision.log"
        revision.log_uri = log_path.as_uri()
        set_condition(revision, "conditions", "ResourcesAvailable", RECONCILING)
        set_condition(revision, "conditions", "ContainerHealthy", RECONCILING)
        set_condition(revision, "conditions", "Ready", RECONCILING)
        record = RevisionEntry(
            pb=revision,
            short=short,
            fingerprint=fingerprint(template),
            timeout=max(revision.timeout.ToTimedelta().total_seconds(), 1.0),
        )
        entry.revisions[short] = record
        entry.latest_created = short
        injected = self.readiness_faults.take(entry.name)
        threading.Thread(
            target=self._bring_up, args=(entry, record, injected), name=f"run-{short}", daemon=True
        ).start()
        return record

    def _bring_up(self, entry: ServiceEntry, record: RevisionEntry, injected: str | None) -> None:
        container = record.pb.containers[0]
        ready, message = False, ""
        try:
            if injected is not None:
                message = injected
            else:
                ready, message = self._start_process(entry, record, container)
        except Exception as error:  # an emulator bug must fail the revision visibly, not hang the operation
            log.exception("revision %s failed to start", record.short)
            message = f"emulator error while starting the revision: {error!r}"
        with self._lock:
            if record.deleted:
                process = record.process
            else:
                process = None
                record.state = SUCCEEDED if ready else FAILED
                record.message = message
                self._revision_conditions(record)
                if entry.name in self._services:
                    self._reconcile(entry)
        if process is not None:
            process.stop()

    def _start_process(self, entry: ServiceEntry, record: RevisionEntry, container: Any) -> tuple[bool, str]:
        try:
            image = self.registry.resolve(container.image)
        except RegistryError as error:
            return False, f"Image '{container.image}' not found. {error}"
        port = free_port("127.0.0.1")
        env = {variable.name: variable.value for variable in container.env}
        env.update(
            {
                "PORT": str(port),
                "K_SERVICE": entry.short,
                "K_REVISION": record.short,
                "K_CONFIGURATION": entry.short,
            }
        )
        directory = self.state_dir / "revisions" / record.short
        try:
            invocation = container_invocation(
                image,
                directory / "rootfs",
                self.shims,
                command=list(container.command) or None,
                args=list(container.args) or None,
                env=env,
            )
        except RunError as error:
            return False, str(error)
        if container.working_dir:
            cwd = directory / "rootfs" / container.working_dir.lstrip("/")
            cwd.mkdir(parents=True, exist_ok=True)
            invocation = replace(invocation, cwd=cwd)
        process = RevisionProcess(record.short, invocation, directory / "revision.log", port)
        with self._lock:
            if record.deleted:
                return False, "The revision was deleted while it was starting."
            record.process = process
            record.port = port
        try:
            process.start()
        except OSError as error:
            return False, f"The container command could not be started: {error}"
        probe = (
            container.startup_probe.http_get.path if container.startup_probe.HasField("http_get") else None
        )
        readiness = process.wait_ready(self.settings.startup_timeout, probe or None)
        if not readiness.ready:
            process.stop()
        return readiness.ready, readiness.message

    def _revision_conditions(self, record: RevisionEntry) -> None:
        revision = record.pb
        revision.reconciling = False
        revision.observed_generation = revision.generation
        if record.state == SUCCEEDED:
            set_condition(revision, "conditions", "ResourcesAvailable", SUCCEEDED)
            set_condition(revision, "conditions", "ContainerHealthy", SUCCEEDED)
            set_condition(revision, "conditions", "Ready", SUCCEEDED)
        else:
            set_condition(revision, "conditions", "ResourcesAvailable", SUCCEEDED)
            set_condition(revision, "conditions", "ContainerHealthy", FAILED, record.message, REVISION_FAILED)
            set_condition(revision, "conditions", "Ready", FAILED, record.message, REVISION_FAILED)
        revision.update_time.FromDatetime(now().replace(tzinfo=None))

    def get_revision(self, request: Any) -> Any:
        with self._lock:
            _, revision = self.find_revision(request.name)
            return self._revision_snapshot(revision)

    def list_revisions(self, request: Any) -> Any:
        project, location, short = parse_service_name(request.parent)
        with self._lock:
            if short == "-":
                entries = [
                    e
                    for e in self._services.values()
                    if e.project == project and location in ("-", e.location)
                ]
            else:
                entries = [self._entry(request.parent)]
            revisions = [
                rev for e in sorted(entries, key=lambda e: e.name) for rev in reversed(e.revisions.values())
            ]
            chunk, token = page(revisions, request.page_size, request.page_token)
            response = run_v2.ListRevisionsResponse.pb()()
            response.revisions.extend(self._revision_snapshot(rev) for rev in chunk)
            response.next_page_token = token
            return response

    def delete_revision(self, request: Any) -> Any:
        service_name, short = parse_revision_name(request.name)
        with self._lock:
            entry = self._entry(service_name)
            revision = entry.revisions.get(short)
            if revision is None:
                raise not_found(f"Revision '{short}' does not exist in service '{entry.short}'.")
            if request.etag and request.etag != revision.pb.etag:
                raise ApiError(
                    "ABORTED", f"The etag {request.etag} does not match the current etag of {short}."
                )
            reason = self._serving_reason(entry, short)
            if reason:
                raise failed_precondition(f"Revision {short} cannot be deleted: {reason}.")
            snapshot = self._revision_snapshot(revision)
            snapshot.delete_time.FromDatetime(now().replace(tzinfo=None))
            state = self._operation(entry.project, entry.location, None, entry.pb.generation)
            self._finish(state, snapshot)
            if not request.validate_only:
                del entry.revisions[short]
                revision.deleted = True
                process = revision.process
                if process is not None:
                    threading.Thread(target=process.stop, daemon=True).start()
                self._reconcile(entry)
            return self.server.operations.add(state.name, self._render(state, None))

    def _serving_reason(self, entry: ServiceEntry, short: str) -> str:
        for kind, revision, percent, tag in entry.routes:
            if revision == short and percent > 0:
                return f"it is serving {percent}% of the traffic of service {entry.short}"
            if revision == short and tag:
                return f"it is serving the traffic of tag {tag!r}"
            if revision == short and kind == LATEST:
                return "it is the latest ready revision, which the LATEST traffic target serves"
        for target in entry.pb.traffic:
            if target.revision == short:
                return "the service's traffic configuration references it"
        return ""

    # -- reconciliation -----------------------------------------------------------------------------------

    def _reconcile(self, entry: ServiceEntry) -> None:
        """Recompute the service's routes, conditions and outputs from its spec and revisions (lock held)."""
        service = entry.pb
        ordered = list(entry.revisions.values())
        latest_ready = next((rev for rev in reversed(ordered) if rev.ready), None)
        created = entry.revisions.get(entry.latest_created)
        desired: list[tuple[int, str, int, str]] = []
        failed, pending = "", False
        for target in service.traffic:
            kind = target.type_ or (BY_REVISION if target.revision else LATEST)
            if kind == LATEST:
                chosen = latest_ready
                if chosen is None:
                    if created is not None and created.state == FAILED:
                        failed = failed or self._not_ready(created)
                    else:
                        pending = True
                    continue
            else:
                chosen = entry.revisions.get(target.revision)
                if chosen is None:
                    failed = failed or f"Revision '{target.revision}' does not exist."
                    continue
                if chosen.state == FAILED:
                    failed = failed or self._not_ready(chosen)
                    continue
                if chosen.state != SUCCEEDED:
                    pending = True
                    continue
            desired.append((kind, chosen.short, target.percent, target.tag))
        if not failed and not pending:
            entry.routes = desired
        routes_state = FAILED if failed else (RECONCILING if pending else SUCCEEDED)
        if created is None:
            config_state, config_message = SUCCEEDED, ""
        elif created.state == FAILED:
            config_state, config_message = FAILED, self._not_ready(created)
        elif created.state == SUCCEEDED:
            config_state, config_message = SUCCEEDED, ""
        else:
            config_state, config_message = RECONCILING, ""
        set_condition(
            service, "conditions", "ConfigurationsReady", config_state, config_message, REVISION_FAILED
        )
        set_condition(service, "conditions", "RoutesReady", routes_state, failed, REVISION_FAILED)
        if FAILED in (config_state, routes_state):
            terminal, message = FAILED, config_message or failed
        elif RECONCILING in (config_state, routes_state):
            terminal, message = RECONCILING, ""
        else:
            terminal, message = SUCCEEDED, ""
        set_condition(service, "terminal_condition", "Ready", terminal, message, REVISION_FAILED)
        service.reconciling = terminal == RECONCILING
        if terminal != RECONCILING:
            service.observed_generation = service.generation
        service.latest_created_revision = f"{entry.name}/revisions/{created.short}" if created else ""
        service.latest_ready_revision = f"{entry.name}/revisions/{latest_ready.short}" if latest_ready else ""
        self._apply_routes(entry)
        if terminal != RECONCILING:
            error = ("FAILED_PRECONDITION", message) if terminal == FAILED else None
            for state in entry.operations:
                if not state.done and state.generation <= service.observed_generation:
                    self._finish(state, self._service_snapshot(entry), error)
            entry.operations = [state for state in entry.operations if not state.done]

    def _not_ready(self, revision: RevisionEntry) -> str:
        return (
            f"Revision '{revision.short}' is not ready and cannot serve traffic. {revision.message}".strip()
        )

    def _backend(self, revision: RevisionEntry) -> Backend:
        return Backend(revision=revision.short, port=revision.port, timeout=revision.timeout)

    def _apply_routes(self, entry: ServiceEntry) -> None:
        weights: dict[str, int] = {}
        tags: dict[str, str] = {}
        for _, revision, percent, tag in entry.routes:
            if percent > 0:
                weights[revision] = weights.get(revision, 0) + percent
            if tag:
                tags[tag] = revision
        targets = [
            (self._backend(entry.revisions[name]), weight)
            for name, weight in weights.items()
            if name in entry.revisions and entry.revisions[name].ready
        ]
        self.router.set_targets(entry.name, targets)
        for tag, revision in tags.items():
            key = f"{entry.name}#{tag}"
            port = self.router.open(key, entry.owner)
            entry.tag_urls[tag] = f"http://{self.router.host}:{port}"
            backend = entry.revisions.get(revision)
            self.router.set_targets(key, [(self._backend(backend), 1)] if backend and backend.ready else [])
        for tag in [tag for tag in entry.tag_urls if tag not in tags]:
            self.router.close(f"{entry.name}#{tag}")
            del entry.tag_urls[tag]
        entry.pb.ClearField("traffic_statuses")
        for kind, revision, percent, tag in entry.routes:
            status = entry.pb.traffic_statuses.add(type_=kind, revision=revision, percent=percent, tag=tag)
            if tag:
                status.uri = entry.tag_urls[tag]

    # -- metrics ------------------------------------------------------------------------------------------

    def _record(self, record: RequestRecord) -> None:
        self.metrics.record_request(
            project=record.owner.project,
            location=record.owner.location,
            service=record.owner.service,
            revision=record.revision,
            status=record.status,
            latency_ms=record.latency_ms,
            at=record.at,
        )

    # -- lookups (the admin endpoints read state through these) ---------------------------------------------

    @property
    def lock(self) -> threading.RLock:
        """Held while reading or changing services and revisions."""
        return self._lock

    def find_revision(self, name: str) -> tuple[ServiceEntry, RevisionEntry]:
        """The service and revision ``name`` designates (lock held), else NOT_FOUND."""
        service_name, short = parse_revision_name(name)
        entry = self._entry(service_name)
        revision = entry.revisions.get(short)
        if revision is None:
            raise not_found(f"Revision '{short}' does not exist in service '{entry.short}'.")
        return entry, revision

    def revision_entries(self) -> list[RevisionEntry]:
        """Every revision of every service (lock held)."""
        return [revision for entry in self._services.values() for revision in entry.revisions.values()]

    # -- lifecycle ----------------------------------------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            entries = list(self._services.values())
            self._services.clear()
            self.readiness_faults.clear()
            for entry in entries:
                self._teardown(entry)
        self.router.clear_faults()

    def shutdown(self) -> None:
        """Stop every revision process (in parallel, to fit a short grace period) and the router."""
        with self._lock:
            processes = [
                rev.process
                for entry in self._services.values()
                for rev in entry.revisions.values()
                if rev.process
            ]
            for entry in self._services.values():
                for rev in entry.revisions.values():
                    rev.deleted = True
        self.router.close_all()
        threads = [threading.Thread(target=process.stop, daemon=True) for process in processes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=5.0)


def _stop_all(processes: list[RevisionProcess]) -> None:
    for process in processes:
        process.stop()
