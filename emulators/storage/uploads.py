"""Object uploads: ``uploadType=media``, ``multipart`` and ``resumable`` (chunked ``PUT`` with
``Content-Range``, status queries ``bytes */*``, unknown total size, re-sent overlaps, cancel with
``DELETE``). Bytes are checked against the client's ``crc32c``/``md5Hash`` (multipart metadata or
``x-goog-hash``) before the new generation is committed and its finalized event handed on."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast

from werkzeug.exceptions import ClientDisconnected
from werkzeug.http import parse_options_header
from werkzeug.wrappers import Request, Response

from emulators.apiserver.errors import ApiError
from emulators.storage.errors import (
    bad_request,
    json_response,
    method_not_allowed,
    not_found,
    parse_error,
    upload_not_found,
)
from emulators.storage.model import ObjectProps, Preconditions, StoredObject
from emulators.storage.payloads import BLOCK_SIZE, Payload, PayloadStore, PayloadWriter
from emulators.storage.store import StorageState
from emulators.storage.wire import base_url, json_body, parse_x_goog_hash, quote_name

LOG = logging.getLogger(__name__)

_CONTENT_RANGE = re.compile(r"bytes\s+(?:(?P<start>\d+)-(?P<end>\d+)|\*)/(?P<total>\d+|\*)")

#: Hands a committed object on (its finalized event) and returns its resource, as the API answers it.
Finalize = Callable[[Request, StoredObject], dict[str, Any]]


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
            raise upload_not_found(upload_id)
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
        raise parse_error(f"multipart metadata is not JSON ({error})") from None
    if not isinstance(metadata, dict):
        raise parse_error("multipart metadata must be a JSON object")
    return metadata, parts[1][0].get("content-type"), parts[1][1]


class Uploads:
    """The upload endpoints (``/upload/storage/v1/b/BUCKET/o``) over the bucket state."""

    def __init__(self, state: StorageState, store: PayloadStore, finalize: Finalize) -> None:
        self.state = state
        self.store = store
        self.sessions = UploadSessions()
        self.finalize = finalize

    def handle(self, request: Request, bucket: str) -> Response:
        args = request.args
        upload_type = args.get("uploadType", "")
        if request.method in {"PUT", "POST"} and args.get("upload_id"):
            return self._resumable_chunk(request, bucket, args["upload_id"])
        if request.method == "DELETE" and args.get("upload_id"):
            return self._resumable_cancel(bucket, args["upload_id"])
        if request.method != "POST":
            raise method_not_allowed(request.method, request.path)
        if upload_type == "media":
            return self._upload_media(request, bucket)
        if upload_type == "multipart":
            return self._upload_multipart(request, bucket)
        if upload_type == "resumable":
            return self._resumable_start(request, bucket)
        raise bad_request(f"Unsupported uploadType {upload_type!r}; use media, multipart or resumable")

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
        return json_response(self.finalize(request, obj))

    def _upload_media(self, request: Request, bucket: str) -> Response:
        name = request.args.get("name", "")
        conditions = Preconditions.from_args(request.args)
        self.state.check_writable(bucket, name, conditions)
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
        self.state.check_writable(bucket, name, conditions)
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
        self.state.check_writable(bucket, name, conditions)
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
            f"{base_url(request)}/upload/storage/v1/b/{quote_name(bucket)}/o"
            f"?uploadType=resumable&upload_id={session.upload_id}"
        )
        LOG.info("resumable upload %s started for gs://%s/%s", session.upload_id, bucket, name)
        return Response(status=200, headers={"Location": location, "X-GUploader-UploadID": session.upload_id})

    def _resumable_cancel(self, bucket: str, upload_id: str) -> Response:
        session = self.sessions.get(upload_id)
        if session.bucket != bucket:
            raise upload_not_found(upload_id)
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
            raise upload_not_found(upload_id)
        with session.lock:
            if session.cancelled:
                raise not_found(f"Resumable upload session {upload_id} was cancelled")
            if session.result is not None:
                return json_response(session.result.resource(base_url(request)))
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
        return json_response(self.finalize(request, obj))

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
