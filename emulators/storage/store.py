"""Buckets and their live objects behind one lock: generations from a strictly increasing clock,
preconditions checked and a new generation committed atomically, payloads released when replaced."""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from emulators.storage.errors import (
    bad_request,
    bucket_not_found,
    conflict,
    object_not_found,
    precondition_failed,
    required,
)
from emulators.storage.model import (
    ObjectProps,
    Preconditions,
    StoredBucket,
    StoredObject,
    check_object_name,
)
from emulators.storage.payloads import Payload, PayloadStore

_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")


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
            raise required("bucket name")
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
                raise conflict(
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
                raise conflict("The bucket you tried to delete is not empty.", code="FAILED_PRECONDITION")
            del self._buckets[name]

    # Objects.

    def check_writable(self, bucket: str, name: str, conditions: Preconditions) -> None:
        """Fail fast (before reading a body) on a missing bucket, a bad name or a failing precondition."""
        check_object_name(name)
        conditions.check(self.current(bucket, name))

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
