"""Typed, lenient, read-only views of every event the project handles.

Each view wraps the payload exactly as the real service sends it: unknown fields are ignored, int64 fields
are accepted as strings or numbers, and every problem found is reported at once in one :class:`InvalidEvent`
(a permanent error: the event will never parse, so it is recorded and acknowledged, not retried).

Views never copy or modify the payload; ``raw`` gives it back unchanged.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.errors import PermanentError

JSON = dict[str, Any]

STORAGE_FINALIZED = "google.cloud.storage.object.v1.finalized"
PUBSUB_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"
SCHEMA_VERSION = "1"


class InvalidEvent(PermanentError):
    """The payload cannot be understood; ``problems`` lists every field that is wrong."""

    def __init__(self, what: str, problems: list[str]) -> None:
        super().__init__(f"invalid {what}: " + "; ".join(problems), problems)
        self.what = what


class _Checker:
    """Reads fields from a mapping and collects every problem instead of stopping at the first."""

    def __init__(self, what: str, data: Any) -> None:
        self.what = what
        self.problems: list[str] = []
        if not isinstance(data, Mapping):
            self.problems.append(f"payload must be a JSON object, got {type(data).__name__}")
            data = {}
        self.data: Mapping[str, Any] = data

    def _get(self, path: str) -> Any:
        node: Any = self.data
        for part in path.split("."):
            if not isinstance(node, Mapping):
                return None
            node = node.get(part)
        return node

    def text(self, path: str, required: bool = True) -> str:
        value = self._get(path)
        if value is None or value == "":
            if required:
                self.problems.append(f"{path}: required")
            return ""
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self.problems.append(f"{path}: must be a string, got {type(value).__name__}")
            return ""
        return str(value)

    def int64(self, path: str, required: bool = True) -> int:
        """Google APIs send int64 as a JSON string; accept a number too."""
        value = self._get(path)
        if value is None or value == "":
            if required:
                self.problems.append(f"{path}: required")
            return 0
        if isinstance(value, bool):
            self.problems.append(f"{path}: must be an integer, got a boolean")
            return 0
        try:
            if isinstance(value, float):
                if not value.is_integer():
                    raise ValueError
                return int(value)
            return int(value)
        except (TypeError, ValueError):
            self.problems.append(f"{path}: must be an integer (string or number), got {value!r}")
            return 0

    def timestamp(self, path: str, required: bool = True) -> datetime | None:
        value = self._get(path)
        if value is None or value == "":
            if required:
                self.problems.append(f"{path}: required")
            return None
        parsed = parse_timestamp(value)
        if parsed is None:
            self.problems.append(f"{path}: not an RFC 3339 timestamp or epoch seconds: {value!r}")
        return parsed

    def mapping(self, path: str, required: bool = False) -> Mapping[str, Any]:
        value = self._get(path)
        if value is None:
            if required:
                self.problems.append(f"{path}: required")
            return {}
        if not isinstance(value, Mapping):
            self.problems.append(f"{path}: must be an object, got {type(value).__name__}")
            return {}
        return value

    def items(self, path: str) -> list[Any]:
        value = self._get(path)
        if value is None:
            return []
        if not isinstance(value, list):
            self.problems.append(f"{path}: must be a list, got {type(value).__name__}")
            return []
        return value

    def done(self) -> None:
        if self.problems:
            raise InvalidEvent(self.what, self.problems)


def parse_timestamp(value: Any) -> datetime | None:
    """An aware UTC datetime from RFC 3339 (any fraction length, ``Z`` or offset) or epoch seconds."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(float(value), tz=UTC)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.isdigit():
        return datetime.fromtimestamp(int(text), tz=UTC)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Python accepts at most 6 fractional digits; Google sends up to 9.
    if "." in text:
        head, _, rest = text.partition(".")
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        text = f"{head}.{(digits + '000000')[:6]}{rest}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _strings(values: Any) -> tuple[str, ...]:
    if not isinstance(values, list):
        return ()
    return tuple(str(value) for value in values if isinstance(value, str))


# --------------------------------------------------------------------------------------------- git


@dataclass(frozen=True)
class Commit:
    id: str
    message: str
    url: str
    author: str
    added: tuple[str, ...]
    modified: tuple[str, ...]
    removed: tuple[str, ...]


def _commits(items: list[Any]) -> tuple[Commit, ...]:
    commits: list[Commit] = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        author = item.get("author") if isinstance(item.get("author"), Mapping) else {}
        commits.append(
            Commit(
                id=str(item.get("id", "")),
                message=str(item.get("message", "")),
                url=str(item.get("url", "")),
                author=str((author or {}).get("name") or (author or {}).get("username") or ""),
                added=_strings(item.get("added")),
                modified=_strings(item.get("modified")),
                removed=_strings(item.get("removed")),
            )
        )
    return tuple(commits)


@dataclass(frozen=True)
class GitPush:
    """A push, from GitHub or GitLab, reduced to what a build decision needs."""

    provider: str
    delivery_id: str
    ref: str
    before: str
    after: str
    repository: str
    clone_url: str
    pusher: str
    commits: tuple[Commit, ...]
    deleted: bool
    raw: Mapping[str, Any] = field(repr=False)

    @property
    def branch(self) -> str | None:
        return self.ref.removeprefix("refs/heads/") if self.ref.startswith("refs/heads/") else None

    @property
    def tag(self) -> str | None:
        return self.ref.removeprefix("refs/tags/") if self.ref.startswith("refs/tags/") else None

    @property
    def short_sha(self) -> str:
        return self.after[:7]

    @property
    def changed_paths(self) -> frozenset[str]:
        return frozenset(path for c in self.commits for path in (*c.added, *c.modified, *c.removed))


_ZERO_SHA = "0" * 40


def github_push(body: Any, delivery_id: str = "") -> GitPush:
    """A GitHub ``push`` webhook (header ``X-GitHub-Event: push``)."""
    check = _Checker("GitHub push", body)
    ref = check.text("ref")
    after = check.text("after")
    before = check.text("before", required=False)
    repository = check.text("repository.full_name")
    clone_url = check.text("repository.clone_url", required=False)
    pusher = check.text("pusher.name", required=False)
    commits = _commits(check.items("commits"))
    check.done()
    deleted = bool(check.data.get("deleted")) or after == _ZERO_SHA
    return GitPush(
        "github", delivery_id, ref, before, after, repository, clone_url, pusher, commits, deleted, body
    )


@dataclass(frozen=True)
class GitHubPing:
    """GitHub's ``ping`` sent when a webhook is created."""

    delivery_id: str
    zen: str
    hook_id: int
    events: tuple[str, ...]
    repository: str
    raw: Mapping[str, Any] = field(repr=False)


def github_ping(body: Any, delivery_id: str = "") -> GitHubPing:
    check = _Checker("GitHub ping", body)
    zen = check.text("zen", required=False)
    hook_id = check.int64("hook_id")
    hook = check.mapping("hook")
    repository = check.text("repository.full_name", required=False)
    check.done()
    return GitHubPing(delivery_id, zen, hook_id, _strings(hook.get("events")), repository, body)


def gitlab_push(body: Any, delivery_id: str = "") -> GitPush:
    """A GitLab ``Push Hook`` (``object_kind: push``) or ``Tag Push Hook``."""
    check = _Checker("GitLab push", body)
    kind = check.text("object_kind")
    if kind and kind not in ("push", "tag_push"):
        check.problems.append(f"object_kind: expected push or tag_push, got {kind!r}")
    ref = check.text("ref")
    after = check.text("after")
    before = check.text("before", required=False)
    repository = check.text("project.path_with_namespace")
    clone_url = check.text("project.git_http_url", required=False)
    pusher = check.text("user_username", required=False) or check.text("user_name", required=False)
    commits = _commits(check.items("commits"))
    check.done()
    deleted = after == _ZERO_SHA
    return GitPush(
        "gitlab", delivery_id, ref, before, after, repository, clone_url, pusher, commits, deleted, body
    )


# ------------------------------------------------------------------------------------ cloud events


@dataclass(frozen=True)
class CloudEventInfo:
    """The CloudEvent context attributes we use, from the SDK's event or a plain mapping."""

    id: str
    type: str
    source: str
    subject: str
    time: datetime | None

    @classmethod
    def of(cls, event: Any) -> CloudEventInfo:
        def attribute(name: str) -> str:
            getter = getattr(event, "get", None)
            value = getter(name) if callable(getter) else None
            return "" if value is None else str(value)

        return cls(
            id=attribute("id"),
            type=attribute("type"),
            source=attribute("source"),
            subject=attribute("subject"),
            time=parse_timestamp(attribute("time")) if attribute("time") else None,
        )


@dataclass(frozen=True)
class StorageObject:
    """The data of a ``google.cloud.storage.object.v1.finalized`` CloudEvent (a JSON API object resource)."""

    bucket: str
    name: str
    generation: int
    metageneration: int
    size: int
    content_type: str
    md5_hash: str
    crc32c: str
    time_created: datetime | None
    updated: datetime | None
    metadata: Mapping[str, str]
    raw: Mapping[str, Any] = field(repr=False)

    @property
    def key(self) -> str:
        """The idempotency key of this object version: ``bucket/name#generation``."""
        return f"{self.bucket}/{self.name}#{self.generation}"

    @property
    def uri(self) -> str:
        return f"gs://{self.bucket}/{self.name}"


def storage_object(data: Any) -> StorageObject:
    check = _Checker("Cloud Storage object event", data)
    bucket = check.text("bucket")
    name = check.text("name")
    generation = check.int64("generation")
    metageneration = check.int64("metageneration", required=False)
    size = check.int64("size", required=False)
    content_type = check.text("contentType", required=False)
    md5_hash = check.text("md5Hash", required=False)
    crc32c = check.text("crc32c", required=False)
    created = check.timestamp("timeCreated", required=False)
    updated = check.timestamp("updated", required=False)
    metadata = {str(k): str(v) for k, v in check.mapping("metadata").items()}
    check.done()
    return StorageObject(
        bucket,
        name,
        generation,
        metageneration,
        size,
        content_type,
        md5_hash,
        crc32c,
        created,
        updated,
        metadata,
        data,
    )


@dataclass(frozen=True)
class PubSubMessage:
    """A Pub/Sub message from a push envelope, a ``messagePublished`` CloudEvent, or functions-framework's
    conversion of a raw push (which drops ``subscription``)."""

    message_id: str
    publish_time: datetime | None
    attributes: Mapping[str, str]
    data: bytes
    subscription: str
    ordering_key: str
    delivery_attempt: int
    raw: Mapping[str, Any] = field(repr=False)

    def text(self) -> str:
        try:
            return self.data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidEvent("Pub/Sub message", ["message.data: not UTF-8 text"]) from None

    def json(self) -> Any:
        try:
            return json.loads(self.text())
        except json.JSONDecodeError as error:
            raise InvalidEvent(
                "Pub/Sub message", [f"message.data: not JSON ({error.msg} at {error.pos})"]
            ) from None


def pubsub_message(body: Any) -> PubSubMessage:
    """Parse ``{"message": {...}, "subscription": ...}`` (push envelope or CloudEvent data)."""
    check = _Checker("Pub/Sub message", body)
    message = check.mapping("message", required=True)
    message_id = check.text("message.messageId") or check.text("message.message_id", required=False)
    if message_id:
        check.problems = [p for p in check.problems if not p.startswith("message.messageId")]
    publish_time = check.timestamp("message.publishTime", required=False)
    attributes_raw = check.mapping("message.attributes")
    attributes = {str(k): str(v) for k, v in attributes_raw.items()}
    encoded = message.get("data", "")
    data = b""
    if encoded:
        if not isinstance(encoded, str):
            check.problems.append("message.data: must be a base64 string")
        else:
            try:
                data = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                check.problems.append("message.data: not valid base64")
    subscription = check.text("subscription", required=False)
    ordering_key = check.text("message.orderingKey", required=False)
    attempt = check.int64("deliveryAttempt", required=False)
    check.done()
    return PubSubMessage(
        message_id, publish_time, attributes, data, subscription, ordering_key, attempt, body
    )


# ----------------------------------------------------------------------------------- Cloud Build


BUILD_TERMINAL = frozenset({"SUCCESS", "FAILURE", "INTERNAL_ERROR", "TIMEOUT", "CANCELLED", "EXPIRED"})


@dataclass(frozen=True)
class BuiltImage:
    name: str
    digest: str


@dataclass(frozen=True)
class BuildMessage:
    """A message on the ``cloud-builds`` topic: data is the Build resource, attributes buildId and status."""

    build_id: str
    status: str
    project_id: str
    tags: tuple[str, ...]
    images: tuple[str, ...]
    built_images: tuple[BuiltImage, ...]
    substitutions: Mapping[str, str]
    log_url: str
    create_time: datetime | None
    finish_time: datetime | None
    failure: str
    raw: Mapping[str, Any] = field(repr=False)

    @property
    def terminal(self) -> bool:
        return self.status in BUILD_TERMINAL

    def tag_value(self, prefix: str) -> str | None:
        """Value of a ``prefix-value`` tag (tags are how we link a build to its run)."""
        for tag in self.tags:
            if tag.startswith(prefix + "-"):
                return tag[len(prefix) + 1 :]
        return None


def build_message(message: PubSubMessage) -> BuildMessage:
    build = message.json()
    check = _Checker("Cloud Build message", build)
    build_id = message.attributes.get("buildId") or check.text("id", required=False)
    status = message.attributes.get("status") or check.text("status", required=False)
    if not build_id:
        check.problems.append("attributes.buildId (or data.id): required")
    if not status:
        check.problems.append("attributes.status (or data.status): required")
    results = check.mapping("results")
    built = tuple(
        BuiltImage(str(item.get("name", "")), str(item.get("digest", "")))
        for item in results.get("images", []) or []
        if isinstance(item, Mapping)
    )
    failure_info = check.mapping("failureInfo")
    result = BuildMessage(
        build_id=build_id,
        status=status,
        project_id=check.text("projectId", required=False),
        tags=_strings(check.data.get("tags")),
        images=_strings(check.data.get("images")),
        built_images=built,
        substitutions={str(k): str(v) for k, v in check.mapping("substitutions").items()},
        log_url=check.text("logUrl", required=False),
        create_time=check.timestamp("createTime", required=False),
        finish_time=check.timestamp("finishTime", required=False),
        failure=str(failure_info.get("detail", "")) or check.text("statusDetail", required=False),
        raw=build,
    )
    check.done()
    return result


# --------------------------------------------------------------------------------- drift, approval


@dataclass(frozen=True)
class DriftAlert:
    """A Cloud Monitoring incident notification (webhook / Pub/Sub channel, schema version 1.2)."""

    incident_id: str
    state: str
    policy_name: str
    condition_name: str
    metric_type: str
    resource_labels: Mapping[str, str]
    metric_labels: Mapping[str, str]
    policy_labels: Mapping[str, str]
    observed_value: str
    threshold_value: str
    started_at: datetime | None
    summary: str
    url: str
    raw: Mapping[str, Any] = field(repr=False)

    @property
    def is_open(self) -> bool:
        return self.state.lower() == "open"

    @property
    def model(self) -> str:
        """The model the alert is about: a ``model`` label on the policy, metric or resource."""
        for labels in (self.policy_labels, self.metric_labels, self.resource_labels):
            for key in ("model", "model_id", "model_name"):
                if labels.get(key):
                    return labels[key]
        return ""


def drift_alert(body: Any) -> DriftAlert:
    check = _Checker("drift alert", body)
    check.mapping("incident", required=True)
    incident_id = check.text("incident.incident_id")
    state = check.text("incident.state")
    if state and state.lower() not in ("open", "closed"):
        check.problems.append(f"incident.state: expected open or closed, got {state!r}")

    def labels(path: str) -> dict[str, str]:
        return {str(k): str(v) for k, v in check.mapping(path).items()}

    alert = DriftAlert(
        incident_id=incident_id,
        state=state,
        policy_name=check.text("incident.policy_name", required=False),
        condition_name=check.text("incident.condition_name", required=False),
        metric_type=check.text("incident.metric.type", required=False),
        resource_labels=labels("incident.resource.labels"),
        metric_labels=labels("incident.metric.labels"),
        policy_labels=labels("incident.policy_user_labels"),
        observed_value=check.text("incident.observed_value", required=False),
        threshold_value=check.text("incident.threshold_value", required=False),
        started_at=check.timestamp("incident.started_at", required=False),
        summary=check.text("incident.summary", required=False),
        url=check.text("incident.url", required=False),
        raw=body,
    )
    check.done()
    return alert


@dataclass(frozen=True)
class ApprovalDecision:
    """A human decision on a candidate model version, from Pub/Sub, a Slack interaction or the CLI."""

    run_id: str
    model: str
    version: str
    decision: str
    approver: str
    reason: str
    nonce: str
    decided_at: datetime | None
    raw: Mapping[str, Any] = field(repr=False)

    @property
    def approved(self) -> bool:
        return self.decision == "approve"


def approval_decision(body: Any) -> ApprovalDecision:
    check = _Checker("approval decision", body)
    decision = check.text("decision").lower()
    if decision and decision not in ("approve", "reject"):
        check.problems.append(f"decision: expected approve or reject, got {decision!r}")
    result = ApprovalDecision(
        run_id=check.text("run_id"),
        model=check.text("model"),
        version=check.text("version"),
        decision=decision,
        approver=check.text("approver"),
        reason=check.text("reason", required=False),
        nonce=check.text("nonce", required=False),
        decided_at=check.timestamp("decided_at", required=False),
        raw=body,
    )
    check.done()
    return result


# -------------------------------------------------------------------------------- internal envelope


@dataclass(frozen=True)
class Envelope:
    """Our internal event: a fact with a type, the run it belongs to, and what caused it.

    On Pub/Sub the body is this JSON, and ``type``, ``run_id``, ``event_id`` and ``schema_version`` are
    repeated as message attributes so subscribers can route without parsing.
    """

    type: str
    run_id: str
    event_id: str
    data: Mapping[str, Any]
    schema_version: str = SCHEMA_VERSION
    causation_id: str = ""
    occurred_at: datetime | None = None

    def to_json(self) -> JSON:
        return {
            "type": self.type,
            "run_id": self.run_id,
            "event_id": self.event_id,
            "schema_version": self.schema_version,
            "causation_id": self.causation_id,
            "occurred_at": (self.occurred_at or datetime.now(UTC)).isoformat().replace("+00:00", "Z"),
            "data": dict(self.data),
        }

    def attributes(self) -> dict[str, str]:
        return {
            "type": self.type,
            "run_id": self.run_id,
            "event_id": self.event_id,
            "schema_version": self.schema_version,
        }


def new_envelope(
    event_type: str, run_id: str, data: Mapping[str, Any], causation_id: str = "", event_id: str | None = None
) -> Envelope:
    """A fresh envelope; pass ``event_id`` derived from the cause to make re-emission idempotent."""
    return Envelope(
        type=event_type,
        run_id=run_id,
        event_id=event_id or uuid.uuid4().hex,
        data=data,
        causation_id=causation_id,
        occurred_at=datetime.now(UTC),
    )


def envelope(message: PubSubMessage) -> Envelope:
    body = message.json()
    check = _Checker("internal event", body)
    event_type = check.text("type")
    run_id = check.text("run_id")
    event_id = check.text("event_id")
    schema_version = check.text("schema_version", required=False) or SCHEMA_VERSION
    if schema_version != SCHEMA_VERSION:
        check.problems.append(
            f"schema_version: this release reads {SCHEMA_VERSION!r}, got {schema_version!r}"
        )
    data = check.mapping("data", required=True)
    occurred_at = check.timestamp("occurred_at", required=False)
    attribute_type = message.attributes.get("type")
    if attribute_type and event_type and attribute_type != event_type:
        check.problems.append(f"attributes.type {attribute_type!r} differs from body type {event_type!r}")
    check.done()
    return Envelope(
        type=event_type,
        run_id=run_id,
        event_id=event_id,
        data=data,
        schema_version=schema_version,
        causation_id=check.text("causation_id", required=False),
        occurred_at=occurred_at,
    )
