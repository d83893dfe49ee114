"""A Cloud Storage emulator that also plays Eventarc's part: it delivers ``object.v1.finalized`` CloudEvents.

Google's storage emulators (and fake-gcs-server) emit no notifications, so an object upload could never
trigger a function locally. This emulator serves the subset of the Cloud Storage JSON API that the
unmodified ``google-cloud-storage`` client uses, and after every successful object write (any upload
kind, copy, rewrite, compose) POSTs a ``google.cloud.storage.object.v1.finalized`` CloudEvent in binary
content mode to every URL routed for the bucket, the way an Eventarc trigger would.

Pointing the client at it
-------------------------
``STORAGE_EMULATOR_HOST`` must include the scheme: ``STORAGE_EMULATOR_HOST=http://127.0.0.1:PORT``.
``google-cloud-storage`` uses the variable verbatim as its API base URL (``_helpers.py`` says "Despite name,
includes scheme"); it builds ``{base}/storage/v1/...``, ``{base}/upload/storage/v1/...`` and
``{base}/download/storage/v1/...``. Without the scheme (``127.0.0.1:PORT``) every request fails in
``requests`` with ``InvalidSchema: No connection adapters were found``. With the variable set the client
needs no credentials (it falls back to ``AnonymousCredentials``); ``storage.Client(project=P,
credentials=AnonymousCredentials())`` and ``storage.Client.create_anonymous_client()`` both work.

Running it
----------
``python -m emulators.storage --host 127.0.0.1 --port PORT --project PROJECT [--data-dir DIR]
[--routes-file FILE] [--retry-min-backoff 0.5] [--retry-max-backoff 10] [--max-delivery-attempts 5]
[--delivery-timeout 10] [--delivery-workers 4] [--shutdown-grace 3] [--log-level INFO]``.
SIGTERM or SIGINT stops the HTTP server, gives pending deliveries ``--shutdown-grace`` seconds, dead-letters
whatever is still undelivered, and exits 0.

State
-----
Buckets, object metadata, upload sessions and deliveries live in memory and are lost on exit. Object bytes
live in memory too, unless ``--data-dir DIR`` is given: then they are files under ``DIR/objects`` (one per
object generation, written through ``DIR/uploads`` while an upload is in flight), so large tarballs never
sit in RAM, and dead letters are appended to ``DIR/dead-letters.jsonl``. At start-up, leftover object and
upload files from a previous run are deleted (their metadata is gone); ``dead-letters.jsonl`` is kept.
``--project`` is the project of buckets created without one (the client sends ``<none>`` when it has no
project) and the project that ``buckets.list`` without a project lists.

JSON API served (``/storage/v1``, ``/upload/storage/v1``, ``/download/storage/v1``)
--------------------------------------------------------------------------------------
Buckets: insert, get, list (``prefix``, ``maxResults``, ``pageToken``), patch (labels), delete (409 when
not empty). Objects: uploads with ``uploadType=media``, ``multipart`` and ``resumable`` (chunked ``PUT`` with
``Content-Range``, status queries ``bytes */*``, unknown total size, cancel with ``DELETE``); get (JSON or
``alt=media``, with ``Range`` and ``generation``); list (``prefix``, ``delimiter`` -> ``prefixes``,
``maxResults``, ``pageToken``, ``startOffset``, ``endOffset``); patch and update (``metadata``,
``contentType``, ``cacheControl``, ``contentDisposition``, ``contentEncoding``, ``contentLanguage``,
``customTime``); delete; copy (``copyTo``), rewrite (``rewriteTo``, always done in one call) and compose.
The ``ifGenerationMatch``/``ifGenerationNotMatch``/``ifMetagenerationMatch``/``ifMetagenerationNotMatch``
preconditions (and their ``ifSource...`` forms) are honoured; a failed one answers 412 (304 on reads).
Uploads are checked against the client's ``crc32c``/``md5Hash`` (multipart metadata, ``x-goog-hash``).
Downloads carry ``x-goog-hash: crc32c=...,md5=...`` and ``x-goog-generation``. Object versioning,
ACLs/IAM, batch requests, signed URLs and the XML API are not emulated; unsupported list filters
(``matchGlob``, ``includeTrailingDelimiter``) are refused with 400 rather than ignored.

Events
------
Routes map a bucket to target URLs: ``{"BUCKET": ["http://127.0.0.1:PORT/on_data_object", ...]}``, loaded
from ``--routes-file`` and replaceable at runtime. Each event is POSTed with ``ce-specversion: 1.0``,
``ce-id`` (a UUIDv5 of ``bucket/name/generation``, so a re-send is recognisably the same event; see
:func:`event_id`), ``ce-source: //storage.googleapis.com/projects/_/buckets/BUCKET``, ``ce-type``,
``ce-subject: objects/NAME``, ``ce-time`` (the object's ``updated``), ``ce-bucket: BUCKET`` and
``Content-Type: application/json``; the body is the object resource exactly as the JSON API returned it
for the write. Header values are sent verbatim except characters outside printable ASCII, which are
percent-encoded as UTF-8 (the CloudEvents HTTP binding's rule; HTTP headers cannot carry them raw).

Delivery runs on background worker threads and never delays the upload response. A non-2xx answer or a
connection error is retried with exponential backoff (``--retry-min-backoff`` doubling up to
``--retry-max-backoff``, plus up to 25 % jitter) for at most ``--max-delivery-attempts`` attempts; then the
event is dead-lettered: kept in memory and, with ``--data-dir``, appended to ``dead-letters.jsonl`` with its
headers, body, attempts and last status/error. Events for a bucket without routes are recorded as
``unrouted``. On shutdown, deliveries not done within ``--shutdown-grace`` are dead-lettered too. Nothing
is dropped silently. As with Eventarc, there is no ordering guarantee between events (several workers,
retries), so receivers should key on ``ce-id`` or ``bucket/name#generation``.

Admin endpoints (``/_emulator/``)
---------------------------------
``GET health`` -> ``{"status": "ok", ...counts}``; ``GET deliveries`` (optional ``?status=``, ``?bucket=``)
-> every delivery with its target, attempts and status (``pending``, ``retrying``, ``delivered``,
``dead_lettered``, ``unrouted``); ``GET dead-letters``; ``GET routes``; ``PUT routes`` (replace, JSON body
as in the routes file); ``POST reset`` (drop buckets, objects, upload sessions, deliveries and dead letters;
routes and ``dead-letters.jsonl`` stay). :class:`StorageEmulatorAdmin` wraps them for tests and the stack.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import dataclasses
import hashlib
import heapq
import io
import itertools
import json
import logging
import os
import random
import re
import shutil
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, BinaryIO, Final, TypedDict, cast
from urllib.parse import quote, unquote, urlsplit

import google_crc32c
import requests
from werkzeug.exceptions import ClientDisconnected
from werkzeug.http import parse_options_header
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

LOG = logging.getLogger("emulators.storage")
_CRC32C: Any = google_crc32c  # the package ships no type hints

FINALIZED: Final = "google.cloud.storage.object.v1.finalized"
DEFAULT_CONTENT_TYPE: Final = "application/octet-stream"
JSON_CONTENT_TYPE: Final = "application/json; charset=UTF-8"
BLOCK_SIZE: Final = 1 << 20
MAX_LIST_RESULTS: Final = 1000
MAX_COMPOSE_SOURCES: Final = 32
_EVENT_NAMESPACE: Final = uuid.UUID("6f1b8f3e-5a52-4c55-9a43-0c6d1f6b2a10")
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")
_OWN_FILE = re.compile(r"[0-9a-f]{32}(\.part)?")
_CONTENT_RANGE = re.compile(r"bytes\s+(?:(?P<start>\d+)-(?P<end>\d+)|\*)/(?P<total>\d+|\*)")
_RANGE = re.compile(r"bytes\s*=\s*(?P<start>\d*)\s*-\s*(?P<end>\d*)\s*(?:,.*)?")

# Object fields a client may set (besides contentType and metadata), copied verbatim.
OPTIONAL_FIELDS: Final = (
    "cacheControl",
    "contentDisposition",
    "contentEncoding",
    "contentLanguage",
    "customTime",
)
DELIVERY_STATUSES: Final = ("pending", "retrying", "delivered", "dead_lettered", "unrouted")


# --------------------------------------------------------------------------------------------- errors


class ApiError(Exception):
    """An error answered in the JSON API's shape, so the client raises the matching ``google.api_core``
    exception (404 -> ``NotFound``, 409 -> ``Conflict``, 412 -> ``PreconditionFailed``...)."""

    def __init__(
        self, code: int, reason: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.headers = dict(headers or {})

    def response(self) -> Response:
        if self.code == 304:
            return Response(status=304, headers=self.headers)
        body = {
            "error": {
                "code": self.code,
                "message": self.message,
                "errors": [{"message": self.message, "domain": "global", "reason": self.reason}],
            }
        }
        return json_response(body, status=self.code, headers=self.headers)


def bad_request(message: str, reason: str = "invalid") -> ApiError:
    return ApiError(400, reason, message)


def bucket_not_found(bucket: str) -> ApiError:
    return ApiError(404, "notFound", f"The specified bucket does not exist: {bucket}")


def object_not_found(bucket: str, name: str, generation: int | None = None) -> ApiError:
    suffix = f"#{generation}" if generation is not None else ""
    return ApiError(404, "notFound", f"No such object: {bucket}/{name}{suffix}")


def precondition_failed() -> ApiError:
    return ApiError(412, "conditionNotMet", "At least one of the pre-conditions you specified did not hold.")


def json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        json.dumps(data), status=status, headers=dict(headers or {}), content_type=JSON_CONTENT_TYPE
    )


# ------------------------------------------------------------------------------------ small helpers


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


def event_id(bucket: str, name: str, generation: int | str) -> str:
    """The ``ce-id`` of the finalized event of one object generation: deterministic, so re-sends match."""
    return str(uuid.uuid5(_EVENT_NAMESPACE, f"{bucket}/{name}/{generation}"))


def header_value(text: str) -> str:
    """Percent-encode (UTF-8) what an HTTP header cannot carry: characters outside printable ASCII."""
    return "".join(c if " " <= c <= "~" else quote(c, safe="") for c in text)


def quote_name(name: str) -> str:
    return quote(name, safe="")


def encode_token(data: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode()


def decode_token(token: str) -> dict[str, Any]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, binascii.Error):
        raise bad_request(f"Invalid pageToken {token!r}") from None
    if not isinstance(data, dict):
        raise bad_request(f"Invalid pageToken {token!r}")
    return data


def int_arg(args: Mapping[str, str], name: str) -> int | None:
    value = args.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise bad_request(f"Invalid value for {name}: {value!r} is not an integer") from None


def max_results_arg(args: Mapping[str, str]) -> int:
    value = int_arg(args, "maxResults")
    if value is None or value == 0:
        return MAX_LIST_RESULTS
    if value < 0:
        raise bad_request(f"Invalid value for maxResults: {value}")
    return min(value, MAX_LIST_RESULTS)


def check_object_name(name: str) -> None:
    if not name:
        raise ApiError(400, "required", "Required: object name")
    if len(name.encode("utf-8")) > 1024:
        raise bad_request("Object name is longer than 1024 bytes")
    if "\r" in name or "\n" in name:
        raise bad_request("Object name must not contain carriage return or line feed characters")


def parse_x_goog_hash(value: str | None) -> dict[str, str]:
    """``crc32c=AAAAAA==,md5=...`` -> ``{"crc32c": ..., "md5": ...}``."""
    hashes: dict[str, str] = {}
    for item in (value or "").split(","):
        key, sep, digest = item.strip().partition("=")
        if sep:
            hashes[key.strip().lower()] = digest.strip()
    return hashes


# ---------------------------------------------------------------------------------- object bytes


@dataclass(frozen=True)
class Payload:
    """The immutable bytes of one object generation: in memory, or a file under ``DIR/objects``."""

    size: int
    md5: str | None  # base64; None for composite objects, as in GCS
    crc32c: str  # base64 of the big-endian CRC32C
    path: Path | None = None
    data: bytes = b""

    def open(self) -> BinaryIO:
        if self.path is None:
            return io.BytesIO(self.data)
        return open(self.path, "rb")


class PayloadWriter:
    """Receives an upload's bytes, hashing as they arrive; ``finish`` turns them into a :class:`Payload`."""

    def __init__(self, store: PayloadStore) -> None:
        self._store = store
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._crc32c = _CRC32C.Checksum()
        self._hashes_valid = True
        self._path: Path | None = None
        self._file: BinaryIO
        if store.uploads_dir is None:
            self._file = io.BytesIO()
        else:
            self._path = store.uploads_dir / f"{uuid.uuid4().hex}.part"
            self._file = open(self._path, "w+b")  # noqa: SIM115 - closed by finish/discard
        self.size = 0
        self._closed = False

    def write(self, data: bytes) -> None:
        if data:
            self._file.write(data)
            if self._hashes_valid:
                self._md5.update(data)
                self._crc32c.update(data)
            self.size += len(data)

    def write_stream(self, stream: BinaryIO, limit: int | None = None) -> int:
        """Copy ``stream`` (at most ``limit`` bytes) into the upload; returns the number of bytes copied."""
        copied = 0
        while limit is None or copied < limit:
            want = BLOCK_SIZE if limit is None else min(BLOCK_SIZE, limit - copied)
            block = stream.read(want)
            if not block:
                break
            self.write(block)
            copied += len(block)
        return copied

    def truncate(self, size: int) -> None:
        """Forget everything after ``size`` bytes (a chunk that did not arrive whole)."""
        if size < self.size:
            self._file.seek(size)
            self._file.truncate(size)
            self.size = size
            self._hashes_valid = False

    def finish(self, composite: bool = False) -> Payload:
        """The received bytes as a payload (``composite``: no MD5, as GCS does for composed objects).

        After a failure here, :meth:`discard` still removes the partial file.
        """
        if self._closed:
            raise RuntimeError("this upload was already finished or discarded")
        if not self._hashes_valid:
            self._rehash()
        md5 = None if composite else base64.b64encode(self._md5.digest()).decode()
        crc32c = base64.b64encode(self._crc32c.digest()).decode()
        if isinstance(self._file, io.BytesIO):
            data = self._file.getvalue()
            self._file.close()
            self._closed = True
            return Payload(size=self.size, md5=md5, crc32c=crc32c, data=data)
        self._file.close()
        assert self._path is not None and self._store.objects_dir is not None
        final = self._store.objects_dir / uuid.uuid4().hex
        os.replace(self._path, final)
        self._closed = True
        return Payload(size=self.size, md5=md5, crc32c=crc32c, path=final)

    def discard(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._file.close()
        if self._path is not None:
            self._path.unlink(missing_ok=True)

    def _rehash(self) -> None:
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._crc32c = _CRC32C.Checksum()
        self._file.seek(0)
        for block in iter(lambda: self._file.read(BLOCK_SIZE), b""):
            self._md5.update(block)
            self._crc32c.update(block)
        self._hashes_valid = True


class PayloadStore:
    """Where object bytes live: in memory, or under ``root/objects`` and ``root/uploads``."""

    def __init__(self, root: Path | None) -> None:
        self.objects_dir: Path | None = None
        self.uploads_dir: Path | None = None
        if root is not None:
            self.objects_dir = root / "objects"
            self.uploads_dir = root / "uploads"
            for directory in (self.objects_dir, self.uploads_dir):
                directory.mkdir(parents=True, exist_ok=True)
                stale = [p for p in directory.iterdir() if p.is_file() and _OWN_FILE.fullmatch(p.name)]
                for path in stale:
                    path.unlink(missing_ok=True)
                if stale:
                    LOG.info("removed %d stale file(s) from %s", len(stale), directory)

    def writer(self) -> PayloadWriter:
        return PayloadWriter(self)

    def duplicate(self, payload: Payload) -> Payload:
        """The same bytes as a new, independently deletable payload (a hard link when on disk)."""
        if payload.path is None or self.objects_dir is None:
            return payload
        target = self.objects_dir / uuid.uuid4().hex
        try:
            os.link(payload.path, target)
        except FileNotFoundError:
            raise
        except OSError:
            shutil.copyfile(payload.path, target)
        return dataclasses.replace(payload, path=target)

    def release(self, payload: Payload) -> None:
        if payload.path is not None:
            payload.path.unlink(missing_ok=True)


# ------------------------------------------------------------------------------ object metadata


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
        not_modified = ApiError(304, "notModified", "Not Modified") if read else precondition_failed()
        if self.generation_match is not None and generation != self.generation_match:
            raise precondition_failed()
        if self.generation_not_match is not None and generation == self.generation_not_match:
            raise not_modified
        if self.metageneration_match is not None and (
            current is None or current.metageneration != self.metageneration_match
        ):
            raise precondition_failed()
        if (
            self.metageneration_not_match is not None
            and current is not None
            and current.metageneration == self.metageneration_not_match
        ):
            raise not_modified


class Clock:
    """Microsecond timestamps, strictly increasing: generation numbers and times of one emulator."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def tick(self) -> int:
        with self._lock:
            self._last = max(time.time_ns() // 1000, self._last + 1)
            return self._last


class StorageState:
    """Buckets and their live objects, behind one lock."""

    def __init__(self, store: PayloadStore, default_project: str) -> None:
        self._store = store
        self._default_project = default_project
        self._lock = threading.RLock()
        self._clock = Clock()
        self._buckets: dict[str, StoredBucket] = {}

    def project_or_default(self, project: str | None) -> str:
        return self._default_project if not project or project == "<none>" else project

    # Buckets.

    def create_bucket(self, body: Mapping[str, Any], project: str | None) -> StoredBucket:
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise ApiError(400, "required", "Required: bucket name")
        if not _BUCKET_NAME.fullmatch(name) or ".." in name:
            raise bad_request(
                f"Invalid bucket name: {name!r} (3-222 characters: lowercase letters, digits, '-', '_', '.'; "
                "starting and ending with a letter or digit)"
            )
        labels = body.get("labels") or {}
        if not isinstance(labels, dict):
            raise bad_request("Invalid value for labels: expected an object")
        location = str(body.get("location") or "US").upper()
        storage_class = str(body.get("storageClass") or "STANDARD").upper()
        with self._lock:
            if name in self._buckets:
                raise ApiError(
                    409,
                    "conflict",
                    "The requested bucket name is not available. The bucket namespace is shared by all users "
                    "of the system. Please select a different name and try again.",
                )
            now = self._clock.tick()
            bucket = StoredBucket(
                name=name,
                project=self.project_or_default(project),
                created_us=now,
                updated_us=now,
                location=location,
                storage_class=storage_class,
                labels={str(k): str(v) for k, v in labels.items()},
            )
            self._buckets[name] = bucket
            return bucket

    def bucket(self, name: str) -> StoredBucket:
        with self._lock:
            bucket = self._buckets.get(name)
            if bucket is None:
                raise bucket_not_found(name)
            return bucket

    def bucket_resource(self, name: str, base_url: str) -> dict[str, Any]:
        with self._lock:
            return self.bucket(name).resource(base_url)

    def list_buckets(self, project: str | None, prefix: str) -> list[StoredBucket]:
        wanted = self.project_or_default(project)
        with self._lock:
            buckets = [b for b in self._buckets.values() if b.project == wanted and b.name.startswith(prefix)]
        return sorted(buckets, key=lambda b: b.name)

    def patch_bucket(self, name: str, body: Mapping[str, Any], base_url: str) -> dict[str, Any]:
        with self._lock:
            bucket = self.bucket(name)
            if "labels" in body:
                labels = body["labels"]
                if labels is None:
                    bucket.labels = {}
                elif isinstance(labels, dict):
                    for key, value in labels.items():
                        if value is None:
                            bucket.labels.pop(str(key), None)
                        else:
                            bucket.labels[str(key)] = str(value)
                else:
                    raise bad_request("Invalid value for labels: expected an object")
            if body.get("storageClass"):
                bucket.storage_class = str(body["storageClass"]).upper()
            bucket.metageneration += 1
            bucket.updated_us = self._clock.tick()
            return bucket.resource(base_url)

    def delete_bucket(self, name: str, metageneration_match: int | None) -> None:
        with self._lock:
            bucket = self.bucket(name)
            if metageneration_match is not None and bucket.metageneration != metageneration_match:
                raise precondition_failed()
            if bucket.objects:
                raise ApiError(409, "conflict", "The bucket you tried to delete is not empty.")
            del self._buckets[name]

    # Objects.

    def current(self, bucket: str, name: str) -> StoredObject | None:
        with self._lock:
            return self.bucket(bucket).objects.get(name)

    def get_object(self, bucket: str, name: str, generation: int | None = None) -> StoredObject:
        with self._lock:
            found = self.bucket(bucket).objects.get(name)
        if found is None or (generation is not None and found.generation != generation):
            raise object_not_found(bucket, name, generation)
        return found

    def objects(self, bucket: str) -> list[StoredObject]:
        with self._lock:
            found = list(self.bucket(bucket).objects.values())
        return sorted(found, key=lambda o: o.name)

    def commit(
        self,
        bucket: str,
        name: str,
        payload: Payload,
        props: ObjectProps,
        conditions: Preconditions,
        component_count: int | None = None,
    ) -> StoredObject:
        """Store ``payload`` as the new live generation of ``bucket/name``; on any error it is released."""
        try:
            check_object_name(name)
            with self._lock:
                target = self.bucket(bucket)
                previous = target.objects.get(name)
                conditions.check(previous)
                generation = self._clock.tick()
                stored = StoredObject(
                    bucket=bucket,
                    name=name,
                    generation=generation,
                    metageneration=1,
                    payload=payload,
                    props=props,
                    created_us=generation,
                    updated_us=generation,
                    component_count=component_count,
                )
                target.objects[name] = stored
        except BaseException:
            self._store.release(payload)
            raise
        if previous is not None:
            self._store.release(previous.payload)
        return stored

    def update_object(
        self,
        bucket: str,
        name: str,
        generation: int | None,
        conditions: Preconditions,
        change: Callable[[ObjectProps], ObjectProps],
    ) -> StoredObject:
        with self._lock:
            target = self.bucket(bucket)
            current = target.objects.get(name)
            if current is None or (generation is not None and current.generation != generation):
                raise object_not_found(bucket, name, generation)
            conditions.check(current)
            updated = dataclasses.replace(
                current,
                props=change(current.props),
                metageneration=current.metageneration + 1,
                updated_us=max(self._clock.tick(), current.updated_us + 1),
            )
            target.objects[name] = updated
            return updated

    def delete_object(
        self, bucket: str, name: str, generation: int | None, conditions: Preconditions
    ) -> None:
        with self._lock:
            target = self.bucket(bucket)
            current = target.objects.get(name)
            if current is None or (generation is not None and current.generation != generation):
                raise object_not_found(bucket, name, generation)
            conditions.check(current)
            del target.objects[name]
        self._store.release(current.payload)

    def reset(self) -> None:
        with self._lock:
            payloads = [o.payload for b in self._buckets.values() for o in b.objects.values()]
            self._buckets.clear()
        for payload in payloads:
            self._store.release(payload)

    def counts(self) -> tuple[int, int]:
        with self._lock:
            return len(self._buckets), sum(len(b.objects) for b in self._buckets.values())


# ------------------------------------------------------------------------------ resumable uploads


@dataclass
class UploadSession:
    upload_id: str
    bucket: str
    name: str
    props: ObjectProps
    conditions: Preconditions
    declared_size: int | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    writer: PayloadWriter | None = None
    result: StoredObject | None = None
    cancelled: bool = False


class UploadSessions:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, UploadSession] = {}

    def create(self, session: UploadSession) -> None:
        with self._lock:
            self._sessions[session.upload_id] = session

    def get(self, upload_id: str) -> UploadSession:
        with self._lock:
            session = self._sessions.get(upload_id)
        if session is None:
            raise ApiError(404, "notFound", f"No such resumable upload session: {upload_id}")
        return session

    def remove(self, upload_id: str) -> None:
        with self._lock:
            self._sessions.pop(upload_id, None)

    def reset(self) -> None:
        with self._lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        for session in sessions:
            with session.lock:
                session.cancelled = True
                if session.writer is not None:
                    session.writer.discard()
                    session.writer = None


# -------------------------------------------------------------------------------------- events


class DeliveryView(TypedDict):
    """One event delivery, as ``GET /_emulator/deliveries`` reports it."""

    delivery_id: str
    event_id: str
    event_type: str
    bucket: str
    object: str
    generation: str
    target: str | None
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: str
    updated_at: str
    next_attempt_at: str | None


class DeadLetterView(DeliveryView):
    """A dead-lettered delivery, as ``GET /_emulator/dead-letters`` and ``dead-letters.jsonl`` hold it."""

    dead_lettered_at: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Delivery:
    """One event for one target (or one unrouted event). Mutated only under the dispatcher's lock."""

    delivery_id: str
    event_id: str
    bucket: str
    object_name: str
    generation: str
    target: str | None
    headers: dict[str, str]
    body: bytes
    epoch: int
    status: str = "pending"
    attempts: int = 0
    last_status_code: int | None = None
    last_error: str | None = None
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    next_attempt_at: float | None = None
    dead_lettered_at: float | None = None
    in_flight: bool = False

    def view(self) -> DeliveryView:
        return {
            "delivery_id": self.delivery_id,
            "event_id": self.event_id,
            "event_type": self.headers.get("ce-type", FINALIZED),
            "bucket": self.bucket,
            "object": self.object_name,
            "generation": self.generation,
            "target": self.target,
            "status": self.status,
            "attempts": self.attempts,
            "last_status_code": self.last_status_code,
            "last_error": self.last_error,
            "created_at": wall_time(self.created_at) or "",
            "updated_at": wall_time(self.updated_at) or "",
            "next_attempt_at": wall_time(self.next_attempt_at),
        }

    def dead_letter_view(self) -> DeadLetterView:
        base = self.view()
        return {
            **base,
            "dead_lettered_at": wall_time(self.dead_lettered_at) or "",
            "headers": dict(self.headers),
            "body": json.loads(self.body),
        }


def finalized_event(resource: Mapping[str, Any]) -> tuple[dict[str, str], bytes]:
    """Binary-mode CloudEvent headers and body of the ``finalized`` event of one object resource."""
    bucket = str(resource["bucket"])
    name = str(resource["name"])
    headers = {
        "ce-specversion": "1.0",
        "ce-id": event_id(bucket, name, resource["generation"]),
        "ce-source": header_value(f"//storage.googleapis.com/projects/_/buckets/{bucket}"),
        "ce-type": FINALIZED,
        "ce-subject": header_value(f"objects/{name}"),
        "ce-time": str(resource["updated"]),
        "ce-bucket": header_value(bucket),
        "Content-Type": "application/json",
    }
    return headers, json.dumps(resource).encode()


def parse_routes(data: Any, origin: str) -> dict[str, list[str]]:
    """Validate ``{"BUCKET": ["http://host:port/path", ...]}``; ``ValueError`` says what is wrong."""
    if not isinstance(data, dict):
        raise ValueError(f"{origin}: expected a JSON object mapping bucket names to lists of target URLs")
    routes: dict[str, list[str]] = {}
    for bucket, targets in data.items():
        if not isinstance(bucket, str) or not bucket:
            raise ValueError(f"{origin}: bucket names must be non-empty strings")
        if not isinstance(targets, list):
            raise ValueError(f"{origin}: routes of bucket {bucket!r} must be a list of URLs")
        for target in targets:
            parts = urlsplit(target) if isinstance(target, str) else None
            if parts is None or parts.scheme not in {"http", "https"} or not parts.netloc:
                raise ValueError(f"{origin}: route {target!r} of bucket {bucket!r} is not an http(s) URL")
        routes[bucket] = list(targets)
    return routes


@dataclass(frozen=True)
class DeliveryPolicy:
    min_backoff: float = 0.5
    max_backoff: float = 10.0
    max_attempts: int = 5
    timeout: float = 10.0
    workers: int = 4


class EventDispatcher:
    """Delivers events to their routes on worker threads, retrying with backoff, dead-lettering at the end."""

    def __init__(
        self, routes: Mapping[str, Sequence[str]], policy: DeliveryPolicy, dead_letter_file: Path | None
    ) -> None:
        self._policy = policy
        self._dead_letter_file = dead_letter_file
        self._routes: dict[str, list[str]] = {b: list(t) for b, t in routes.items()}
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, Delivery]] = []
        self._deliveries: list[Delivery] = []
        self._dead_letters: list[Delivery] = []
        self._sequence = itertools.count(1)  # heap tie-breaker
        self._ids = itertools.count(1)
        self._epoch = 0
        self._in_flight = 0
        self._closing = False
        self._stopped = False
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for index in range(self._policy.workers):
            thread = threading.Thread(target=self._work, name=f"storage-events-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    # Routes.

    def routes(self) -> dict[str, list[str]]:
        with self._cond:
            return {bucket: list(targets) for bucket, targets in self._routes.items()}

    def set_routes(self, routes: Mapping[str, Sequence[str]]) -> None:
        with self._cond:
            self._routes = {bucket: list(targets) for bucket, targets in routes.items()}
        LOG.info("routes replaced: %s", json.dumps(self._routes))

    # Publishing and views.

    def publish(self, resource: Mapping[str, Any]) -> list[Delivery]:
        headers, body = finalized_event(resource)
        bucket, name, generation = str(resource["bucket"]), str(resource["name"]), str(resource["generation"])
        with self._cond:
            targets: list[str | None] = list(self._routes.get(bucket, [])) or [None]
            created: list[Delivery] = []
            for target in targets:
                delivery = Delivery(
                    delivery_id=str(next(self._ids)),
                    event_id=headers["ce-id"],
                    bucket=bucket,
                    object_name=name,
                    generation=generation,
                    target=target,
                    headers=headers,
                    body=body,
                    epoch=self._epoch,
                )
                self._deliveries.append(delivery)
                created.append(delivery)
                if target is None:
                    delivery.status = "unrouted"
                    LOG.info(
                        "finalized gs://%s/%s#%s: no route for bucket %s", bucket, name, generation, bucket
                    )
                elif self._closing:
                    delivery.last_error = "the emulator was shutting down when the event was emitted"
                    self._dead_letter_locked(delivery)
                else:
                    delivery.next_attempt_at = time.time()
                    heapq.heappush(self._heap, (time.monotonic(), next(self._sequence), delivery))
            self._cond.notify_all()
        return created

    def deliveries(self, status: str | None = None, bucket: str | None = None) -> list[DeliveryView]:
        with self._cond:
            return [
                d.view()
                for d in self._deliveries
                if (status is None or d.status == status) and (bucket is None or d.bucket == bucket)
            ]

    def dead_letters(self) -> list[DeadLetterView]:
        with self._cond:
            return [d.dead_letter_view() for d in self._dead_letters]

    def counts(self) -> dict[str, int]:
        with self._cond:
            counts = dict.fromkeys(DELIVERY_STATUSES, 0)
            for delivery in self._deliveries:
                counts[delivery.status] += 1
            return counts

    def reset(self) -> None:
        with self._cond:
            self._epoch += 1
            self._heap.clear()
            self._deliveries.clear()
            self._dead_letters.clear()
            self._cond.notify_all()

    # Delivery.

    def _work(self) -> None:
        while True:
            with self._cond:
                delivery = self._next_due_locked()
                if delivery is None:
                    return
            ok, status_code, error = self._post(delivery)
            with self._cond:
                self._in_flight -= 1
                delivery.in_flight = False
                if delivery.epoch == self._epoch and delivery.status != "dead_lettered":
                    self._record_attempt_locked(delivery, ok, status_code, error)
                self._cond.notify_all()

    def _next_due_locked(self) -> Delivery | None:
        """Wait for the next due delivery and mark it in flight; ``None`` once the dispatcher stops."""
        while not self._stopped:
            if not self._heap:
                self._cond.wait()
                continue
            due, _, delivery = self._heap[0]
            wait = due - time.monotonic()
            if wait > 0:
                self._cond.wait(wait)
                continue
            heapq.heappop(self._heap)
            if delivery.epoch != self._epoch:
                continue
            delivery.in_flight = True
            self._in_flight += 1
            return delivery
        return None

    def _post(self, delivery: Delivery) -> tuple[bool, int | None, str | None]:
        assert delivery.target is not None
        try:
            with requests.post(
                delivery.target,
                data=delivery.body,
                headers=delivery.headers,
                timeout=self._policy.timeout,
                allow_redirects=False,
            ) as response:
                if 200 <= response.status_code < 300:
                    return True, response.status_code, None
                snippet = response.text[:300].strip()
                return False, response.status_code, f"HTTP {response.status_code}: {snippet}".rstrip(": ")
        except requests.RequestException as error:
            return False, None, f"{type(error).__name__}: {error}"
        except Exception as error:  # a worker must survive anything one delivery throws
            LOG.exception("unexpected error delivering to %s", delivery.target)
            return False, None, f"{type(error).__name__}: {error}"

    def _record_attempt_locked(
        self, delivery: Delivery, ok: bool, status_code: int | None, error: str | None
    ) -> None:
        delivery.attempts += 1
        delivery.last_status_code = status_code
        delivery.last_error = error
        delivery.updated_at = time.time()
        delivery.next_attempt_at = None
        what = f"gs://{delivery.bucket}/{delivery.object_name}#{delivery.generation} -> {delivery.target}"
        if ok:
            delivery.status = "delivered"
            LOG.info("delivered %s (attempt %d, HTTP %s)", what, delivery.attempts, status_code)
        elif delivery.attempts >= self._policy.max_attempts:
            self._dead_letter_locked(delivery)
        else:
            delay = self.backoff(delivery.attempts)
            delivery.status = "retrying"
            delivery.next_attempt_at = time.time() + delay
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._sequence), delivery))
            LOG.info("attempt %d of %s failed (%s); retrying in %.2fs", delivery.attempts, what, error, delay)

    def backoff(self, attempts: int) -> float:
        """Delay after ``attempts`` failed attempts: min * 2^(attempts-1), plus up to 25 % jitter, capped."""
        policy = self._policy
        base = min(policy.max_backoff, policy.min_backoff * float(2 ** (attempts - 1)))
        return min(policy.max_backoff, base + random.uniform(0, base * 0.25))

    def _dead_letter_locked(self, delivery: Delivery) -> None:
        delivery.status = "dead_lettered"
        delivery.dead_lettered_at = delivery.updated_at = time.time()
        delivery.next_attempt_at = None
        self._dead_letters.append(delivery)
        LOG.warning(
            "dead-lettered event %s of gs://%s/%s#%s for %s after %d attempt(s): %s",
            delivery.event_id,
            delivery.bucket,
            delivery.object_name,
            delivery.generation,
            delivery.target,
            delivery.attempts,
            delivery.last_error,
        )
        if self._dead_letter_file is not None:
            try:
                with open(self._dead_letter_file, "a", encoding="utf-8") as out:
                    out.write(json.dumps(delivery.dead_letter_view()) + "\n")
            except OSError as error:
                LOG.error("cannot append to %s: %s", self._dead_letter_file, error)

    def close(self, grace: float) -> None:
        """Stop: attempt what falls due within ``grace`` seconds, dead-letter everything else."""
        deadline = time.monotonic() + grace
        with self._cond:
            self._closing = True
            while True:
                remaining = deadline - time.monotonic()
                due_soon = any(due <= deadline and d.epoch == self._epoch for due, _, d in self._heap)
                if remaining <= 0 or (not due_soon and self._in_flight == 0):
                    break
                self._cond.wait(min(remaining, 0.05))
            leftovers = [d for _, _, d in self._heap if d.epoch == self._epoch]
            leftovers += [d for d in self._deliveries if d.in_flight]
            self._heap.clear()
            for delivery in leftovers:
                note = "the emulator shut down before the event was delivered"
                delivery.last_error = f"{delivery.last_error}; {note}" if delivery.last_error else note
                self._dead_letter_locked(delivery)
            self._stopped = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=0.5)
        if leftovers:
            LOG.warning("%d undelivered event(s) dead-lettered at shutdown", len(leftovers))


# ------------------------------------------------------------------------------------ HTTP layer


@dataclass(frozen=True)
class EmulatorConfig:
    project: str
    data_dir: Path | None = None
    routes: Mapping[str, Sequence[str]] = field(default_factory=dict)
    policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    shutdown_grace: float = 3.0


Handler = Callable[[Request, dict[str, str]], Response]

_B = r"(?P<bucket>[^/]+)"
_ROUTES: Final[list[tuple[re.Pattern[str], str]]] = [
    (re.compile(r"/_emulator/(?P<op>[a-z-]+)/?"), "admin"),
    (re.compile(r"/storage/v1/b/?"), "buckets"),
    (re.compile(rf"/storage/v1/b/{_B}/?"), "bucket"),
    (re.compile(rf"/storage/v1/b/{_B}/o/?"), "objects"),
    (
        re.compile(
            rf"/storage/v1/b/{_B}/o/(?P<object>.+)/(?P<op>copyTo|rewriteTo)"
            r"/b/(?P<dest_bucket>[^/]+)/o/(?P<dest_object>.+)"
        ),
        "copy",
    ),
    (re.compile(rf"/storage/v1/b/{_B}/o/(?P<object>.+)/compose"), "compose"),
    (re.compile(rf"/storage/v1/b/{_B}/o/(?P<object>.+)"), "object"),
    (re.compile(rf"/upload/storage/v1/b/{_B}/o/?"), "upload"),
    (re.compile(rf"/download/storage/v1/b/{_B}/o/(?P<object>.+)"), "download"),
]


def raw_path(environ: WSGIEnvironment) -> str:
    """The request path still percent-encoded, so ``a%2Fb`` (one object name) differs from ``a/b``."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if isinstance(raw, str) and raw:
        path = urlsplit(raw).path if "://" in raw else raw.split("?", 1)[0]
        return path or "/"
    return quote(str(environ.get("PATH_INFO", "/")).encode("latin-1").decode("utf-8", "replace"))


def json_body(request: Request) -> dict[str, Any]:
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as error:
        raise ApiError(400, "parseError", f"Parse Error: request body is not JSON ({error})") from None
    if not isinstance(data, dict):
        raise ApiError(400, "parseError", "Parse Error: request body must be a JSON object")
    return data


def drain(request: Request) -> None:
    """Read what is left of the request body, so the client is not cut off mid-send."""
    with contextlib.suppress(Exception):
        stream = request.stream
        while stream.read(BLOCK_SIZE):
            pass


def parse_multipart_related(body: bytes, content_type: str) -> tuple[dict[str, Any], str | None, bytes]:
    """Split a ``multipart/related`` upload into its metadata JSON, media content type and media bytes."""
    mimetype, options = parse_options_header(content_type)
    boundary = options.get("boundary")
    if mimetype != "multipart/related" or not boundary:
        raise bad_request(
            f"uploadType=multipart needs a multipart/related body with a boundary, got {content_type!r}"
        )
    delimiter = b"--" + boundary.encode("latin-1")
    start = body.find(delimiter)
    if start < 0:
        raise bad_request("Malformed multipart body: boundary not found")
    parts: list[tuple[dict[str, str], bytes]] = []
    for segment in body[start + len(delimiter) :].split(b"\r\n" + delimiter):
        if segment.startswith(b"--"):
            break
        if not segment.startswith(b"\r\n"):
            raise bad_request("Malformed multipart body: a boundary is not followed by a line break")
        segment = segment[2:]
        if segment.startswith(b"\r\n"):
            head, content = b"", segment[2:]
        else:
            head, separator, content = segment.partition(b"\r\n\r\n")
            if not separator:
                raise bad_request("Malformed multipart body: a part has no blank line after its headers")
        headers: dict[str, str] = {}
        for line in head.decode("latin-1").split("\r\n"):
            key, _, value = line.partition(":")
            if key.strip():
                headers[key.strip().lower()] = value.strip()
        parts.append((headers, content))
    else:
        raise bad_request("Malformed multipart body: the closing boundary is missing")
    if len(parts) != 2:
        raise bad_request(f"A multipart upload has 2 parts (metadata, media); this one has {len(parts)}")
    try:
        metadata = json.loads(parts[0][1] or b"{}")
    except ValueError as error:
        raise ApiError(400, "parseError", f"Parse Error: multipart metadata is not JSON ({error})") from None
    if not isinstance(metadata, dict):
        raise ApiError(400, "parseError", "Parse Error: multipart metadata must be a JSON object")
    return metadata, parts[1][0].get("content-type"), parts[1][1]


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Inclusive ``(start, end)`` of a ``Range: bytes=...`` header, ``None`` for the whole object.

    Only the first range of a multi-range header is served; a malformed header is ignored (RFC 9110).
    """
    if not header or size == 0:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None or (not match["start"] and not match["end"]):
        return None
    unsatisfiable = ApiError(
        416,
        "requestedRangeNotSatisfiable",
        f"The requested range {header!r} cannot be satisfied for an object of {size} bytes.",
        headers={"Content-Range": f"bytes */{size}"},
    )
    if not match["start"]:
        suffix = int(match["end"])
        if suffix == 0:
            raise unsatisfiable
        return max(0, size - suffix), size - 1
    start = int(match["start"])
    end = min(int(match["end"]), size - 1) if match["end"] else size - 1
    if start >= size:
        raise unsatisfiable
    if end < start:
        return None
    return start, end


def read_chunks(handle: BinaryIO, start: int, length: int) -> Iterator[bytes]:
    try:
        handle.seek(start)
        remaining = length
        while remaining > 0:
            block = handle.read(min(BLOCK_SIZE, remaining))
            if not block:
                break
            remaining -= len(block)
            yield block
    finally:
        handle.close()


class StorageEmulator:
    """The WSGI application: JSON API, uploads, downloads and the ``/_emulator/`` admin endpoints."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.store = PayloadStore(config.data_dir)
        self.state = StorageState(self.store, config.project)
        self.sessions = UploadSessions()
        dead_letter_file = config.data_dir / "dead-letters.jsonl" if config.data_dir else None
        self.events = EventDispatcher(config.routes, config.policy, dead_letter_file)
        self._handlers: dict[str, Handler] = {
            "admin": self._admin,
            "buckets": self._buckets,
            "bucket": self._bucket,
            "objects": self._objects,
            "copy": self._copy,
            "compose": self._compose,
            "object": self._object,
            "upload": self._upload,
            "download": self._download,
        }

    def start(self) -> None:
        self.events.start()

    def close(self) -> None:
        self.events.close(self.config.shutdown_grace)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self._dispatch(request)
        except ApiError as error:
            response = error.response()
        except ClientDisconnected:
            response = bad_request("The client disconnected before the request body was complete").response()
        except Exception:
            LOG.exception("internal error serving %s %s", request.method, request.full_path)
            response = ApiError(
                500, "backendError", "Internal error in the storage emulator; see its log"
            ).response()
        drain(request)
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        path = raw_path(request.environ)
        for pattern, kind in _ROUTES:
            match = pattern.fullmatch(path)
            if match is not None:
                params = {key: unquote(value) for key, value in match.groupdict().items()}
                return self._handlers[kind](request, params)
        raise ApiError(404, "notFound", f"Not Found: {request.method} {path} is not an emulated endpoint")

    @staticmethod
    def _base_url(request: Request) -> str:
        return request.host_url.rstrip("/")

    @staticmethod
    def _not_allowed(request: Request) -> ApiError:
        return ApiError(405, "methodNotAllowed", f"Method {request.method} is not allowed on {request.path}")

    # Admin.

    def _admin(self, request: Request, params: dict[str, str]) -> Response:
        op, method = params["op"], request.method
        if op == "health" and method == "GET":
            buckets, objects = self.state.counts()
            return json_response(
                {"status": "ok", "buckets": buckets, "objects": objects, "deliveries": self.events.counts()}
            )
        if op == "deliveries" and method == "GET":
            status = request.args.get("status") or None
            if status is not None and status not in DELIVERY_STATUSES:
                raise bad_request(
                    f"Unknown delivery status {status!r}; one of {', '.join(DELIVERY_STATUSES)}"
                )
            return json_response(self.events.deliveries(status, request.args.get("bucket") or None))
        if op == "dead-letters" and method == "GET":
            return json_response(self.events.dead_letters())
        if op == "routes" and method == "GET":
            return json_response(self.events.routes())
        if op == "routes" and method == "PUT":
            try:
                routes = parse_routes(json.loads(request.get_data() or b"null"), "PUT /_emulator/routes")
            except ValueError as error:
                raise bad_request(str(error)) from None
            self.events.set_routes(routes)
            return json_response(self.events.routes())
        if op == "reset" and method == "POST":
            self.sessions.reset()
            self.state.reset()
            self.events.reset()
            LOG.info("reset: buckets, objects, upload sessions and deliveries dropped")
            return json_response({"status": "reset"})
        if op in {"health", "deliveries", "dead-letters", "routes", "reset"}:
            raise self._not_allowed(request)
        raise ApiError(404, "notFound", f"No admin endpoint /_emulator/{op}")

    # Buckets.

    def _buckets(self, request: Request, params: dict[str, str]) -> Response:
        base = self._base_url(request)
        if request.method == "POST":
            bucket = self.state.create_bucket(json_body(request), request.args.get("project"))
            LOG.info("created bucket %s (project %s)", bucket.name, bucket.project)
            return json_response(self.state.bucket_resource(bucket.name, base))
        if request.method != "GET":
            raise self._not_allowed(request)
        buckets = self.state.list_buckets(request.args.get("project"), request.args.get("prefix", ""))
        token = request.args.get("pageToken")
        if token:
            after = str(decode_token(token).get("after", ""))
            buckets = [b for b in buckets if b.name > after]
        limit = max_results_arg(request.args)
        page = buckets[:limit]
        body: dict[str, Any] = {"kind": "storage#buckets", "items": [b.resource(base) for b in page]}
        if len(buckets) > limit:
            body["nextPageToken"] = encode_token({"after": page[-1].name})
        return json_response(body)

    def _bucket(self, request: Request, params: dict[str, str]) -> Response:
        name, base = params["bucket"], self._base_url(request)
        if request.method == "GET":
            resource = self.state.bucket_resource(name, base)
            conditions = Preconditions.from_args(request.args)
            if conditions.metageneration_match is not None and resource["metageneration"] != str(
                conditions.metageneration_match
            ):
                raise precondition_failed()
            return json_response(resource)
        if request.method == "PATCH":
            return json_response(self.state.patch_bucket(name, json_body(request), base))
        if request.method == "DELETE":
            self.state.delete_bucket(name, int_arg(request.args, "ifMetagenerationMatch"))
            LOG.info("deleted bucket %s", name)
            return Response(status=204)
        raise self._not_allowed(request)

    # Objects: metadata.

    def _objects(self, request: Request, params: dict[str, str]) -> Response:
        if request.method != "GET":
            raise self._not_allowed(request)
        args = request.args
        for unsupported in ("matchGlob", "includeFoldersAsPrefixes"):
            if args.get(unsupported):
                raise bad_request(f"{unsupported} is not supported by the storage emulator")
        if args.get("includeTrailingDelimiter", "false").lower() == "true":
            raise bad_request("includeTrailingDelimiter is not supported by the storage emulator")
        prefix, delimiter = args.get("prefix", ""), args.get("delimiter", "")
        start_offset, end_offset = args.get("startOffset", ""), args.get("endOffset", "")
        limit = max_results_arg(args)
        after: str | None = None
        after_is_prefix = False
        if args.get("pageToken"):
            token = decode_token(args["pageToken"])
            after, after_is_prefix = str(token.get("after", "")), bool(token.get("prefix", False))
        base = self._base_url(request)
        items: list[dict[str, Any]] = []
        prefixes: list[str] = []
        last: tuple[str, bool] | None = None
        next_token: str | None = None
        for obj in self.state.objects(params["bucket"]):
            name = obj.name
            if not name.startswith(prefix) or name < start_offset or (end_offset and name >= end_offset):
                continue
            if after is not None and (name <= after or (after_is_prefix and name.startswith(after))):
                continue
            rolled_up: str | None = None
            if delimiter:
                cut = name.find(delimiter, len(prefix))
                if cut >= 0:
                    rolled_up = name[: cut + len(delimiter)]
            if rolled_up is not None and last == (rolled_up, True):
                continue
            if len(items) + len(prefixes) == limit:
                assert last is not None
                next_token = encode_token({"after": last[0], "prefix": last[1]})
                break
            if rolled_up is not None:
                prefixes.append(rolled_up)
                last = (rolled_up, True)
            else:
                items.append(obj.resource(base))
                last = (name, False)
        body: dict[str, Any] = {"kind": "storage#objects"}
        if prefixes:
            body["prefixes"] = prefixes
        if items:
            body["items"] = items
        if next_token is not None:
            body["nextPageToken"] = next_token
        return json_response(body)

    def _object(self, request: Request, params: dict[str, str]) -> Response:
        bucket, name, args = params["bucket"], params["object"], request.args
        generation = int_arg(args, "generation")
        conditions = Preconditions.from_args(args)
        if request.method == "GET":
            if args.get("alt") == "media":
                return self._media(request, bucket, name)
            if args.get("alt", "json") != "json":
                raise bad_request(f"Unsupported alt={args['alt']!r}; use json or media")
            obj = self.state.get_object(bucket, name, generation)
            conditions.check(obj, read=True)
            return json_response(obj.resource(self._base_url(request)))
        if request.method in {"PATCH", "PUT"}:
            body = json_body(request)
            if request.method == "PATCH":
                updated = self.state.update_object(
                    bucket, name, generation, conditions, lambda p: p.patched(body)
                )
            else:
                replacement = ObjectProps.from_body(body)
                updated = self.state.update_object(
                    bucket, name, generation, conditions, lambda _p: replacement
                )
            LOG.info(
                "updated metadata of gs://%s/%s (metageneration %d)", bucket, name, updated.metageneration
            )
            return json_response(updated.resource(self._base_url(request)))
        if request.method == "DELETE":
            self.state.delete_object(bucket, name, generation, conditions)
            LOG.info("deleted gs://%s/%s", bucket, name)
            return Response(status=204)
        raise self._not_allowed(request)

    # Objects: downloads.

    def _download(self, request: Request, params: dict[str, str]) -> Response:
        if request.method != "GET":
            raise self._not_allowed(request)
        return self._media(request, params["bucket"], params["object"])

    def _media(self, request: Request, bucket: str, name: str) -> Response:
        obj = self.state.get_object(bucket, name, int_arg(request.args, "generation"))
        Preconditions.from_args(request.args).check(obj, read=True)
        size = obj.payload.size
        byte_range = parse_range(request.headers.get("Range"), size)
        try:
            handle = obj.payload.open()
        except FileNotFoundError:
            # Replaced or deleted between the lookup and the open.
            raise object_not_found(bucket, name, obj.generation) from None
        start, end = byte_range if byte_range is not None else (0, size - 1)
        length = end - start + 1 if size else 0
        headers = {
            "Content-Length": str(length),
            "Accept-Ranges": "bytes",
            "ETag": object_etag(obj.generation, obj.metageneration),
            "Last-Modified": datetime.fromtimestamp(obj.updated_us / 1e6, UTC).strftime(
                "%a, %d %b %Y %H:%M:%S GMT"
            ),
            "x-goog-generation": str(obj.generation),
            "x-goog-metageneration": str(obj.metageneration),
            "x-goog-stored-content-length": str(size),
            "x-goog-stored-content-encoding": obj.props.optional.get("contentEncoding", "identity"),
            "x-goog-storage-class": "STANDARD",
            "x-goog-hash": obj.hash_header(),
        }
        for field_name, header in (
            ("cacheControl", "Cache-Control"),
            ("contentDisposition", "Content-Disposition"),
            ("contentEncoding", "Content-Encoding"),
            ("contentLanguage", "Content-Language"),
        ):
            if field_name in obj.props.optional:
                headers[header] = obj.props.optional[field_name]
        status = 200
        if byte_range is not None:
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        return Response(
            read_chunks(handle, start, length),
            status=status,
            headers=headers,
            content_type=obj.content_type,
            direct_passthrough=True,
        )

    # Objects: writes.

    def _finalized(self, request: Request, obj: StoredObject) -> dict[str, Any]:
        """The object resource of a write, after handing its finalized event to the dispatcher."""
        resource = obj.resource(self._base_url(request))
        LOG.info("finalized gs://%s/%s#%d (%d bytes)", obj.bucket, obj.name, obj.generation, obj.payload.size)
        self.events.publish(resource)
        return resource

    def _upload(self, request: Request, params: dict[str, str]) -> Response:
        bucket, args = params["bucket"], request.args
        upload_type = args.get("uploadType", "")
        if request.method in {"PUT", "POST"} and args.get("upload_id"):
            return self._resumable_chunk(request, bucket, args["upload_id"])
        if request.method == "DELETE" and args.get("upload_id"):
            return self._resumable_cancel(bucket, args["upload_id"])
        if request.method != "POST":
            raise self._not_allowed(request)
        if upload_type == "media":
            return self._upload_media(request, bucket)
        if upload_type == "multipart":
            return self._upload_multipart(request, bucket)
        if upload_type == "resumable":
            return self._resumable_start(request, bucket)
        raise bad_request(f"Unsupported uploadType {upload_type!r}; use media, multipart or resumable")

    def _precheck(self, bucket: str, name: str, conditions: Preconditions) -> None:
        """Fail fast (before reading the body) on a missing bucket, a bad name or a failing precondition."""
        check_object_name(name)
        conditions.check(self.state.current(bucket, name))

    @staticmethod
    def _verify(payload: Payload, crc32c: str | None, md5: str | None) -> None:
        if crc32c and crc32c != payload.crc32c:
            raise bad_request(
                f'Provided CRC32C "{crc32c}" doesn\'t match calculated CRC32C "{payload.crc32c}".'
            )
        if md5 and payload.md5 is not None and md5 != payload.md5:
            raise bad_request(
                f'Provided MD5 hash "{md5}" doesn\'t match calculated MD5 hash "{payload.md5}".'
            )

    def _store_upload(
        self,
        request: Request,
        bucket: str,
        name: str,
        writer: PayloadWriter,
        props: ObjectProps,
        conditions: Preconditions,
        claimed: Mapping[str, str],
    ) -> Response:
        payload = writer.finish()
        try:
            self._verify(payload, claimed.get("crc32c"), claimed.get("md5"))
        except ApiError:
            self.store.release(payload)
            raise
        obj = self.state.commit(bucket, name, payload, props, conditions)
        return json_response(self._finalized(request, obj))

    def _upload_media(self, request: Request, bucket: str) -> Response:
        name = request.args.get("name", "")
        conditions = Preconditions.from_args(request.args)
        self._precheck(bucket, name, conditions)
        content_type = request.args.get("contentType") or request.headers.get("Content-Type")
        props = ObjectProps(content_type=content_type or None)
        writer = self.store.writer()
        try:
            writer.write_stream(cast(BinaryIO, request.stream))
            return self._store_upload(
                request,
                bucket,
                name,
                writer,
                props,
                conditions,
                parse_x_goog_hash(request.headers.get("x-goog-hash")),
            )
        finally:
            writer.discard()

    def _upload_multipart(self, request: Request, bucket: str) -> Response:
        metadata, media_type, data = parse_multipart_related(
            request.get_data(cache=False), request.headers.get("Content-Type", "")
        )
        name = str(metadata.get("name") or request.args.get("name", ""))
        conditions = Preconditions.from_args(request.args)
        self._precheck(bucket, name, conditions)
        props = ObjectProps.from_body(metadata)
        if props.content_type is None and media_type:
            props = dataclasses.replace(props, content_type=media_type)
        claimed = {"crc32c": str(metadata.get("crc32c") or ""), "md5": str(metadata.get("md5Hash") or "")}
        writer = self.store.writer()
        try:
            writer.write(data)
            return self._store_upload(request, bucket, name, writer, props, conditions, claimed)
        finally:
            writer.discard()

    def _resumable_start(self, request: Request, bucket: str) -> Response:
        metadata = json_body(request)
        name = str(metadata.get("name") or request.args.get("name", ""))
        conditions = Preconditions.from_args(request.args)
        self._precheck(bucket, name, conditions)
        props = ObjectProps.from_body(metadata)
        if props.content_type is None and request.headers.get("x-upload-content-type"):
            props = dataclasses.replace(props, content_type=request.headers["x-upload-content-type"])
        declared = request.headers.get("x-upload-content-length")
        session = UploadSession(
            upload_id=uuid.uuid4().hex,
            bucket=bucket,
            name=name,
            props=props,
            conditions=conditions,
            declared_size=int(declared) if declared and declared.isdigit() else None,
        )
        self.sessions.create(session)
        location = (
            f"{self._base_url(request)}/upload/storage/v1/b/{quote_name(bucket)}/o"
            f"?uploadType=resumable&upload_id={session.upload_id}"
        )
        LOG.info("resumable upload %s started for gs://%s/%s", session.upload_id, bucket, name)
        return Response(status=200, headers={"Location": location, "X-GUploader-UploadID": session.upload_id})

    def _resumable_cancel(self, bucket: str, upload_id: str) -> Response:
        session = self.sessions.get(upload_id)
        if session.bucket != bucket:
            raise ApiError(404, "notFound", f"No such resumable upload session: {upload_id}")
        with session.lock:
            session.cancelled = True
            if session.writer is not None:
                session.writer.discard()
                session.writer = None
        self.sessions.remove(upload_id)
        # GCS answers a cancelled session with 499 (client closed request).
        return Response(status=499)

    def _resumable_chunk(self, request: Request, bucket: str, upload_id: str) -> Response:
        session = self.sessions.get(upload_id)
        if session.bucket != bucket:
            raise ApiError(404, "notFound", f"No such resumable upload session: {upload_id}")
        with session.lock:
            if session.cancelled:
                raise ApiError(404, "notFound", f"Resumable upload session {upload_id} was cancelled")
            if session.result is not None:
                return json_response(session.result.resource(self._base_url(request)))
            if session.writer is None:
                session.writer = self.store.writer()
            writer = session.writer
            header = request.headers.get("Content-Range")
            total: int | None
            if header is None:
                # The whole upload in one PUT.
                if writer.size:
                    raise bad_request("A PUT without Content-Range must carry the whole upload")
                writer.write_stream(cast(BinaryIO, request.stream))
                total = writer.size
            else:
                match = _CONTENT_RANGE.fullmatch(header.strip())
                if match is None:
                    raise bad_request(
                        f"Invalid Content-Range {header!r}; expected 'bytes A-B/TOTAL', "
                        "'bytes A-B/*' or 'bytes */TOTAL'"
                    )
                total = int(match["total"]) if match["total"] != "*" else None
                if match["start"] is not None:
                    self._receive_chunk(request, writer, int(match["start"]), int(match["end"]))
            if total is not None and writer.size > total:
                raise bad_request(f"Received {writer.size} bytes, more than the declared total of {total}")
            if session.declared_size is not None and writer.size > session.declared_size:
                raise bad_request(
                    f"Received {writer.size} bytes, more than the declared "
                    f"X-Upload-Content-Length of {session.declared_size}"
                )
            if total is None or writer.size < total:
                headers = {"X-GUploader-UploadID": upload_id}
                if writer.size:
                    headers["Range"] = f"bytes=0-{writer.size - 1}"
                return Response(status=308, headers=headers)
            # Final: all bytes are in.
            session.writer = None
            try:
                claimed = parse_x_goog_hash(request.headers.get("x-goog-hash"))
                payload = writer.finish()
                try:
                    self._verify(payload, claimed.get("crc32c"), claimed.get("md5"))
                except ApiError:
                    self.store.release(payload)
                    raise
                obj = self.state.commit(bucket, session.name, payload, session.props, session.conditions)
            finally:
                writer.discard()
            session.result = obj
        LOG.info("resumable upload %s finished", upload_id)
        return json_response(self._finalized(request, obj))

    @staticmethod
    def _receive_chunk(request: Request, writer: PayloadWriter, start: int, end: int) -> None:
        if end < start:
            raise bad_request(f"Invalid Content-Range: last byte {end} is before first byte {start}")
        if start > writer.size:
            raise bad_request(f"Chunk starts at byte {start} but only {writer.size} bytes were received")
        length = end - start + 1
        before = writer.size
        stream = cast(BinaryIO, request.stream)
        skip = before - start  # bytes the client re-sent after a failure: already stored
        try:
            while skip > 0:
                block = stream.read(min(BLOCK_SIZE, skip))
                if not block:
                    break
                skip -= len(block)
            new_bytes = writer.write_stream(stream, length - (before - start))
        except ClientDisconnected:
            writer.truncate(before)
            raise
        if skip > 0 or before + new_bytes != end + 1 or stream.read(1):
            writer.truncate(before)
            raise bad_request(f"The chunk body does not match Content-Range bytes {start}-{end}")

    def _copy(self, request: Request, params: dict[str, str]) -> Response:
        if request.method != "POST":
            raise self._not_allowed(request)
        args = request.args
        source = self.state.get_object(params["bucket"], params["object"], int_arg(args, "sourceGeneration"))
        Preconditions.from_args(args, source=True).check(source)
        dest_bucket, dest_name = params["dest_bucket"], params["dest_object"]
        conditions = Preconditions.from_args(args)
        self._precheck(dest_bucket, dest_name, conditions)
        props = ObjectProps.from_body(json_body(request)).over(source.props)
        try:
            payload = self.store.duplicate(source.payload)
        except FileNotFoundError:
            raise object_not_found(params["bucket"], params["object"], source.generation) from None
        obj = self.state.commit(dest_bucket, dest_name, payload, props, conditions, source.component_count)
        resource = self._finalized(request, obj)
        if params["op"] == "copyTo":
            return json_response(resource)
        size = str(obj.payload.size)
        return json_response(
            {
                "kind": "storage#rewriteResponse",
                "totalBytesRewritten": size,
                "objectSize": size,
                "done": True,
                "resource": resource,
            }
        )

    def _compose(self, request: Request, params: dict[str, str]) -> Response:
        if request.method != "POST":
            raise self._not_allowed(request)
        bucket, name = params["bucket"], params["object"]
        body = json_body(request)
        sources = body.get("sourceObjects")
        if not isinstance(sources, list) or not sources:
            raise ApiError(400, "required", "Required: sourceObjects")
        if len(sources) > MAX_COMPOSE_SOURCES:
            raise bad_request(f"A compose request takes at most {MAX_COMPOSE_SOURCES} source objects")
        conditions = Preconditions.from_args(request.args)
        self._precheck(bucket, name, conditions)
        objects: list[StoredObject] = []
        for item in sources:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise bad_request("Each sourceObjects item needs a name")
            pre = item.get("objectPreconditions") or {}
            if not isinstance(pre, dict):
                raise bad_request("Invalid value for objectPreconditions: expected an object")
            source = self.state.get_object(bucket, item["name"], int_arg(item, "generation"))
            if_generation_match = int_arg(pre, "ifGenerationMatch")
            if if_generation_match is not None and if_generation_match != source.generation:
                raise precondition_failed()
            objects.append(source)
        destination = body.get("destination") or {}
        if not isinstance(destination, dict):
            raise bad_request("Invalid value for destination: expected an object")
        props = ObjectProps.from_body(destination)
        if props.content_type is None:
            props = dataclasses.replace(props, content_type=objects[0].props.content_type)
        writer = self.store.writer()
        try:
            for source in objects:
                try:
                    handle = source.payload.open()
                except FileNotFoundError:
                    raise object_not_found(bucket, source.name, source.generation) from None
                with handle:
                    writer.write_stream(handle)
            payload = writer.finish(composite=True)
        finally:
            writer.discard()
        components = sum(o.component_count or 1 for o in objects)
        obj = self.state.commit(bucket, name, payload, props, conditions, components)
        return json_response(self._finalized(request, obj))


# ---------------------------------------------------------------------------------- admin client


class StorageEmulatorAdmin:
    """A typed client of the emulator's ``/_emulator/`` endpoints, for tests and the local stack."""

    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _url(self, endpoint: str) -> str:
        return f"{self.base_url}/_emulator/{endpoint}"

    def _request(self, method: str, endpoint: str, **kwargs: Any) -> Any:
        response = requests.request(method, self._url(endpoint), timeout=self.timeout, **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(
                f"{method} {self._url(endpoint)} answered {response.status_code}: {response.text[:500]}"
            )
        return response.json()

    def health(self) -> dict[str, Any]:
        return cast(dict[str, Any], self._request("GET", "health"))

    def is_healthy(self) -> bool:
        try:
            return self.health().get("status") == "ok"
        except (requests.RequestException, RuntimeError, ValueError):
            return False

    def deliveries(self, status: str | None = None, bucket: str | None = None) -> list[DeliveryView]:
        params = {k: v for k, v in (("status", status), ("bucket", bucket)) if v}
        return cast(list[DeliveryView], self._request("GET", "deliveries", params=params))

    def dead_letters(self) -> list[DeadLetterView]:
        return cast(list[DeadLetterView], self._request("GET", "dead-letters"))

    def routes(self) -> dict[str, list[str]]:
        return cast(dict[str, list[str]], self._request("GET", "routes"))

    def set_routes(self, routes: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
        """Replace every route; returns the routes now in force."""
        body = {bucket: list(targets) for bucket, targets in routes.items()}
        return cast(dict[str, list[str]], self._request("PUT", "routes", json=body))

    def reset(self) -> None:
        self._request("POST", "reset")

    def wait_for_deliveries(
        self,
        predicate: Callable[[list[DeliveryView]], bool],
        timeout: float = 10.0,
        bucket: str | None = None,
        interval: float = 0.05,
    ) -> list[DeliveryView]:
        """Poll ``deliveries`` (of ``bucket``, if given) until ``predicate`` holds, else ``TimeoutError``."""
        deadline = time.monotonic() + timeout
        while True:
            current = self.deliveries(bucket=bucket)
            if predicate(current):
                return current
            if time.monotonic() >= deadline:
                raise TimeoutError(f"deliveries did not reach the expected state in {timeout}s: {current}")
            time.sleep(interval)


# ------------------------------------------------------------------------------------------- CLI


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m emulators.storage",
        description="Cloud Storage JSON API emulator that delivers object.v1.finalized CloudEvents.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9023, help="port to listen on (default 9023)")
    parser.add_argument(
        "--project",
        default=os.environ.get("GOOGLE_CLOUD_PROJECT", "local-project"),
        help="default project of buckets (default $GOOGLE_CLOUD_PROJECT or local-project)",
    )
    parser.add_argument("--data-dir", type=Path, help="keep object bytes and dead-letters.jsonl here")
    parser.add_argument("--routes-file", type=Path, help='JSON {"BUCKET": ["http://host:port/path", ...]}')
    parser.add_argument("--retry-min-backoff", type=_positive, default=0.5, help="first retry delay, s")
    parser.add_argument("--retry-max-backoff", type=_positive, default=10.0, help="longest retry delay, s")
    parser.add_argument("--max-delivery-attempts", type=_positive_int, default=5, help="attempts per event")
    parser.add_argument("--delivery-timeout", type=_positive, default=10.0, help="timeout of one attempt, s")
    parser.add_argument("--delivery-workers", type=_positive_int, default=4, help="delivery threads")
    parser.add_argument(
        "--shutdown-grace", type=float, default=3.0, help="seconds to finish due deliveries on shutdown"
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def load_routes(path: Path | None) -> dict[str, list[str]]:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ValueError(f"cannot read routes file {path}: {error}") from None
    except ValueError as error:
        raise ValueError(f"routes file {path} is not JSON: {error}") from None
    return parse_routes(data, str(path))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # werkzeug logs every request at INFO; only show that when debugging.
    logging.getLogger("werkzeug").setLevel(logging.DEBUG if args.log_level == "DEBUG" else logging.WARNING)
    if args.retry_max_backoff < args.retry_min_backoff:
        LOG.error(
            "--retry-max-backoff (%s) is below --retry-min-backoff (%s)",
            args.retry_max_backoff,
            args.retry_min_backoff,
        )
        return 2
    try:
        routes = load_routes(args.routes_file)
    except ValueError as error:
        LOG.error("%s", error)
        return 2
    data_dir: Path | None = args.data_dir.resolve() if args.data_dir else None
    config = EmulatorConfig(
        project=args.project,
        data_dir=data_dir,
        routes=routes,
        policy=DeliveryPolicy(
            min_backoff=args.retry_min_backoff,
            max_backoff=args.retry_max_backoff,
            max_attempts=args.max_delivery_attempts,
            timeout=args.delivery_timeout,
            workers=args.delivery_workers,
        ),
        shutdown_grace=max(0.0, args.shutdown_grace),
    )
    emulator = StorageEmulator(config)
    try:
        server = make_server(args.host, args.port, emulator, threaded=True)
    except OSError as error:
        LOG.error("cannot listen on %s:%d: %s", args.host, args.port, error)
        return 1
    emulator.start()

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        LOG.info("received %s; shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    serving = threading.Thread(target=server.serve_forever, name="storage-http", daemon=True)
    serving.start()
    LOG.info(
        "storage emulator on http://%s:%d (project %s, object bytes %s, %d routed bucket(s)); "
        "set STORAGE_EMULATOR_HOST=http://%s:%d",
        args.host,
        server.port,
        args.project,
        f"in {data_dir}" if data_dir else "in memory",
        len(routes),
        args.host,
        server.port,
    )
    while not stop.wait(0.2):
        if not serving.is_alive():
            LOG.error("the HTTP server thread ended unexpectedly")
            break
    server.shutdown()
    server.server_close()
    emulator.close()
    LOG.info("storage emulator stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
