"""Our Cloud Storage emulator (:mod:`emulators.storage`), driven through the real ``google-cloud-storage``.

One emulator process per module (with ``--data-dir`` and tiny retry backoffs), one loopback HTTP receiver
standing in for the functions, and one bucket per test, so tests do not see each other's objects or events.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import functions_framework
import google_crc32c
import pytest
import requests
from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.cloud.storage.retry import DEFAULT_RETRY
from werkzeug.serving import make_server

from emulators.common.proc import Started, free_port, http_ok, start_process, stop_group, wait_until
from emulators.storage import FINALIZED, StorageEmulatorAdmin, event_id

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
PROJECT = "storage-emulator-test"
REPO_ROOT = Path(__file__).resolve().parents[3]
MAX_ATTEMPTS = 4
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


# ------------------------------------------------------------------------------------------ receiver


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes


class Receiver:
    """A loopback HTTP server that records every POST; each path answers a scripted list of statuses
    (the last one repeats; unscripted paths answer 200)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._scripts: dict[str, list[int]] = {}
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._cond:
                    receiver.received.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    script = receiver._scripts.get(self.path, [200])
                    status = script.pop(0) if len(script) > 1 else script[0]
                    receiver._cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.url = f"http://{HOST}:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def script(self, path: str, statuses: list[int]) -> str:
        """Answer ``path`` with ``statuses`` in turn; returns the full URL of ``path``."""
        with self._cond:
            self._scripts[path] = list(statuses)
        return self.url + path

    def wait_for(self, path: str, count: int, timeout: float = 5.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [r for r in self.received if r.path == path]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"{path}: {len(found)} request(s) after {timeout}s, wanted {count}")
                self._cond.wait(remaining)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ------------------------------------------------------------------------------------------ fixtures


@dataclass
class Emulator:
    url: str
    admin: StorageEmulatorAdmin
    data_dir: Path | None
    started: Started

    def route(self, bucket: str, *targets: str) -> None:
        """Route ``bucket`` to ``targets``, keeping the other buckets' routes."""
        routes = self.admin.routes()
        routes[bucket] = list(targets)
        self.admin.set_routes(routes)


def start_emulator(log_dir: Path, data_dir: Path | None, *extra: str) -> Emulator:
    port = free_port(HOST)
    argv = [sys.executable, "-m", "emulators.storage", "--host", HOST, "--port", str(port)]
    argv += ["--project", PROJECT, *extra]
    if data_dir is not None:
        argv += ["--data-dir", str(data_dir)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started = start_process(f"storage-{port}", argv, log_dir, env=env, cwd=REPO_ROOT)
    url = f"http://{HOST}:{port}"
    try:
        wait_until(lambda: http_ok(f"{url}/_emulator/health"), "storage emulator", 20, started)
    except BaseException:
        stop_group(started.pid)
        raise
    return Emulator(url, StorageEmulatorAdmin(url), data_dir, started)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    root = tmp_path_factory.mktemp("storage-emulator")
    fast_retries = ["--retry-min-backoff", "0.05", "--retry-max-backoff", "0.2"]
    started = start_emulator(
        root / "logs",
        root / "data",
        *fast_retries,
        "--max-delivery-attempts",
        str(MAX_ATTEMPTS),
        "--delivery-timeout",
        "2",
        "--shutdown-grace",
        "0.5",
    )
    yield started
    stop_group(started.started.pid)


@pytest.fixture(scope="module")
def client(emulator: Emulator) -> Iterator[storage.Client]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("STORAGE_EMULATOR_HOST", emulator.url)
        yield storage.Client(project=PROJECT, credentials=AnonymousCredentials())


@pytest.fixture
def bucket(client: storage.Client) -> storage.Bucket:
    return client.create_bucket(f"test-{uuid.uuid4().hex[:16]}")


def b64_md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def b64_crc32c(data: bytes) -> str:
    return base64.b64encode(google_crc32c.Checksum(data).digest()).decode()


def payload(size: int) -> bytes:
    """Deterministic, incompressible-looking bytes."""
    blocks = (hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(size // 32 + 1))
    return b"".join(blocks)[:size]


# --------------------------------------------------------------------------------- JSON API: buckets


def test_storage_emulator_host_needs_the_scheme(emulator: Emulator, client: storage.Client) -> None:
    assert emulator.admin.health()["status"] == "ok"
    assert emulator.url == client._connection.API_BASE_URL
    with pytest.MonkeyPatch.context() as env:
        env.setenv("STORAGE_EMULATOR_HOST", emulator.url.removeprefix("http://"))
        schemeless = storage.Client(project=PROJECT, credentials=AnonymousCredentials())
        with pytest.raises(requests.exceptions.InvalidSchema):
            list(schemeless.list_buckets())


def test_bucket_lifecycle(client: storage.Client) -> None:
    name = f"life-{uuid.uuid4().hex[:12]}"
    created = client.create_bucket(name, location="EU")
    assert (created.name, created.location, created.storage_class) == (name, "EU", "STANDARD")
    assert client.get_bucket(name).time_created is not None
    assert name in {b.name for b in client.list_buckets()}
    with pytest.raises(exceptions.Conflict):
        client.create_bucket(name)

    blob = created.blob("keep.txt")
    blob.upload_from_string(b"x")
    with pytest.raises(exceptions.Conflict, match="not empty"):
        created.delete()
    blob.delete()
    created.delete()

    assert not client.bucket(name).exists()
    with pytest.raises(exceptions.NotFound):
        client.get_bucket(name)
    with pytest.raises(exceptions.NotFound):
        client.bucket(name).blob("x").upload_from_string(b"no bucket")
    with pytest.raises(exceptions.BadRequest, match="Invalid bucket name"):
        client.create_bucket("No_Capitals")


def test_list_buckets_paginates(client: storage.Client) -> None:
    prefix = f"page-{uuid.uuid4().hex[:8]}"
    names = [f"{prefix}-{i}" for i in range(5)]
    for name in names:
        client.create_bucket(name)
    iterator = client.list_buckets(prefix=prefix, page_size=2)
    pages = [[b.name for b in page] for page in iterator.pages]
    assert pages == [names[0:2], names[2:4], names[4:5]]


# ---------------------------------------------------------------------------------- JSON API: uploads


def test_multipart_upload_resource_looks_like_gcs(bucket: storage.Bucket) -> None:
    data = b"hello, finalized world\n"
    blob = bucket.blob("folder/Test.cs")
    blob.metadata = {"run": "42"}
    blob.upload_from_string(data, content_type="text/plain")

    resource = bucket.get_blob("folder/Test.cs")._properties
    generation = resource["generation"]
    assert resource["kind"] == "storage#object"
    assert resource["id"] == f"{bucket.name}/folder/Test.cs/{generation}"
    assert resource["name"] == "folder/Test.cs" and resource["bucket"] == bucket.name
    assert generation.isdigit() and int(generation) == blob.generation
    assert resource["metageneration"] == "1"
    assert resource["size"] == str(len(data))
    assert resource["contentType"] == "text/plain"
    assert resource["md5Hash"] == b64_md5(data)
    assert resource["crc32c"] == b64_crc32c(data)
    assert resource["storageClass"] == "STANDARD"
    assert resource["metadata"] == {"run": "42"}
    assert resource["selfLink"].endswith(f"/storage/v1/b/{bucket.name}/o/folder%2FTest.cs")
    assert resource["mediaLink"].endswith(f"/o/folder%2FTest.cs?generation={generation}&alt=media")
    for key in ("timeCreated", "updated", "timeStorageClassUpdated"):
        assert TIMESTAMP.fullmatch(resource[key]), resource[key]
    assert base64.b64decode(resource["etag"])[0] == 0x08  # protobuf field 1 (generation), as GCS makes it
    assert blob.download_as_bytes() == data


def test_media_upload(emulator: Emulator, bucket: storage.Bucket) -> None:
    data = b"a,b\n1,2\n"
    url = f"{emulator.url}/upload/storage/v1/b/{bucket.name}/o"
    response = requests.post(
        url,
        params={"uploadType": "media", "name": "raw/data.csv"},
        data=data,
        headers={"Content-Type": "text/csv", "x-goog-hash": f"crc32c={b64_crc32c(data)},md5={b64_md5(data)}"},
        timeout=5,
    )
    assert response.status_code == 200, response.text
    assert response.json()["md5Hash"] == b64_md5(data)
    blob = bucket.get_blob("raw/data.csv")
    assert blob.content_type == "text/csv"
    assert blob.download_as_bytes() == data

    corrupt = requests.post(
        url,
        params={"uploadType": "media", "name": "raw/corrupt.csv"},
        data=data,
        headers={"x-goog-hash": f"crc32c={b64_crc32c(b'other')}"},
        timeout=5,
    )
    assert corrupt.status_code == 400
    assert "CRC32C" in corrupt.json()["error"]["message"]
    assert bucket.get_blob("raw/corrupt.csv") is None


def test_resumable_upload_in_many_chunks(emulator: Emulator, bucket: storage.Bucket) -> None:
    session = requests.Session()
    statuses: list[int] = []
    session.hooks["response"].append(lambda r, *a, **k: statuses.append(r.status_code))
    client = storage.Client(
        project=PROJECT,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": emulator.url},
        _http=session,
    )
    data = payload(3 * 1024 * 1024 + 17)
    blob = client.bucket(bucket.name).blob("big/model.tar.gz", chunk_size=256 * 1024)
    blob.upload_from_file(io.BytesIO(data), content_type="application/gzip", if_generation_match=0)

    # 13 chunks of 256 KiB: 12 answered "308 Resume Incomplete", the last with the object.
    assert statuses.count(308) == 12
    assert blob.size == len(data) and blob.md5_hash == b64_md5(data) and blob.crc32c == b64_crc32c(data)
    assert blob.download_as_bytes(checksum="crc32c") == data

    # Unknown size up front (a streaming writer): ranges end in "/*" until the last chunk.
    streamed = data[: 700 * 1024 + 5]
    with client.bucket(bucket.name).blob("big/streamed.bin", chunk_size=256 * 1024).open("wb") as writer:
        for start in range(0, len(streamed), 100_000):
            writer.write(streamed[start : start + 100_000])
    assert bucket.blob("big/streamed.bin").download_as_bytes() == streamed


def test_resumable_protocol_status_query_and_resend(emulator: Emulator, bucket: storage.Bucket) -> None:
    data = payload(600_000)
    started = requests.post(
        f"{emulator.url}/upload/storage/v1/b/{bucket.name}/o",
        params={"uploadType": "resumable"},
        json={"name": "manual.bin", "metadata": {"k": "v"}},
        headers={"x-upload-content-type": "application/x-test"},
        timeout=5,
    )
    assert started.status_code == 200
    session_url = started.headers["Location"]

    def put(body: bytes, content_range: str) -> requests.Response:
        return requests.put(session_url, data=body, headers={"Content-Range": content_range}, timeout=5)

    first = put(data[:262_144], "bytes 0-262143/*")
    assert (first.status_code, first.headers["Range"]) == (308, "bytes=0-262143")
    query = put(b"", "bytes */*")
    assert (query.status_code, query.headers["Range"]) == (308, "bytes=0-262143")
    # A client that lost the 308 re-sends from an earlier offset: the overlap is ignored.
    again = put(data[100_000:400_000], "bytes 100000-399999/*")
    assert (again.status_code, again.headers["Range"]) == (308, "bytes=0-399999")
    gap = put(data[500_000:], f"bytes 500000-599999/{len(data)}")
    assert gap.status_code == 400
    # A body shorter than its Content-Range is refused and forgotten, not half-kept.
    short = put(data[400_000:400_100], f"bytes 400000-599999/{len(data)}")
    assert short.status_code == 400
    assert put(b"", "bytes */*").headers["Range"] == "bytes=0-399999"
    last = put(data[400_000:], f"bytes 400000-599999/{len(data)}")
    assert last.status_code == 200, last.text
    resource = last.json()
    assert resource["size"] == str(len(data)) and resource["contentType"] == "application/x-test"
    assert resource["md5Hash"] == b64_md5(data) and resource["metadata"] == {"k": "v"}
    # The finished session keeps answering with the object.
    assert put(b"", "bytes */*").json()["generation"] == last.json()["generation"]
    assert bucket.blob("manual.bin").download_as_bytes() == data


# -------------------------------------------------------------------------------- JSON API: downloads


def test_download_range_generation_and_checksums(emulator: Emulator, bucket: storage.Bucket) -> None:
    data = payload(1024 * 1024 + 3)
    blob = bucket.blob("ranged.bin")
    blob.upload_from_string(data)
    first_generation = blob.generation

    assert blob.download_as_bytes(checksum="md5") == data
    assert blob.download_as_bytes(checksum="crc32c") == data
    assert blob.download_as_bytes(start=10, end=19) == data[10:20]
    assert blob.download_as_bytes(start=len(data) - 5) == data[-5:]
    chunked = bucket.blob("ranged.bin", chunk_size=256 * 1024)
    assert chunked.download_as_bytes() == data
    with pytest.raises(exceptions.RequestRangeNotSatisfiable):
        blob.download_as_bytes(start=len(data) + 10)

    raw = requests.get(
        f"{emulator.url}/download/storage/v1/b/{bucket.name}/o/ranged.bin?alt=media", timeout=5
    )
    assert raw.headers["x-goog-hash"] == f"crc32c={b64_crc32c(data)},md5={b64_md5(data)}"
    assert raw.headers["x-goog-generation"] == str(first_generation)

    blob.upload_from_string(b"second version")
    assert bucket.blob("ranged.bin", generation=blob.generation).download_as_bytes() == b"second version"
    with pytest.raises(exceptions.NotFound):
        bucket.blob("ranged.bin", generation=first_generation).download_as_bytes()


def test_odd_object_names_round_trip(bucket: storage.Bucket) -> None:
    name = "dir with space/ünï cödé#?&=%2F+.txt"
    blob = bucket.blob(name)
    blob.upload_from_string(b"odd")
    assert bucket.get_blob(name).name == name
    assert bucket.blob(name).download_as_bytes() == b"odd"
    assert [b.name for b in bucket.list_blobs(prefix="dir with space/")] == [name]


# ------------------------------------------------------------------------------------ JSON API: list


def test_list_with_prefix_delimiter_and_pages(bucket: storage.Bucket) -> None:
    names = ["a.txt", "data/1.csv", "data/2.csv", "data/sub/3.csv", "models/m.bin", "z.txt"]
    for name in names:
        bucket.blob(name).upload_from_string(name.encode())

    assert [b.name for b in bucket.list_blobs()] == names
    assert [b.name for b in bucket.list_blobs(prefix="data/")] == names[1:4]

    nested = bucket.list_blobs(prefix="data/", delimiter="/")
    assert [b.name for b in nested] == ["data/1.csv", "data/2.csv"]
    assert nested.prefixes == {"data/sub/"}

    top = bucket.list_blobs(delimiter="/")
    assert [b.name for b in top] == ["a.txt", "z.txt"]
    assert top.prefixes == {"data/", "models/"}

    pages = [[b.name for b in page] for page in bucket.list_blobs(page_size=4).pages]
    assert pages == [names[:4], names[4:]]

    # One entry per page, prefixes included: a.txt, data/, models/, z.txt.
    entries: list[str] = []
    for page in bucket.list_blobs(delimiter="/", page_size=1).pages:
        entries += [b.name for b in page] + sorted(page.prefixes)
    assert entries == ["a.txt", "data/", "models/", "z.txt"]
    assert [b.name for b in bucket.list_blobs(max_results=3)] == names[:3]


def test_deleting_while_listing_misses_nothing(bucket: storage.Bucket) -> None:
    # Page tokens name the last entry, as GCS's do: deleting what a page listed does not shift the next one.
    names = [f"batch/{index:02d}.txt" for index in range(7)]
    for name in names:
        bucket.blob(name).upload_from_string(b".")
    deleted: list[str] = []
    for blob in bucket.list_blobs(prefix="batch/", page_size=2):
        blob.delete()
        deleted.append(blob.name)
    assert deleted == names
    assert list(bucket.list_blobs(prefix="batch/")) == []


# ------------------------------------------------------------------------ JSON API: metadata, copy, delete


def test_patch_metadata_and_content_type(emulator: Emulator, bucket: storage.Bucket) -> None:
    blob = bucket.blob("report.json")
    blob.metadata = {"a": "1", "b": "2"}
    blob.upload_from_string(b"{}", content_type="text/plain")
    generation = blob.generation

    blob.metadata = {"b": None, "c": "3"}
    blob.content_type = "application/json"
    blob.patch()
    fresh = bucket.get_blob("report.json")
    assert fresh.metadata == {"a": "1", "c": "3"}
    assert fresh.content_type == "application/json"
    assert (fresh.generation, fresh.metageneration) == (generation, 2)
    with pytest.raises(exceptions.PreconditionFailed):
        fresh.patch(if_metageneration_match=1)
    with pytest.raises(exceptions.NotModified):
        fresh.reload(if_generation_not_match=generation)
    # A metadata change is not a new object version: no second finalized event.
    assert len(emulator.admin.deliveries(bucket=bucket.name)) == 1


def test_copy_rewrite_and_compose(client: storage.Client, emulator: Emulator, bucket: storage.Bucket) -> None:
    other = client.create_bucket(f"copy-{uuid.uuid4().hex[:12]}")
    source = bucket.blob("src/data.bin")
    source.metadata = {"origin": "test"}
    source.upload_from_string(b"0123456789", content_type="application/x-data")

    copied = bucket.copy_blob(source, other, "dst/data.bin")
    assert copied.download_as_bytes() == b"0123456789"
    assert copied.metadata == {"origin": "test"} and copied.content_type == "application/x-data"
    assert copied.generation != source.generation and copied.md5_hash == source.md5_hash

    rewritten = bucket.blob("rewritten.txt")
    rewritten.content_type = "text/plain"
    token, done_bytes, total_bytes = rewritten.rewrite(source)
    assert (token, done_bytes, total_bytes) == (None, 10, 10)
    assert rewritten.content_type == "text/plain" and rewritten.metadata == {"origin": "test"}

    composed = bucket.blob("composed.bin")
    composed.compose([source, rewritten])
    assert composed.download_as_bytes() == b"01234567890123456789"
    assert composed.component_count == 2 and composed.crc32c == b64_crc32c(b"01234567890123456789")

    # Every write is an object version with its own finalized event.
    events = {d["object"]: int(d["generation"]) for d in emulator.admin.deliveries(bucket=other.name)}
    assert events == {"dst/data.bin": copied.generation}
    assert {d["object"] for d in emulator.admin.deliveries(bucket=bucket.name)} == {
        "src/data.bin",
        "rewritten.txt",
        "composed.bin",
    }
    with pytest.raises(exceptions.NotFound):
        bucket.copy_blob(bucket.blob("missing"), other)


def test_delete_and_not_found(bucket: storage.Bucket) -> None:
    blob = bucket.blob("gone.txt")
    blob.upload_from_string(b"bye")
    with pytest.raises(exceptions.PreconditionFailed):
        blob.delete(if_generation_match=blob.generation + 1)
    blob.delete()
    assert not blob.exists()
    assert bucket.get_blob("gone.txt") is None
    with pytest.raises(exceptions.NotFound):
        blob.delete()
    with pytest.raises(exceptions.NotFound):
        bucket.blob("gone.txt").download_as_bytes()


def test_generation_preconditions(bucket: storage.Bucket) -> None:
    blob = bucket.blob("guarded.txt")
    blob.upload_from_string(b"v1", if_generation_match=0)
    first = blob.generation
    with pytest.raises(exceptions.PreconditionFailed):
        bucket.blob("guarded.txt").upload_from_string(b"v1 again", if_generation_match=0)
    blob.upload_from_string(b"v2", if_generation_match=first)
    assert blob.generation > first
    with pytest.raises(exceptions.PreconditionFailed):
        bucket.blob("guarded.txt").upload_from_string(b"stale", if_generation_match=first)
    assert bucket.blob("guarded.txt").download_as_bytes() == b"v2"


# ----------------------------------------------------------------------------------------- events


def test_finalized_event_in_binary_mode(
    emulator: Emulator, receiver: Receiver, bucket: storage.Bucket
) -> None:
    first = receiver.script("/events/a", [200])
    second = receiver.script("/events/b", [204])
    emulator.route(bucket.name, first, second)
    blob = bucket.blob("models/v1/model.tar.gz")
    blob.upload_from_string(b"model bytes", content_type="application/gzip")

    for path in ("/events/a", "/events/b"):
        [event] = receiver.wait_for(path, 1)
        headers = event.headers
        assert headers["ce-specversion"] == "1.0"
        assert headers["ce-type"] == FINALIZED
        assert headers["ce-source"] == f"//storage.googleapis.com/projects/_/buckets/{bucket.name}"
        assert headers["ce-subject"] == "objects/models/v1/model.tar.gz"
        assert headers["ce-bucket"] == bucket.name
        assert headers["ce-id"] == event_id(bucket.name, blob.name, blob.generation)
        assert headers["content-type"] == "application/json"
        body = json.loads(event.body)
        assert int(body["generation"]) == blob.generation
        assert body == bucket.get_blob(blob.name)._properties  # the resource, exactly as the API returns it
        assert headers["ce-time"] == body["updated"]

    deliveries = emulator.admin.wait_for_deliveries(
        lambda ds: len(ds) == 2 and all(d["status"] == "delivered" for d in ds), bucket=bucket.name
    )
    assert {d["target"] for d in deliveries} == {first, second}
    assert {d["attempts"] for d in deliveries} == {1}


def test_resumable_upload_emits_one_event(
    emulator: Emulator, receiver: Receiver, bucket: storage.Bucket
) -> None:
    emulator.route(bucket.name, receiver.script("/events/resumable", [200]))
    blob = bucket.blob("chunks.bin", chunk_size=256 * 1024)
    blob.upload_from_file(io.BytesIO(payload(600_000)))
    [event] = receiver.wait_for("/events/resumable", 1)
    assert json.loads(event.body)["size"] == "600000"
    assert event.headers["ce-id"] == event_id(bucket.name, "chunks.bin", blob.generation)


def test_event_retried_until_the_target_accepts(
    emulator: Emulator, receiver: Receiver, bucket: storage.Bucket
) -> None:
    emulator.route(bucket.name, receiver.script("/events/flaky", [500, 500, 200]))
    blob = bucket.blob("retry.txt")
    blob.upload_from_string(b"eventually")

    attempts = receiver.wait_for("/events/flaky", 3)
    assert len({a.headers["ce-id"] for a in attempts}) == 1  # the same event, re-sent
    assert len({a.body for a in attempts}) == 1
    [delivery] = emulator.admin.wait_for_deliveries(
        lambda ds: bool(ds) and ds[0]["status"] == "delivered", bucket=bucket.name
    )
    assert (delivery["attempts"], delivery["last_status_code"]) == (3, 200)
    assert all(d["bucket"] != bucket.name for d in emulator.admin.dead_letters())


def test_event_dead_lettered_after_max_attempts(
    emulator: Emulator, receiver: Receiver, bucket: storage.Bucket
) -> None:
    emulator.route(bucket.name, receiver.script("/events/broken", [500]))
    blob = bucket.blob("doomed.txt")
    blob.upload_from_string(b"never delivered")

    [delivery] = emulator.admin.wait_for_deliveries(
        lambda ds: bool(ds) and ds[0]["status"] == "dead_lettered", bucket=bucket.name
    )
    assert (delivery["attempts"], delivery["last_status_code"]) == (MAX_ATTEMPTS, 500)
    assert len(receiver.wait_for("/events/broken", MAX_ATTEMPTS)) == MAX_ATTEMPTS

    [letter] = [d for d in emulator.admin.dead_letters() if d["bucket"] == bucket.name]
    assert letter["headers"]["ce-id"] == event_id(bucket.name, "doomed.txt", blob.generation)
    assert int(letter["body"]["generation"]) == blob.generation
    assert letter["last_error"] is not None and "500" in letter["last_error"]
    assert emulator.data_dir is not None
    lines = (emulator.data_dir / "dead-letters.jsonl").read_text().splitlines()
    assert any(json.loads(line)["event_id"] == letter["event_id"] for line in lines)


def test_unrouted_events_are_recorded(emulator: Emulator, bucket: storage.Bucket) -> None:
    bucket.blob("nobody-listens.txt").upload_from_string(b"x")
    [delivery] = emulator.admin.deliveries(bucket=bucket.name)
    assert (delivery["status"], delivery["target"], delivery["attempts"]) == ("unrouted", None, 0)
    assert emulator.admin.deliveries(status="unrouted", bucket=bucket.name) == [delivery]


def test_routes_admin_validates_and_replaces(emulator: Emulator) -> None:
    before = emulator.admin.routes()
    bad = requests.put(f"{emulator.url}/_emulator/routes", json={"bucket": "not-a-list"}, timeout=5)
    assert bad.status_code == 400 and "must be a list" in bad.json()["error"]["message"]
    bad_url = requests.put(f"{emulator.url}/_emulator/routes", json={"bucket": ["ftp://x"]}, timeout=5)
    assert bad_url.status_code == 400
    assert emulator.admin.routes() == before
    replaced = emulator.admin.set_routes({**before, "some-bucket": ["http://127.0.0.1:9/x"]})
    assert replaced["some-bucket"] == ["http://127.0.0.1:9/x"]
    assert emulator.admin.routes() == replaced
    emulator.admin.set_routes(before)


def test_functions_framework_accepts_the_event(
    emulator: Emulator, bucket: storage.Bucket, tmp_path: Path
) -> None:
    module_name = f"ff_storage_probe_{uuid.uuid4().hex[:8]}"
    source = tmp_path / f"{module_name}.py"
    source.write_text(
        "RECEIVED = []\n\n"
        "def on_object(event):\n"
        "    RECEIVED.append({'type': event['type'], 'source': event['source'],\n"
        "                     'subject': event['subject'], 'id': event['id'], 'data': event.data})\n"
    )
    app = functions_framework.create_app("on_object", str(source), "cloudevent")
    server = make_server(HOST, 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        emulator.route(bucket.name, f"http://{HOST}:{server.port}/")
        blob = bucket.blob("incoming/train.csv")
        blob.upload_from_string(b"x,y\n1,2\n", content_type="text/csv")
        emulator.admin.wait_for_deliveries(
            lambda ds: bool(ds) and ds[0]["status"] == "delivered", bucket=bucket.name
        )
        received: list[dict[str, Any]] = sys.modules[module_name].RECEIVED
        [event] = received
        assert event["type"] == FINALIZED
        assert event["source"] == f"//storage.googleapis.com/projects/_/buckets/{bucket.name}"
        assert event["subject"] == "objects/incoming/train.csv"
        assert event["id"] == event_id(bucket.name, blob.name, blob.generation)
        assert isinstance(event["data"], dict)
        assert event["data"]["name"] == "incoming/train.csv"
        assert int(event["data"]["generation"]) == blob.generation
        assert event["data"]["contentType"] == "text/csv"
    finally:
        server.shutdown()
        sys.modules.pop(module_name, None)
        if str(tmp_path) in sys.path:
            sys.path.remove(str(tmp_path))


# ------------------------------------------------------- memory mode, reset and graceful shutdown


def wait_for_exit(pid: int, timeout: float) -> int:
    """Reap ``pid`` (our child) and return its exit code."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    raise AssertionError(f"process {pid} still running after {timeout}s")


def test_memory_mode_reset_and_graceful_shutdown(receiver: Receiver, tmp_path: Path) -> None:
    own = start_emulator(tmp_path, None, "--retry-min-backoff", "5", "--shutdown-grace", "0.2")
    try:
        client = storage.Client(
            project=PROJECT, credentials=AnonymousCredentials(), client_options={"api_endpoint": own.url}
        )
        kept = client.create_bucket("memory-bucket")
        kept.blob("a.txt").upload_from_string(b"in memory")
        assert kept.blob("a.txt").download_as_bytes() == b"in memory"

        own.admin.reset()
        assert own.admin.deliveries() == []
        assert list(client.list_buckets()) == []
        with pytest.raises(exceptions.NotFound):
            client.get_bucket("memory-bucket")

        # An event still waiting for its retry when SIGTERM arrives is dead-lettered, not lost.
        down = client.create_bucket("down-bucket")
        own.route("down-bucket", receiver.script("/events/down", [503]))
        down.blob("late.txt").upload_from_string(b"late")
        own.admin.wait_for_deliveries(lambda ds: bool(ds) and ds[0]["status"] == "retrying")

        os.killpg(own.started.pid, signal.SIGTERM)
        assert wait_for_exit(own.started.pid, 5) == 0
        log = own.started.log_path.read_text()
        assert "1 undelivered event(s) dead-lettered at shutdown" in log
        assert "storage emulator stopped" in log
    finally:
        stop_group(own.started.pid)


def test_admin_wait_times_out_with_the_state(emulator: Emulator) -> None:
    def never(_deliveries: list[Any]) -> bool:
        return False

    with pytest.raises(TimeoutError, match="did not reach"):
        emulator.admin.wait_for_deliveries(never, timeout=0.2, bucket="no-such-bucket")


# ----------------------------------------------------------------------- error shape and fault injection


def test_errors_have_the_json_api_shape(emulator: Emulator, bucket: storage.Bucket) -> None:
    bucket.blob("shape.txt").upload_from_string(b"x")
    url = f"{emulator.url}/storage/v1/b/{bucket.name}/o/shape.txt"

    failed = requests.get(url, params={"ifGenerationMatch": "1"}, timeout=5)
    assert failed.status_code == 412
    error = failed.json()["error"]
    assert (error["code"], error["status"]) == (412, "FAILED_PRECONDITION")
    assert error["errors"] == [{"message": error["message"], "domain": "global", "reason": "conditionNotMet"}]

    missing = requests.get(f"{url}-missing", timeout=5)
    assert (missing.status_code, missing.json()["error"]["errors"][0]["reason"]) == (404, "notFound")
    token = requests.get(f"{emulator.url}/storage/v1/b/{bucket.name}/o", params={"pageToken": "!"}, timeout=5)
    assert (token.status_code, token.json()["error"]["errors"][0]["reason"]) == (400, "invalid")
    wrong_verb = requests.put(f"{emulator.url}/storage/v1/b/{bucket.name}/o", timeout=5)
    assert wrong_verb.status_code == 405
    assert requests.post(f"{emulator.url}/_emulator/health", timeout=5).status_code == 405
    assert requests.get(f"{emulator.url}/_emulator/nothing", timeout=5).status_code == 404


def test_injected_faults_and_latency_reach_the_client(emulator: Emulator, bucket: storage.Bucket) -> None:
    admin = emulator.admin
    blob = bucket.blob("flaky.txt")
    blob.upload_from_string(b"flaky")
    try:
        admin.fail_next("storage.objects.get", "UNAVAILABLE")
        with pytest.raises(exceptions.ServiceUnavailable):
            blob.download_as_bytes(retry=None)
        assert admin.faults()["faults"] == [], "the fault is spent by exactly one call"

        # The client's own retry policy rides out transient failures, as it does against Cloud Storage.
        admin.fail_next("objects.get", "UNAVAILABLE", count=2)
        assert blob.download_as_bytes(retry=DEFAULT_RETRY.with_delay(initial=0.05, maximum=0.1)) == b"flaky"
        assert admin.faults()["faults"] == []

        # A refused upload stores nothing and emits no event.
        admin.fail_next("objects.insert", "RESOURCE_EXHAUSTED")
        with pytest.raises(exceptions.TooManyRequests):
            bucket.blob("refused.txt").upload_from_string(b"no", retry=None)
        assert bucket.get_blob("refused.txt") is None
        assert [d["object"] for d in admin.deliveries(bucket=bucket.name)] == ["flaky.txt"]

        admin.add_latency("objects.list", 0.3)
        began = time.monotonic()
        assert [b.name for b in bucket.list_blobs()] == ["flaky.txt"]
        assert time.monotonic() - began >= 0.3
    finally:
        admin.clear_faults()
    assert admin.faults() == {"faults": [], "latencies": []}
