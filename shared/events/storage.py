"""Cloud Storage: the data of an ``object.v1.finalized`` CloudEvent (a JSON API object resource)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.events.common import invalid
from shared.events.limits import MAX_BUCKET_NAME_BYTES, MAX_OBJECT_METADATA_BYTES, MAX_OBJECT_NAME_BYTES
from shared.problems import Problems, utf8_size

STORAGE_FINALIZED = "google.cloud.storage.object.v1.finalized"


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
    problems = Problems()
    resource = problems.reader(data)
    bucket = resource.string("bucket", "", required=True, max_bytes=MAX_BUCKET_NAME_BYTES)
    name = resource.string("name", "", required=True, max_bytes=MAX_OBJECT_NAME_BYTES)
    generation = resource.int64("generation", required=True)
    metageneration = resource.int64("metageneration")
    size = resource.int64("size")
    content_type = resource.string("contentType", "")
    md5_hash = resource.string("md5Hash", "")
    crc32c = resource.string("crc32c", "")
    created = resource.timestamp("timeCreated")
    updated = resource.timestamp("updated")
    metadata = resource.string_map("metadata")
    total = sum(utf8_size(key) + utf8_size(value) for key, value in metadata.items())
    if total > MAX_OBJECT_METADATA_BYTES:
        resource.add("metadata", f"at most {MAX_OBJECT_METADATA_BYTES} bytes in total, got {total}")
    problems.raise_if_any(invalid("Cloud Storage object event"))
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
