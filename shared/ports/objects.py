"""The ``Objects`` port: Cloud Storage objects read, written, copied, deleted and listed, with generations.

Generations make the effects safe to redo: ``write(..., if_generation_match=0)`` creates an object only if
it does not exist, ``delete(..., if_generation_match=G)`` deletes exactly the version that was handled (a
newer upload under the same name is left alone), and :func:`move` — copy, then delete the source's
generation — can be run again after a crash at any point and ends in the same place.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from shared.errors import InvalidInput
from shared.ports.common import Budget, as_utc
from shared.ports.errors import NotFound, PreconditionFailed, boundary


@dataclass(frozen=True)
class ObjectInfo:
    bucket: str
    name: str
    generation: int
    size: int
    content_type: str = ""
    metageneration: int = 1
    updated: datetime | None = None
    md5_hash: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        return f"gs://{self.bucket}/{self.name}"


def parse_uri(uri: str) -> tuple[str, str]:
    """``gs://bucket/name`` → ``(bucket, name)``; InvalidInput for anything else."""
    if not uri.startswith("gs://"):
        raise InvalidInput("object URI", [f"{uri!r} does not start with gs://"])
    bucket, _, name = uri.removeprefix("gs://").partition("/")
    if not bucket or not name:
        raise InvalidInput("object URI", [f"{uri!r} must name a bucket and an object: gs://BUCKET/NAME"])
    return bucket, name


class Objects(Protocol):
    def read_bytes(
        self, bucket: str, name: str, *, generation: int | None = None, timeout: float | None = None
    ) -> bytes:
        """The object's content (that ``generation``, if given); NotFound when it does not exist."""
        ...

    def read_text(
        self,
        bucket: str,
        name: str,
        *,
        generation: int | None = None,
        encoding: str = "utf-8",
        timeout: float | None = None,
    ) -> str:
        """The content decoded; InvalidInput when it is not text in ``encoding``."""
        ...

    def write(
        self,
        bucket: str,
        name: str,
        data: bytes | str,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        if_generation_match: int | None = None,
        timeout: float | None = None,
    ) -> ObjectInfo:
        """Store ``data`` (text is UTF-8); ``if_generation_match=0`` only creates (PreconditionFailed if the
        object exists), ``=G`` only replaces generation G."""
        ...

    def copy(
        self,
        bucket: str,
        name: str,
        destination_bucket: str,
        destination_name: str,
        *,
        source_generation: int | None = None,
        if_generation_match: int | None = None,
        timeout: float | None = None,
    ) -> ObjectInfo:
        """Copy the object (that ``source_generation``) to the destination; returns the destination."""
        ...

    def delete(
        self, bucket: str, name: str, *, if_generation_match: int | None = None, timeout: float | None = None
    ) -> None:
        """Delete the object (only generation ``if_generation_match``, if given); NotFound when it is gone,
        PreconditionFailed when a different generation is live."""
        ...

    def list(
        self, bucket: str, prefix: str = "", *, limit: int = 1000, timeout: float | None = None
    ) -> list[ObjectInfo]:
        """Live objects whose names start with ``prefix``, by name, at most ``limit``."""
        ...

    def stat(self, bucket: str, name: str, *, timeout: float | None = None) -> ObjectInfo | None:
        """The object's metadata, or None when it does not exist."""
        ...


def move(
    objects: Objects,
    bucket: str,
    name: str,
    destination_bucket: str,
    destination_name: str,
    *,
    generation: int,
    timeout: float | None = None,
) -> ObjectInfo:
    """Move generation ``generation`` of an object: copy it, then delete exactly that generation.

    Safe to redo after a crash anywhere: a copy that already happened is overwritten with the same bytes; a
    source already deleted (by an earlier attempt) with its copy in place counts as moved; a newer
    generation uploaded meanwhile under the source name is left alone.
    """
    budget = Budget(timeout)
    try:
        copied = objects.copy(
            bucket,
            name,
            destination_bucket,
            destination_name,
            source_generation=generation,
            timeout=budget.left("copying the object"),
        )
    except NotFound:
        existing = objects.stat(
            destination_bucket, destination_name, timeout=budget.left("checking the copy")
        )
        if existing is None:
            raise
        return existing  # an earlier attempt copied and deleted it
    # NotFound: an earlier attempt deleted it; PreconditionFailed: a newer upload replaced it (not ours).
    with contextlib.suppress(NotFound, PreconditionFailed):
        objects.delete(
            bucket, name, if_generation_match=generation, timeout=budget.left("deleting the source")
        )
    return copied


def encode(data: bytes | str, content_type: str | None) -> tuple[bytes, str]:
    if isinstance(data, str):
        return data.encode("utf-8"), content_type or "text/plain; charset=utf-8"
    return data, content_type or "application/octet-stream"


def decode(data: bytes, encoding: str, where: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        raise InvalidInput(where, [f"not {encoding} text: {error}"]) from error


class StorageObjects:
    """``Objects`` over ``google.cloud.storage.Client`` (the emulator when ``STORAGE_EMULATOR_HOST`` is set);
    the client is made on first use."""

    def __init__(self, client: Any | None = None) -> None:
        self._client = client

    def _api(self) -> Any:
        if self._client is None:
            from shared import clients

            self._client = clients.storage()
        return self._client

    def read_bytes(
        self, bucket: str, name: str, *, generation: int | None = None, timeout: float | None = None
    ) -> bytes:
        seconds = Budget(timeout).left("reading an object")
        with boundary(f"reading gs://{bucket}/{name}"):
            blob = self._api().bucket(bucket).blob(name, generation=generation)
            data: bytes = blob.download_as_bytes(timeout=seconds, retry=_retry(seconds))
        return data

    def read_text(
        self,
        bucket: str,
        name: str,
        *,
        generation: int | None = None,
        encoding: str = "utf-8",
        timeout: float | None = None,
    ) -> str:
        data = self.read_bytes(bucket, name, generation=generation, timeout=timeout)
        return decode(data, encoding, f"gs://{bucket}/{name}")

    def write(
        self,
        bucket: str,
        name: str,
        data: bytes | str,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        if_generation_match: int | None = None,
        timeout: float | None = None,
    ) -> ObjectInfo:
        payload, kind = encode(data, content_type)
        seconds = Budget(timeout).left("writing an object")
        with boundary(f"writing gs://{bucket}/{name}"):
            blob = self._api().bucket(bucket).blob(name)
            if metadata:
                blob.metadata = dict(metadata)
            blob.upload_from_string(
                payload,
                content_type=kind,
                if_generation_match=if_generation_match,
                timeout=seconds,
                # With a generation precondition a retry cannot write twice; without one it is not retried.
                retry=_retry(seconds) if if_generation_match is not None else None,
            )
        return _to_info(blob)

    def copy(
        self,
        bucket: str,
        name: str,
        destination_bucket: str,
        destination_name: str,
        *,
        source_generation: int | None = None,
        if_generation_match: int | None = None,
        timeout: float | None = None,
    ) -> ObjectInfo:
        seconds = Budget(timeout).left("copying an object")
        with boundary(f"copying gs://{bucket}/{name} to gs://{destination_bucket}/{destination_name}"):
            client = self._api()
            source = client.bucket(bucket)
            copied = source.copy_blob(
                source.blob(name),
                client.bucket(destination_bucket),
                destination_name,
                source_generation=source_generation,
                if_generation_match=if_generation_match,
                timeout=seconds,
                retry=_retry(seconds),  # the same copy twice leaves the same destination content
            )
        return _to_info(copied)

    def delete(
        self, bucket: str, name: str, *, if_generation_match: int | None = None, timeout: float | None = None
    ) -> None:
        seconds = Budget(timeout).left("deleting an object")
        with boundary(f"deleting gs://{bucket}/{name}"):
            self._api().bucket(bucket).delete_blob(
                name,
                if_generation_match=if_generation_match,
                timeout=seconds,
                retry=_retry(seconds) if if_generation_match is not None else None,
            )

    def list(
        self, bucket: str, prefix: str = "", *, limit: int = 1000, timeout: float | None = None
    ) -> list[ObjectInfo]:
        seconds = Budget(timeout).left("listing objects")
        with boundary(f"listing gs://{bucket}/{prefix}"):
            blobs = self._api().list_blobs(
                bucket, prefix=prefix or None, max_results=limit, timeout=seconds, retry=_retry(seconds)
            )
            found = [_to_info(blob) for blob in blobs]
        return sorted(found, key=lambda info: info.name)

    def stat(self, bucket: str, name: str, *, timeout: float | None = None) -> ObjectInfo | None:
        seconds = Budget(timeout).left("reading object metadata")
        with boundary(f"reading the metadata of gs://{bucket}/{name}"):
            blob = self._api().bucket(bucket).get_blob(name, timeout=seconds, retry=_retry(seconds))
        return None if blob is None else _to_info(blob)


def _retry(seconds: float) -> Any:
    """Storage's own retry policy (it also knows the media download errors), bounded by ``seconds``."""
    from google.cloud.storage.retry import DEFAULT_RETRY

    return DEFAULT_RETRY.with_timeout(seconds)


def _to_info(blob: Any) -> ObjectInfo:
    return ObjectInfo(
        bucket=blob.bucket.name,
        name=blob.name,
        generation=int(blob.generation or 0),
        size=int(blob.size or 0),
        content_type=blob.content_type or "",
        metageneration=int(blob.metageneration or 1),
        updated=as_utc(blob.updated),
        md5_hash=blob.md5_hash or "",
        metadata=dict(blob.metadata or {}),
    )
