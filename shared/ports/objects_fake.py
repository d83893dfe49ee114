"""An in-memory ``Objects`` that honours the port's contract (``tests/contract/objects_contract.py``):
buckets must exist, every write makes a new generation, preconditions hold as Cloud Storage applies them, and
(as in a bucket without object versioning) only the live generation of an object can be read or copied."""

from __future__ import annotations

import base64
import hashlib
import itertools
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shared.ports.errors import NotFound, PreconditionFailed
from shared.ports.faults import Faults
from shared.ports.objects import ObjectInfo, decode, encode

_FIRST_GENERATION = 1_700_000_000_000_000


@dataclass
class _Stored:
    info: ObjectInfo
    data: bytes


@dataclass
class FakeObjects:
    buckets: set[str] = field(default_factory=set)
    faults: Faults = field(default_factory=Faults)
    _live: dict[tuple[str, str], _Stored] = field(default_factory=dict, init=False, repr=False)
    _generations: Iterator[int] = field(
        default_factory=lambda: itertools.count(_FIRST_GENERATION), init=False, repr=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def add_bucket(self, name: str) -> None:
        with self._lock:
            self.buckets.add(name)

    def read_bytes(
        self, bucket: str, name: str, *, generation: int | None = None, timeout: float | None = None
    ) -> bytes:
        self.faults.take("read_bytes")
        with self._lock:
            return self._get(bucket, name, generation).data

    def read_text(
        self,
        bucket: str,
        name: str,
        *,
        generation: int | None = None,
        encoding: str = "utf-8",
        timeout: float | None = None,
    ) -> str:
        return decode(self.read_bytes(bucket, name, generation=generation), encoding, f"gs://{bucket}/{name}")

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
        self.faults.take("write")
        payload, kind = encode(data, content_type)
        with self._lock:
            self._precondition(bucket, name, if_generation_match)
            return self._put(bucket, name, payload, kind, dict(metadata or {}))

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
        self.faults.take("copy")
        with self._lock:
            source = self._get(bucket, name, source_generation)
            self._precondition(destination_bucket, destination_name, if_generation_match)
            return self._put(
                destination_bucket,
                destination_name,
                source.data,
                source.info.content_type,
                dict(source.info.metadata),
            )

    def delete(
        self, bucket: str, name: str, *, if_generation_match: int | None = None, timeout: float | None = None
    ) -> None:
        self.faults.take("delete")
        with self._lock:
            self._bucket(bucket)
            live = self._live.get((bucket, name))
            if live is None:
                raise NotFound(f"gs://{bucket}/{name} does not exist")
            if if_generation_match is not None and live.info.generation != if_generation_match:
                raise PreconditionFailed(
                    f"gs://{bucket}/{name} is at generation {live.info.generation}, not {if_generation_match}"
                )
            del self._live[(bucket, name)]

    def list(
        self, bucket: str, prefix: str = "", *, limit: int = 1000, timeout: float | None = None
    ) -> list[ObjectInfo]:
        self.faults.take("list")
        with self._lock:
            self._bucket(bucket)
            found = [s.info for (b, n), s in self._live.items() if b == bucket and n.startswith(prefix)]
        return sorted(found, key=lambda info: info.name)[:limit]

    def stat(self, bucket: str, name: str, *, timeout: float | None = None) -> ObjectInfo | None:
        self.faults.take("stat")
        with self._lock:
            stored = self._live.get((bucket, name))
            return None if stored is None else stored.info

    # -- internals (lock held) ------------------------------------------------------------------------------

    def _bucket(self, bucket: str) -> None:
        if bucket not in self.buckets:
            raise NotFound(f"bucket {bucket} does not exist")

    def _get(self, bucket: str, name: str, generation: int | None) -> _Stored:
        self._bucket(bucket)
        # Without object versioning (the pipeline's buckets have none) only the live generation is readable.
        stored = self._live.get((bucket, name))
        if stored is None or (generation is not None and stored.info.generation != generation):
            which = f"#{generation}" if generation is not None else ""
            raise NotFound(f"gs://{bucket}/{name}{which} does not exist")
        return stored

    def _precondition(self, bucket: str, name: str, if_generation_match: int | None) -> None:
        self._bucket(bucket)
        if if_generation_match is None:
            return
        live = self._live.get((bucket, name))
        current = live.info.generation if live is not None else 0
        if current != if_generation_match:
            raise PreconditionFailed(
                f"gs://{bucket}/{name} is at generation {current}, not {if_generation_match}"
            )

    def _put(
        self, bucket: str, name: str, data: bytes, content_type: str, metadata: dict[str, str]
    ) -> ObjectInfo:
        generation = next(self._generations)
        info = ObjectInfo(
            bucket=bucket,
            name=name,
            generation=generation,
            size=len(data),
            content_type=content_type,
            updated=datetime.now(UTC),
            md5_hash=base64.b64encode(hashlib.md5(data).digest()).decode(),
            metadata=metadata,
        )
        stored = _Stored(info=info, data=data)
        self._live[(bucket, name)] = stored
        return info
