"""The Cloud Run emulator's state: services, revisions and operations as kept in memory, and their helpers.

Resources are held as raw protobuf messages (``run.v2.Service`` / ``run.v2.Revision``), so a snapshot is one
``CopyFrom`` and field presence is exact. Shared by the API (:mod:`emulators.run.service`) and the admin
endpoints (:mod:`emulators.run.admin`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from google.cloud import run_v2

from emulators.apiserver.errors import invalid
from emulators.run.revisions import RevisionProcess
from emulators.run.router import RouteOwner

ServicePb: Any = run_v2.Service.pb()
RevisionPb: Any = run_v2.Revision.pb()

PENDING = int(run_v2.Condition.State.CONDITION_PENDING)
RECONCILING = int(run_v2.Condition.State.CONDITION_RECONCILING)
SUCCEEDED = int(run_v2.Condition.State.CONDITION_SUCCEEDED)
FAILED = int(run_v2.Condition.State.CONDITION_FAILED)
LATEST = int(run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST)
BY_REVISION = int(run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION)
ERROR_SEVERITY = int(run_v2.Condition.Severity.ERROR)
REVISION_FAILED = int(run_v2.Condition.CommonReason.REVISION_FAILED)

# The fields a caller sets; everything else on a Service is output only.
SPEC_FIELDS = (
    "description",
    "labels",
    "annotations",
    "client",
    "client_version",
    "ingress",
    "launch_stage",
    "binary_authorization",
    "template",
    "traffic",
    "scaling",
    "invoker_iam_disabled",
    "default_uri_disabled",
    "custom_audiences",
    "iap_enabled",
    "multi_region_settings",
    "build_config",
)
SERVICE_ID = re.compile(r"[a-z]([-a-z0-9]{0,47}[a-z0-9])?")
REVISION_NAME = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
TAG = re.compile(r"[a-z]([-a-z0-9]{0,44}[a-z0-9])?")


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def fingerprint(message: Any) -> bytes:
    data: bytes = message.SerializeToString(deterministic=True)
    return hashlib.sha256(data).digest()


def etag(uid: str, generation: int) -> str:
    return '"' + hashlib.sha256(f"{uid}:{generation}".encode()).hexdigest()[:24] + '"'


def copy_field(source: Any, target: Any, name: str) -> None:
    """Replace field ``name`` of ``target`` with ``source``'s (maps, repeated, messages and scalars)."""
    descriptor = source.DESCRIPTOR.fields_by_name[name]
    target.ClearField(name)
    if descriptor.message_type is not None and descriptor.message_type.GetOptions().map_entry:
        getattr(target, name).update(getattr(source, name))
    elif descriptor.is_repeated:
        getattr(target, name).extend(getattr(source, name))
    elif descriptor.message_type is not None:
        if source.HasField(name):
            getattr(target, name).CopyFrom(getattr(source, name))
    else:
        setattr(target, name, getattr(source, name))


def fingerprint_field(message: Any, name: str) -> bytes:
    holder = ServicePb()
    copy_field(message, holder, name)
    return fingerprint(holder)


def set_condition(
    holder: Any, container: str, kind: str, state: int, message: str = "", reason: int = 0
) -> None:
    """Set condition ``kind`` in ``holder.<container>`` (a repeated field, or the terminal condition),
    keeping its transition time when the state did not change."""
    moment = now()
    if container == "terminal_condition":
        conditions = [holder.terminal_condition]
    else:
        conditions = [item for item in getattr(holder, container) if item.type_ == kind]
        if not conditions:
            conditions = [getattr(holder, container).add()]
    condition = conditions[0]
    changed = condition.state != state or condition.type_ != kind
    condition.type_ = kind
    condition.state = state
    condition.message = message
    condition.severity = ERROR_SEVERITY if state == FAILED else 0
    condition.reason = reason if state == FAILED else 0
    if changed or not condition.HasField("last_transition_time"):
        condition.last_transition_time.FromDatetime(moment.replace(tzinfo=None))


def parse_service_name(name: str) -> tuple[str, str, str]:
    """``projects/P/locations/L/services/S`` → (P, L, S)."""
    parts = name.split("/")
    if len(parts) != 6 or parts[0] != "projects" or parts[2] != "locations" or parts[4] != "services":
        raise invalid(f"invalid service name {name!r}: expected projects/P/locations/L/services/S")
    return parts[1], parts[3], parts[5]


def parse_revision_name(name: str) -> tuple[str, str]:
    """``projects/P/locations/L/services/S/revisions/R`` → (service name, R)."""
    parts = name.split("/")
    if len(parts) != 8 or parts[6] != "revisions":
        raise invalid(
            f"invalid revision name {name!r}: expected projects/P/locations/L/services/S/revisions/R"
        )
    return "/".join(parts[:6]), parts[7]


@dataclass
class RevisionEntry:
    pb: Any  # run.v2.Revision (raw protobuf)
    short: str
    fingerprint: bytes
    timeout: float
    state: int = PENDING  # PENDING | SUCCEEDED (ready) | FAILED
    message: str = ""
    port: int = 0
    process: RevisionProcess | None = None
    deleted: bool = False

    @property
    def ready(self) -> bool:
        return self.state == SUCCEEDED and not self.deleted


@dataclass
class OperationEntry:
    name: str
    generation: int
    done: bool = False
    error: tuple[str, str] | None = None
    result: Any = None


@dataclass
class ServiceEntry:
    pb: Any  # run.v2.Service (raw protobuf): spec and output fields
    project: str
    location: str
    short: str
    template_fingerprint: bytes
    revisions: dict[str, RevisionEntry] = field(default_factory=dict)
    latest_created: str = ""
    counter: int = 0
    routes: list[tuple[int, str, int, str]] = field(default_factory=list)  # (type, revision, percent, tag)
    operations: list[OperationEntry] = field(default_factory=list)
    tag_urls: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.pb.name)

    @property
    def owner(self) -> RouteOwner:
        return RouteOwner(self.project, self.location, self.short)


@dataclass
class ReadinessFault:
    remaining: int
    message: str
    service: str  # full service name, or "" for any


class ReadinessFaults:
    """Injected start failures: the next revisions created (of one service, or any) fail to become ready."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[ReadinessFault] = []

    def add(self, fault: ReadinessFault) -> list[dict[str, Any]]:
        with self._lock:
            self._faults.append(fault)
            return [vars(item).copy() for item in self._faults]

    def take(self, service: str) -> str | None:
        """The failure message for a revision of ``service`` being created now, if one is pending."""
        with self._lock:
            for fault in self._faults:
                if fault.service in ("", service):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault.message
        return None

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()


@dataclass
class Settings:
    startup_timeout: float = 30.0
