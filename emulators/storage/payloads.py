"""Object bytes: each object generation's immutable payload, in memory or as a file under ``DIR/objects``,
and the writer that receives an upload, hashing (MD5, CRC32C) as the bytes arrive."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import logging
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final

import google_crc32c

LOG = logging.getLogger(__name__)
_CRC32C: Any = google_crc32c  # the package ships no type hints

BLOCK_SIZE: Final = 1 << 20
_OWN_FILE = re.compile(r"[0-9a-f]{32}(\.part)?")


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
