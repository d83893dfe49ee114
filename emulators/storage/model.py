"""What the JSON API says about buckets and objects: the stored records and the resources rendered from
them, the client-writable object fields, generation/metageneration preconditions, times and etags."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from emulators.storage.errors import bad_request, not_modified, precondition_failed, required
from emulators.storage.payloads import Payload
from emulators.storage.wire import int_arg, quote_name

DEFAULT_CONTENT_TYPE: Final = "application/octet-stream"
# Object fields a client may set (besides contentType and metadata), copied verbatim.
OPTIONAL_FIELDS: Final = (
    "cacheControl",
    "contentDisposition",
    "contentEncoding",
    "contentLanguage",
    "customTime",
)


def rfc3339(micros: int) -> str:
    """``2020-04-23T07:38:57.230Z`` from microseconds since the epoch: the API's form (millis, Z)."""
    seconds, rest = divmod(micros, 1_000_000)
    moment = datetime.fromtimestamp(seconds, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{rest // 1000:03d}Z"


def wall_time(seconds: float | None) -> str | None:
    return None if seconds is None else rfc3339(int(seconds * 1_000_000))


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def object_etag(generation: int, metageneration: int) -> str:
    """The object etag as GCS makes it: base64 of the protobuf ``{1: generation, 2: metageneration}``."""
    return base64.b64encode(b"\x08" + _varint(generation) + b"\x10" + _varint(metageneration)).decode()


def bucket_etag(metageneration: int) -> str:
    return base64.b64encode(b"\x08" + _varint(metageneration)).decode()


def project_number(project: str) -> str:
    """A stable, made-up 12-digit project number for ``project``."""
    digest = hashlib.sha256(project.encode()).digest()
    return str(100_000_000_000 + int.from_bytes(digest[:8], "big") % 900_000_000_000)


def check_object_name(name: str) -> None:
    if not name:
        raise required("object name")
    if len(name.encode("utf-8")) > 1024:
        raise bad_request("Object name is longer than 1024 bytes")
    if "\r" in name or "\n" in name:
        raise bad_request("Object name must not contain carriage return or line feed characters")


@dataclass(frozen=True)
class ObjectProps:
    """The client-writable fields of an object."""

    content_type: str | None = None
    metadata: dict[str, str] | None = None
    optional: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> ObjectProps:
        """Fields present (and not null) in a request body; unknown and read-only fields are ignored."""
        content_type = body.get("contentType")
        if content_type is not None and not isinstance(content_type, str):
            raise bad_request("Invalid value for contentType: expected a string")
        metadata = body.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise bad_request("Invalid value for metadata: expected an object of string values")
        optional: dict[str, str] = {}
        for name in OPTIONAL_FIELDS:
            value = body.get(name)
            if value is not None:
                if not isinstance(value, str):
                    raise bad_request(f"Invalid value for {name}: expected a string")
                optional[name] = value
        return cls(
            content_type=content_type or None,
            metadata=clean_metadata(metadata) if metadata is not None else None,
            optional=optional,
        )

    def over(self, base: ObjectProps) -> ObjectProps:
        """These fields where set, ``base``'s elsewhere (how copy/rewrite apply a destination body)."""
        return ObjectProps(
            content_type=self.content_type or base.content_type,
            metadata=self.metadata if self.metadata is not None else base.metadata,
            optional={**base.optional, **self.optional},
        )

    def patched(self, body: Mapping[str, Any]) -> ObjectProps:
        """PATCH semantics: present fields replace, null removes, ``metadata`` keys merge (null deletes)."""
        content_type = self.content_type
        if "contentType" in body:
            value = body["contentType"]
            if value is not None and not isinstance(value, str):
                raise bad_request("Invalid value for contentType: expected a string")
            content_type = value or None
        metadata = self.metadata
        if "metadata" in body:
            patch = body["metadata"]
            if patch is None:
                metadata = None
            elif isinstance(patch, dict):
                merged = dict(metadata or {})
                for key, value in patch.items():
                    if value is None:
                        merged.pop(str(key), None)
                    else:
                        merged[str(key)] = metadata_value(key, value)
                metadata = merged or None
            else:
                raise bad_request("Invalid value for metadata: expected an object of string values")
        optional = dict(self.optional)
        for name in OPTIONAL_FIELDS:
            if name in body:
                value = body[name]
                if value is None:
                    optional.pop(name, None)
                elif isinstance(value, str):
                    optional[name] = value
                else:
                    raise bad_request(f"Invalid value for {name}: expected a string")
        return ObjectProps(content_type=content_type, metadata=metadata, optional=optional)


def metadata_value(key: Any, value: Any) -> str:
    if isinstance(value, dict | list):
        raise bad_request(f"Invalid value for metadata.{key}: expected a string")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def clean_metadata(metadata: Mapping[str, Any]) -> dict[str, str] | None:
    cleaned = {str(k): metadata_value(k, v) for k, v in metadata.items() if v is not None}
    return cleaned or None


@dataclass(frozen=True)
class StoredObject:
    """One live object generation. Immutable: a metadata change stores a new instance."""

    bucket: str
    name: str
    generation: int
    metageneration: int
    payload: Payload
    props: ObjectProps
    created_us: int
    updated_us: int
    component_count: int | None = None

    @property
    def content_type(self) -> str:
        return self.props.content_type or DEFAULT_CONTENT_TYPE

    def resource(self, base_url: str) -> dict[str, Any]:
        """The object resource as the JSON API returns it."""
        quoted = quote_name(self.name)
        resource: dict[str, Any] = {
            "kind": "storage#object",
            "id": f"{self.bucket}/{self.name}/{self.generation}",
            "selfLink": f"{base_url}/storage/v1/b/{self.bucket}/o/{quoted}",
            "mediaLink": (
                f"{base_url}/download/storage/v1/b/{self.bucket}/o/{quoted}"
                f"?generation={self.generation}&alt=media"
            ),
            "name": self.name,
            "bucket": self.bucket,
            "generation": str(self.generation),
            "metageneration": str(self.metageneration),
            "contentType": self.content_type,
            "storageClass": "STANDARD",
            "size": str(self.payload.size),
        }
        if self.payload.md5 is not None:
            resource["md5Hash"] = self.payload.md5
        resource["crc32c"] = self.payload.crc32c
        if self.component_count is not None:
            resource["componentCount"] = self.component_count
        resource["etag"] = object_etag(self.generation, self.metageneration)
        resource["timeCreated"] = rfc3339(self.created_us)
        resource["updated"] = rfc3339(self.updated_us)
        resource["timeStorageClassUpdated"] = rfc3339(self.created_us)
        resource.update(self.props.optional)
        if self.props.metadata:
            resource["metadata"] = dict(self.props.metadata)
        return resource

    def hash_header(self) -> str:
        parts = [f"crc32c={self.payload.crc32c}"]
        if self.payload.md5 is not None:
            parts.append(f"md5={self.payload.md5}")
        return ",".join(parts)


@dataclass
class StoredBucket:
    name: str
    project: str
    created_us: int
    updated_us: int
    location: str
    storage_class: str
    labels: dict[str, str]
    metageneration: int = 1
    objects: dict[str, StoredObject] = field(default_factory=dict)

    def resource(self, base_url: str) -> dict[str, Any]:
        resource: dict[str, Any] = {
            "kind": "storage#bucket",
            "selfLink": f"{base_url}/storage/v1/b/{self.name}",
            "id": self.name,
            "name": self.name,
            "projectNumber": project_number(self.project),
            "metageneration": str(self.metageneration),
            "location": self.location,
            "storageClass": self.storage_class,
            "etag": bucket_etag(self.metageneration),
            "timeCreated": rfc3339(self.created_us),
            "updated": rfc3339(self.updated_us),
            "iamConfiguration": {
                "bucketPolicyOnly": {"enabled": False},
                "uniformBucketLevelAccess": {"enabled": False},
                "publicAccessPrevention": "inherited",
            },
            "locationType": "multi-region" if self.location in {"US", "EU", "ASIA"} else "region",
            "rpo": "DEFAULT",
        }
        if self.labels:
            resource["labels"] = dict(self.labels)
        return resource


@dataclass(frozen=True)
class Preconditions:
    """``ifGenerationMatch`` & co. (or their ``ifSource...`` forms) from a request's query."""

    generation_match: int | None = None
    generation_not_match: int | None = None
    metageneration_match: int | None = None
    metageneration_not_match: int | None = None

    @classmethod
    def from_args(cls, args: Mapping[str, str], source: bool = False) -> Preconditions:
        prefix = "ifSource" if source else "if"
        return cls(
            generation_match=int_arg(args, f"{prefix}GenerationMatch"),
            generation_not_match=int_arg(args, f"{prefix}GenerationNotMatch"),
            metageneration_match=int_arg(args, f"{prefix}MetagenerationMatch"),
            metageneration_not_match=int_arg(args, f"{prefix}MetagenerationNotMatch"),
        )

    def check(self, current: StoredObject | None, read: bool = False) -> None:
        """Raise 412 (304 for a failed not-match on a read) unless every condition holds for ``current``."""
        generation = current.generation if current is not None else 0
        not_modified_error = not_modified() if read else precondition_failed()
        if self.generation_match is not None and generation != self.generation_match:
            raise precondition_failed()
        if self.generation_not_match is not None and generation == self.generation_not_match:
            raise not_modified_error
        if self.metageneration_match is not None and (
            current is None or current.metageneration != self.metageneration_match
        ):
            raise precondition_failed()
        if (
            self.metageneration_not_match is not None
            and current is not None
            and current.metageneration == self.metageneration_not_match
        ):
            raise not_modified_error
