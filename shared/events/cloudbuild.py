"""Cloud Build: a message on the ``cloud-builds`` topic (data: the Build; attributes buildId, status)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.events.common import identifier, invalid, strings
from shared.events.limits import MAX_ID_BYTES, MAX_NAME_BYTES
from shared.events.pubsub import PubSubMessage
from shared.problems import Problems, utf8_size

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
    problems = Problems()
    resource = problems.reader(build)
    # The attributes win (they are what Cloud Build routes on); the resource's own fields are the fallback.
    build_id = message.attributes.get("buildId") or identifier(resource, "id", required=False)
    status = message.attributes.get("status") or resource.string("status", "", max_bytes=MAX_NAME_BYTES)
    if not build_id:
        problems.add("attributes.buildId (or data.id)", "required")
    elif utf8_size(build_id) > MAX_ID_BYTES:
        problems.add("attributes.buildId", f"must be at most {MAX_ID_BYTES} bytes, got {utf8_size(build_id)}")
    if not status:
        problems.add("attributes.status (or data.status)", "required")
    results = resource.mapping("results")
    built = tuple(
        BuiltImage(str(item.get("name", "")), str(item.get("digest", "")))
        for item in results.get("images", []) or []
        if isinstance(item, Mapping)
    )
    failure_info = resource.mapping("failureInfo")
    result = BuildMessage(
        build_id=build_id,
        status=status,
        project_id=resource.string("projectId", ""),
        tags=strings(resource.get("tags")),
        images=strings(resource.get("images")),
        built_images=built,
        substitutions=resource.string_map("substitutions"),
        log_url=resource.string("logUrl", ""),
        create_time=resource.timestamp("createTime"),
        finish_time=resource.timestamp("finishTime"),
        failure=str(failure_info.get("detail", "")) or resource.string("statusDetail", ""),
        raw=build,
    )
    problems.raise_if_any(invalid("Cloud Build message"))
    return result
