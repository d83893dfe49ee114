"""Shadow mirroring: a serving revision copies a sample of its live requests to a candidate and counts how the
candidate's answers compare — the numbers a shadow rollout judges, written to Cloud Monitoring.

Design (the rollout engine drives it; nothing here decides a rollout):

- Every revision the rollout engine deploys has ``SHADOW_CONTROL_URI`` (``gs://BUCKET/rollouts/SERVICE/
  shadow.json`` or a local path) and ``GOOGLE_CLOUD_PROJECT``. While a shadow analysis runs, the engine keeps
  a small *mirror control object* there and deletes it afterwards::

      {"target": "http://127.0.0.1:PORT", "sample": 0.5, "candidate": "REVISION", "run_id": "..."}

  ``target`` is the candidate's tag URL: the candidate never answers users, only these copies.
- A daemon thread reads the object every ``SHADOW_POLL_SECONDS`` (default 5; 1 when ``STORAGE_EMULATOR_HOST``
  is set). A missing object, content that is not such an object, or a failed read means *mirroring off*
  (logged once per change): copying load onto a candidate needs the engine's say-so, never a guess. A
  revision never mirrors to itself (``K_REVISION`` = ``candidate``), so the candidate, deployed with the same
  variable, stays quiet; copies carry ``X-Shadow-Mirror: 1`` and are never mirrored again.
- For a ``/predict`` answered 200, with probability ``sample``, ``(body, predictions)`` goes to a bounded pool
  (4 threads, queue of 200; when full the copy is dropped and counted — a slow candidate must not grow memory
  or slow users). A worker POSTs the same body to ``target + "/predict"`` (5 s timeout) and counts the
  outcome: ``agree`` (2xx, identical ``predictions``), ``disagree`` (2xx, different ones) or ``error``
  (non-2xx, timeout, connection error, an answer without predictions).
- Every ``METRICS_FLUSH_SECONDS`` (default 10; 1 when ``MONITORING_EMULATOR_HOST`` is set) the non-zero counts
  since the last flush become GAUGE INT64 points of ``custom.googleapis.com/mlops/shadow_comparisons``, labels
  ``candidate``, ``outcome``, ``instance`` (random per process, so instances never write the same series) and
  ``source`` (``K_REVISION``), on the ``global`` resource of ``GOOGLE_CLOUD_PROJECT``. A failed write keeps
  the counts for the next flush. ``google.cloud.monitoring_v3`` is imported on the first write, so a server
  that never mirrors never loads it.

Nothing here may fail or slow a user request: :meth:`Mirror.offer` only draws a random number and puts on a
queue without blocking.
"""

from __future__ import annotations

import json
import os
import queue
import random
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

METRIC_TYPE = "custom.googleapis.com/mlops/shadow_comparisons"
OUTCOMES = ("agree", "disagree", "error")
MIRROR_HEADER = "X-Shadow-Mirror"
MIRROR_TIMEOUT_SECONDS = 5.0
WORKERS = 4
QUEUE_SIZE = 200


def log(message: str, **fields: Any) -> None:
    """One structured log line (Cloud Run reads JSON on stderr)."""
    sys.stderr.write(json.dumps({"message": message, "component": "shadow", **fields}) + "\n")


@dataclass(frozen=True)
class MirrorControl:
    target: str  # the candidate's tag URL
    sample: float  # 0..1
    candidate: str  # the candidate revision's name
    run_id: str


def parse_control(data: bytes) -> MirrorControl:
    """The control object's content, or ValueError saying what is wrong with it."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"not JSON: {error}") from error
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    target, sample = document.get("target"), document.get("sample")
    candidate, run_id = document.get("candidate"), document.get("run_id", "")
    if not isinstance(target, str) or not target.startswith(("http://", "https://")):
        raise ValueError(f"target must be an http(s) URL, not {target!r}")
    if isinstance(sample, bool) or not isinstance(sample, int | float) or not 0 <= sample <= 1:
        raise ValueError(f"sample must be a number from 0 to 1, not {sample!r}")
    if not isinstance(candidate, str) or not candidate:
        raise ValueError(f"candidate must be a revision name, not {candidate!r}")
    if not isinstance(run_id, str):
        raise ValueError(f"run_id must be a string, not {run_id!r}")
    return MirrorControl(target.rstrip("/"), float(sample), candidate, run_id)


def classify(status: int | None, answer: bytes | None, predictions: list[Any]) -> str:
    """``agree`` / ``disagree`` / ``error`` for the candidate's answer to a copy (status None: no answer)."""
    if status is None or not 200 <= status < 300 or answer is None:
        return "error"
    try:
        document = json.loads(answer)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "error"
    if not isinstance(document, dict) or not isinstance(document.get("predictions"), list):
        return "error"
    return "agree" if document["predictions"] == predictions else "disagree"


class Counts:
    """Comparison outcomes per candidate since the last flush (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = {}

    def add(self, candidate: str, outcome: str, count: int = 1) -> None:
        with self._lock:
            key = (candidate, outcome)
            self._counts[key] = self._counts.get(key, 0) + count

    def take(self) -> dict[tuple[str, str], int]:
        """The non-zero counts, reset to zero."""
        with self._lock:
            taken = {key: count for key, count in self._counts.items() if count}
            self._counts.clear()
            return taken

    def restore(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Put back counts a failed write could not deliver (added to what arrived meanwhile)."""
        for (candidate, outcome), count in counts.items():
            self.add(candidate, outcome, count)

    def snapshot(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._counts)


Sender = Callable[[str, bytes], tuple[int | None, bytes | None]]
Reader = Callable[[], bytes | None]
Writer = Callable[[dict[tuple[str, str], int]], None]


def post_copy(url: str, body: bytes) -> tuple[int | None, bytes | None]:
    """POST ``body`` to ``url``: (status, answer), or (None, None) when no answer came within the timeout."""
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", MIRROR_HEADER: "1"},
    )
    try:
        with urllib.request.urlopen(request, timeout=MIRROR_TIMEOUT_SECONDS) as answer:
            return int(answer.status), answer.read()
    except urllib.error.HTTPError as error:
        return int(error.code), None
    except (OSError, ValueError):  # connection refused/reset, timeout, a malformed URL or answer
        return None, None


class Mirror:
    """Copies sampled requests to the candidate the control object names, counts and writes outcomes."""

    def __init__(
        self,
        revision: str,
        reader: Reader,
        writer: Writer,
        *,
        sender: Sender = post_copy,
        poll_seconds: float = 5.0,
        flush_seconds: float = 10.0,
        workers: int = WORKERS,
        queue_size: int = QUEUE_SIZE,
        chance: Callable[[], float] = random.random,
    ) -> None:
        self.revision = revision
        self.reader = reader
        self.writer = writer
        self.sender = sender
        self.poll_seconds = poll_seconds
        self.flush_seconds = flush_seconds
        self.counts = Counts()
        self.dropped = 0
        self.control: MirrorControl | None = None
        self._chance = chance
        self._queue: queue.Queue[tuple[MirrorControl, bytes, list[Any]]] = queue.Queue(maxsize=queue_size)
        self._workers = workers
        self._workers_started = False
        self._lock = threading.Lock()
        self._state = "unknown"  # what was last logged about the control object
        self._dropped_logged = 0
        self._stop = threading.Event()

    # -- the request path (must never block or raise) --------------------------------------------------

    def offer(self, body: bytes, predictions: list[Any]) -> bool:
        """Maybe queue a copy of a request answered 200; whether it was queued."""
        control = self.control
        if control is None or self._chance() >= control.sample:
            return False
        try:
            self._queue.put_nowait((control, body, predictions))
        except queue.Full:
            with self._lock:
                self.dropped += 1
            return False
        return True

    # -- background work ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the poller and the flusher (daemon threads); workers start when mirroring first turns on."""
        threading.Thread(target=self._every, args=(self.poll_seconds, self.poll), daemon=True).start()
        threading.Thread(target=self._every, args=(self.flush_seconds, self.flush), daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _every(self, seconds: float, work: Callable[[], object]) -> None:
        while not self._stop.is_set():
            try:
                work()
            except Exception as error:  # a bug in the background must not kill the thread silently
                log("shadow background work failed", error=repr(error))
            self._stop.wait(seconds)

    def poll(self) -> MirrorControl | None:
        """Read the control object once and switch mirroring on or off accordingly."""
        try:
            data = self.reader()
        except Exception as error:
            control, state = None, f"off: cannot read the control object ({error!r})"
        else:
            if data is None:
                control, state = None, "off: no control object"
            else:
                try:
                    control = parse_control(data)
                    state = f"on: {control}"
                except ValueError as error:
                    control, state = None, f"off: bad control object ({error})"
        if control is not None and control.candidate == self.revision:
            control, state = None, "off: this revision is the candidate"
        if control is not None:
            self._start_workers()
        self.control = control
        if state != self._state:
            self._state = state
            log(f"shadow mirroring {state}", revision=self.revision)
        return control

    def _start_workers(self) -> None:
        with self._lock:
            if self._workers_started:
                return
            self._workers_started = True
        for index in range(self._workers):
            threading.Thread(target=self._work, name=f"shadow-{index}", daemon=True).start()

    def _work(self) -> None:
        while True:
            control, body, predictions = self._queue.get()
            try:
                self.compare(control, body, predictions)
            finally:
                self._queue.task_done()

    def compare(self, control: MirrorControl, body: bytes, predictions: list[Any]) -> str:
        """Send one copy to the candidate and count the outcome."""
        try:
            status, answer = self.sender(control.target + "/predict", body)
        except Exception:  # a sender must not take a worker down
            status, answer = None, None
        outcome = classify(status, answer, predictions)
        self.counts.add(control.candidate, outcome)
        return outcome

    def flush(self) -> dict[tuple[str, str], int]:
        """Write the counts since the last flush; on failure they stay for the next one. What was written."""
        with self._lock:
            dropped, self._dropped_logged = self.dropped - self._dropped_logged, self.dropped
        if dropped:
            log("shadow copies dropped: the mirror queue was full", dropped=dropped, total=self.dropped)
        counts = self.counts.take()
        if not counts:
            return {}
        try:
            self.writer(counts)
        except Exception as error:
            self.counts.restore(counts)
            log("writing shadow comparisons failed; kept for the next flush", error=repr(error))
            return {}
        return counts


# -- production wiring --------------------------------------------------------------------------------------


def control_reader(uri: str, project: str) -> Reader:
    """Reads the control object at ``gs://…`` (the storage emulator when ``STORAGE_EMULATOR_HOST`` is set) or
    a local path; None when it does not exist."""
    if not uri.startswith("gs://"):

        def read_file() -> bytes | None:
            try:
                with open(uri, "rb") as handle:
                    return handle.read()
            except FileNotFoundError:
                return None

        return read_file
    bucket_name, _, path = uri[len("gs://") :].partition("/")
    holder: dict[str, Any] = {}

    def read_object() -> bytes | None:
        from google.api_core import exceptions

        if "bucket" not in holder:
            from google.cloud import storage

            if os.environ.get("STORAGE_EMULATOR_HOST"):
                from google.auth.credentials import AnonymousCredentials

                client = storage.Client(project=project, credentials=AnonymousCredentials())
            else:
                client = storage.Client(project=project or None)
            holder["bucket"] = client.bucket(bucket_name)
        # A fresh Blob per read: a downloaded Blob remembers the generation it read and would ask for that
        # generation again, so a control object written anew (the next shadow rollout) would read as missing.
        try:
            data: bytes = holder["bucket"].blob(path).download_as_bytes(timeout=5)
        except exceptions.NotFound:
            return None
        return data

    return read_object


def monitoring_writer(project: str, revision: str, instance: str) -> Writer:
    """Writes counts as ``shadow_comparisons`` points through ``MetricServiceClient.create_time_series``."""
    holder: dict[str, Any] = {}

    def client() -> Any:
        if "client" not in holder:
            from google.cloud import monitoring_v3

            host = os.environ.get("MONITORING_EMULATOR_HOST")
            if host:
                # The emulator speaks plain gRPC without credentials (the client has no REST transport).
                import grpc
                from google.cloud.monitoring_v3.services.metric_service.transports import (
                    MetricServiceGrpcTransport,
                )

                channel = grpc.insecure_channel(host.removeprefix("http://"))
                holder["client"] = monitoring_v3.MetricServiceClient(
                    transport=MetricServiceGrpcTransport(channel=channel)
                )
            else:
                holder["client"] = monitoring_v3.MetricServiceClient()
        return holder["client"]

    def write(counts: dict[tuple[str, str], int]) -> None:
        now = time.time()
        seconds = int(now)
        end = {"seconds": seconds, "nanos": int((now - seconds) * 1e9)}
        series = [
            {
                "metric": {
                    "type": METRIC_TYPE,
                    "labels": {
                        "candidate": candidate,
                        "outcome": outcome,
                        "instance": instance,
                        "source": revision,
                    },
                },
                "resource": {"type": "global", "labels": {"project_id": project}},
                "metric_kind": "GAUGE",
                "value_type": "INT64",
                "points": [{"interval": {"end_time": end}, "value": {"int64_value": count}}],
            }
            for (candidate, outcome), count in sorted(counts.items())
        ]
        client().create_time_series(
            request={"name": f"projects/{project}", "time_series": series}, timeout=10
        )

    return write


def from_env(environ: Mapping[str, str] | None = None) -> Mirror | None:
    """The mirror ``SHADOW_CONTROL_URI`` asks for (not started), or None when the variable is unset."""
    env = os.environ if environ is None else environ
    uri = env.get("SHADOW_CONTROL_URI", "")
    if not uri:
        return None
    project = env.get("GOOGLE_CLOUD_PROJECT", "")
    revision = env.get("K_REVISION", "")
    poll = float(env.get("SHADOW_POLL_SECONDS") or (1 if env.get("STORAGE_EMULATOR_HOST") else 5))
    flush = float(env.get("METRICS_FLUSH_SECONDS") or (1 if env.get("MONITORING_EMULATOR_HOST") else 10))
    instance = uuid.uuid4().hex[:12]
    return Mirror(
        revision,
        control_reader(uri, project),
        monitoring_writer(project, revision, instance),
        poll_seconds=poll,
        flush_seconds=flush,
    )
