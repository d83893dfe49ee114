"""Object downloads (``alt=media`` and ``/download/storage/v1``): ``Range`` (the first range of a header),
``generation``, read preconditions, and the headers the client checks (``x-goog-hash``,
``x-goog-generation``...), streamed in blocks so large objects never sit in memory."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import BinaryIO

from werkzeug.wrappers import Request, Response

from emulators.storage.errors import object_not_found, range_not_satisfiable
from emulators.storage.model import Preconditions, object_etag
from emulators.storage.payloads import BLOCK_SIZE
from emulators.storage.store import StorageState
from emulators.storage.wire import int_arg

_RANGE = re.compile(r"bytes\s*=\s*(?P<start>\d*)\s*-\s*(?P<end>\d*)\s*(?:,.*)?")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Inclusive ``(start, end)`` of a ``Range: bytes=...`` header, ``None`` for the whole object.

    Only the first range of a multi-range header is served; a malformed header is ignored (RFC 9110).
    """
    if not header or size == 0:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None or (not match["start"] and not match["end"]):
        return None
    unsatisfiable = range_not_satisfiable(header, size)
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


def media_response(request: Request, state: StorageState, bucket: str, name: str) -> Response:
    """The bytes of ``bucket/name`` (the ``generation`` asked for, else the live one), as served."""
    obj = state.get_object(bucket, name, int_arg(request.args, "generation"))
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
