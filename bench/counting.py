"""Counting what the ledger asks of Firestore: a gRPC client interceptor on the Firestore client's channel.

Reads are the documents requested by ``BatchGetDocuments`` (a missing document is still a read) plus the
documents ``RunQuery`` returns, plus one per ``RunAggregationQuery`` (a count: Firestore bills one read per
up to 1,000 index entries counted); writes are the writes inside each ``Commit``; round trips are the RPCs.
The
interceptor wraps the channel the client builds for the emulator (``Client._emulator_channel``), so the
client, the ledger and the functions run unmodified.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc

_READ_BY_REQUEST = "BatchGetDocuments"
_READ_BY_RESPONSE = "RunQuery"
_COUNT = "RunAggregationQuery"
_WRITE = "Commit"


@dataclass
class Counts:
    reads: int = 0
    writes: int = 0
    round_trips: int = 0

    def minus(self, other: Counts) -> Counts:
        return Counts(
            self.reads - other.reads, self.writes - other.writes, self.round_trips - other.round_trips
        )

    def per(self, events: int) -> dict[str, float]:
        n = max(events, 1)
        return {
            "reads": round(self.reads / n, 2),
            "writes": round(self.writes / n, 2),
            "round_trips": round(self.round_trips / n, 2),
        }


class _CountedStream:
    """A response stream that counts the documents it yields (``RunQuery``), delegating everything else."""

    def __init__(self, inner: Any, on_document: Callable[[], None]) -> None:
        self._inner = inner
        self._on_document = on_document

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        item = next(self._inner)
        if getattr(item, "document", None) is not None and item.document.name:
            self._on_document()
        return item

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class CountingInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):  # type: ignore[misc]
    def __init__(self) -> None:
        self.counts = Counts()
        self._lock = threading.Lock()

    def snapshot(self) -> Counts:
        with self._lock:
            return Counts(self.counts.reads, self.counts.writes, self.counts.round_trips)

    def _add(self, reads: int = 0, writes: int = 0, round_trips: int = 0) -> None:
        with self._lock:
            self.counts.reads += reads
            self.counts.writes += writes
            self.counts.round_trips += round_trips

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        method = str(details.method).rsplit("/", 1)[-1]
        self._add(writes=len(request.writes) if method == _WRITE else 0, round_trips=1)
        return continuation(details, request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        method = str(details.method).rsplit("/", 1)[-1]
        reads = len(request.documents) if method == _READ_BY_REQUEST else 1 if method == _COUNT else 0
        self._add(reads=reads, round_trips=1)
        response = continuation(details, request)
        if method == _READ_BY_RESPONSE:
            return _CountedStream(response, lambda: self._add(reads=1))
        return response


def counted_firestore(project: str) -> tuple[Any, CountingInterceptor]:
    """A Firestore client for the emulator at ``FIRESTORE_EMULATOR_HOST`` whose every RPC is counted."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import firestore

    client = firestore.Client(project=project, credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]
    interceptor = CountingInterceptor()
    plain: Callable[[Any], Any] = client._emulator_channel

    def channel(transport: Any) -> Any:
        return grpc.intercept_channel(plain(transport), interceptor)

    client._emulator_channel = channel  # type: ignore[method-assign]  # made lazily, on the first call
    return client, interceptor
