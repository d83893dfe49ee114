"""New data objects: validated, then quarantined or admitted to a batch; due batches become training runs.

``on_data_object`` (one storage ``finalized`` event) → :func:`handle_object`:

* an object outside every dataset (``config.chain.dataset_for``), our own ``quarantine/`` copies included, is
  ignored;
* otherwise the size the event states is checked (a too large object is never downloaded), that generation is
  read through ``ports.objects`` and validated against the dataset's schema (:mod:`shared.validation`);
* **valid** → one *member document* per object version (``members/<member_id>``, create-only: a redelivery
  finds it there and writes nothing). That one write is all a valid object costs the ledger, and nothing else
  is written per object, so a burst never contends on one document. When the dataset already holds a full
  batch (``maxCount``) of pending members, it is closed at once (an instance counts the pending members only
  when its own admissions since its last count could have filled the batch, or 0.25 s after that count: see
  :class:`_Fullness`);
* anything else (**invalid**, too large, gone, unreadable just now) → one step, keyed
  ``object/BUCKET/NAME#GENERATION``, reads and validates that generation again and acts once: an invalid
  object is moved to ``quarantine/NAME`` in the same bucket (copy if absent, then delete exactly the handled
  generation: a newer upload under the name is left alone) with ``quarantine/NAME.report.json`` beside it
  listing every failed check, and a second step on the object's own run (``data-DATASET-q…``, finished
  FAILED) sends a ``data.quarantined`` notification. No training.

The reconciler → :func:`close_due_batches`: per dataset, the pending members (ordered by ``seen_at``) are
planned into batches by :func:`shared.training.batching.plan` (quiet period, maximum wait, maximum count),
and each due batch is one step keyed ``batch/DATASET/BATCH_ID`` on run ``data-DATASET-BATCH``: it creates
the batch record (create-only; if it exists, *its* member list is the truth), marks those members batched,
marks the record closed and emits one ``training.requested`` listing every object of the batch. A record
left open by a crash is re-driven first, and its members are kept out of new batches.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import threading
import time
import weakref
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared import deadline as deadlines
from shared import log
from shared.chain.contracts import TRAINING_REQUESTED, Cause, TrainingRequested
from shared.chain.notices import notice
from shared.chainconfig import DatasetSpec
from shared.errors import PermanentError, PipelineError, TransientError
from shared.events import StorageObject
from shared.ingest.runs import data_run_id
from shared.ledger import DocConflictError, Ledger, RunStatus
from shared.ports.errors import NotFound, PreconditionFailed
from shared.ports.objects import ObjectInfo, Objects
from shared.runtime import Runtime
from shared.steps import Effect, Emit, Outcome, Step, StepContext, StepResult, raise_for_retries
from shared.training.batching import Batch, Member, member_id, member_key, plan
from shared.validation import DEFAULT_LIMITS, DataSchema, Failure, Report, load_schema, validate

MEMBERS = "members"
BATCHES = "batches"
QUARANTINE_PREFIX = "quarantine/"
REPORT_SUFFIX = ".report.json"
LIMITS = DEFAULT_LIMITS

#: A batch's object list travels in its ``training.requested`` event, which the step runner stores with the
#: step (the ledger keeps at most 256 KiB per record) and in the batch record: a due batch larger than this
#: (in URI bytes plus overhead per object) is split, deterministically, into consecutive batches.
BATCH_BUDGET_BYTES = 160 * 1024
_PER_MEMBER_OVERHEAD = 64
#: Members are marked batched by this many concurrent writes (independent documents, so no contention).
MARK_WORKERS = 8
#: Batch records left open by a crash, re-driven per dataset and tick.
MAX_OPEN_RECORDS = 50
#: Rounds of query → plan → close per dataset and tick (each round closes every due batch it can see).
MAX_ROUNDS = 20
LEDGER_SECONDS = 10.0
OBJECT_SECONDS = 30.0
_SUMMARY_CHARS = 4000


# ---------------------------------------------------------------------------------------------- objects


def object_key(obj: StorageObject) -> str:
    return f"object/{obj.bucket}/{obj.name}#{obj.generation}"


def quarantine_name(name: str) -> str:
    return QUARANTINE_PREFIX + name


def report_name(name: str) -> str:
    return quarantine_name(name) + REPORT_SUFFIX


def quarantine_run_id(dataset: str, obj: StorageObject) -> str:
    """The run of one quarantined object version: ``data-DATASET-q-<digest of bucket/name#generation>``."""
    return data_run_id(
        dataset, "q-" + hashlib.sha256(obj.key.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    )


def timestamp_text(moment: datetime) -> str:
    """Fixed-width UTC text, so ``seen_at`` orders as text exactly as it does as time."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def schema_for(dataset: DatasetSpec) -> DataSchema:
    """The dataset's schema, read again only when its file changes (a ConfigError names every problem)."""
    path = Path(dataset.schema_path)
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        stamp = 0  # load_schema says why it cannot be read
    return _load_schema(str(path), stamp)


@functools.lru_cache(maxsize=16)
def _load_schema(path: str, stamp: int) -> DataSchema:
    return load_schema(path)


def handle_object(runtime: Runtime, obj: StorageObject, *, causation_id: str = "") -> str:
    """Validate one finalized object and quarantine or admit it; returns what happened.

    ``ignored`` (outside every dataset), ``member``, ``quarantined`` or ``gone`` (that generation no longer
    exists: deleted or replaced before it was handled; a newer one has its own event).
    """
    dataset = runtime.config.chain.dataset_for(obj.bucket, obj.name)
    if dataset is None:
        log.info("object outside every dataset, ignored", object=obj.uri, generation=obj.generation)
        return "ignored"
    schema = schema_for(dataset)  # before the step: a broken schema is a config rejection, not a failed step
    admitted, checked = _admit_at_once(runtime, obj, dataset, schema)
    if admitted is not None:
        _close_if_full(runtime, dataset)
        return _handled(obj, dataset, "member", duplicate=not admitted)
    step = Step(
        key=object_key(obj),
        payload={
            "bucket": obj.bucket,
            "name": obj.name,
            "generation": obj.generation,
            "dataset": dataset.name,
        },
        effect=functools.partial(_admit_or_quarantine, runtime, obj, dataset, schema, checked),
        name="data:object",
        causation_id=causation_id,
    )
    result = runtime.steps().run(step)
    raise_for_retries([result], f"handling {obj.uri}#{obj.generation}")
    if result.failed:
        raise PermanentError(f"{obj.uri}#{obj.generation} could not be handled: {result.error}")
    outcome = str(result.result.get("outcome", ""))
    if outcome == "quarantined":
        _announce_quarantine(runtime, obj, dataset, result.result, causation_id)
    elif outcome == "member":
        _close_if_full(runtime, dataset)
    return _handled(obj, dataset, outcome, duplicate=result.outcome is Outcome.DUPLICATE)


def _handled(obj: StorageObject, dataset: DatasetSpec, outcome: str, *, duplicate: bool) -> str:
    log.info(
        "data object handled",
        object=obj.uri,
        generation=obj.generation,
        dataset=dataset.name,
        outcome=outcome,
        duplicate=duplicate,
    )
    return outcome


def _admit_at_once(
    runtime: Runtime, obj: StorageObject, dataset: DatasetSpec, schema: DataSchema
) -> tuple[bool | None, Report | None]:
    """A valid object's one write: its member document, create-only (True: written now; False: a delivery
    before this one wrote it). ``None``: the object needs the step (invalid, too large, gone, or unreadable
    just now), which moves it to quarantine or records what happened, once; with it, the report of an object
    read and found invalid here, so the step does not read and check it again.

    The member document is the valid object's idempotency record: it is keyed by the object version, written
    create-only and never deleted (training reads the members; batching marks them), so a redelivery, early
    or late, finds it and writes nothing. Skipping the step's claim and completion makes admission one ledger
    write instead of three.
    """
    if obj.size > LIMITS.max_bytes:
        return None, None
    deadline = deadlines.current()
    try:
        data = runtime.ports.objects.read_bytes(
            obj.bucket, obj.name, generation=obj.generation, timeout=deadline.timeout(OBJECT_SECONDS)
        )
    except PipelineError:  # gone, or a failure the step retries and records: the step decides
        return None, None
    report = validate(data, obj.name, schema, LIMITS)
    if not report.valid:
        return None, report
    document = member_document(dataset.name, obj.bucket, obj.name, obj.generation, runtime.clock())
    try:
        runtime.ledger.put_doc(
            MEMBERS,
            member_id(obj.bucket, obj.name, obj.generation),
            document,
            create_only=True,
            timeout=deadline.timeout(LEDGER_SECONDS),
        )
    except DocConflictError:
        return False, None
    return True, None


def _admit_or_quarantine(
    runtime: Runtime,
    obj: StorageObject,
    dataset: DatasetSpec,
    schema: DataSchema,
    checked: Report | None,
    context: StepContext,
) -> Effect:
    """The step of an object that is not simply valid; ``checked``: its report, when this delivery has just
    read and validated that generation."""
    objects = runtime.ports.objects
    if context.attempt > 1:
        # An earlier attempt may have admitted it before crashing (and the object may be gone since).
        doc_id = member_id(obj.bucket, obj.name, obj.generation)
        if runtime.ledger.get_doc(MEMBERS, doc_id, timeout=context.deadline.timeout(LEDGER_SECONDS)):
            return Effect({"outcome": "member", "member_id": doc_id})
    if obj.size > LIMITS.max_bytes:
        # The event says how large it is: refuse before downloading anything.
        failure = Failure("size", None, f"{obj.size} bytes, at most {LIMITS.max_bytes} are checked")
        report = Report(obj.name, schema.name, None, None, (failure,))
    elif checked is not None:
        report = checked  # this generation's content, read and checked by this delivery a moment ago
    else:
        data = _read(objects, obj, context)
        if data is None:
            return Effect({"outcome": "gone"})
        report = validate(data, obj.name, schema, LIMITS)
    if report.valid:
        doc_id = _admit(runtime, obj, dataset, context)
        return Effect({"outcome": "member", "member_id": doc_id, "rows": report.rows})
    copied = _quarantine(objects, obj, report, context)
    if copied is None:
        return Effect({"outcome": "gone"})
    return Effect(
        {
            "outcome": "quarantined",
            "quarantined": copied.uri,
            "report": f"gs://{obj.bucket}/{report_name(obj.name)}",
            "failures": len(report.failures) + report.omitted_failures,
            "summary": report.summary()[:_SUMMARY_CHARS],
        }
    )


def _same_content(info: ObjectInfo, obj: StorageObject) -> bool:
    return bool(obj.md5_hash) and info.md5_hash == obj.md5_hash


def _read(objects: Objects, obj: StorageObject, context: StepContext) -> bytes | None:
    """The handled generation's bytes; after a crash that already moved it, its quarantined copy's."""
    try:
        return objects.read_bytes(
            obj.bucket, obj.name, generation=obj.generation, timeout=context.deadline.timeout(OBJECT_SECONDS)
        )
    except NotFound:
        copy = objects.stat(
            obj.bucket, quarantine_name(obj.name), timeout=context.deadline.timeout(OBJECT_SECONDS)
        )
        if copy is None or not _same_content(copy, obj):
            return None
        return objects.read_bytes(
            copy.bucket,
            copy.name,
            generation=copy.generation,
            timeout=context.deadline.timeout(OBJECT_SECONDS),
        )


def _admit(runtime: Runtime, obj: StorageObject, dataset: DatasetSpec, context: StepContext) -> str:
    doc_id = member_id(obj.bucket, obj.name, obj.generation)
    document = member_document(dataset.name, obj.bucket, obj.name, obj.generation, runtime.clock())
    # create-only: an earlier attempt of this step that wrote it before crashing keeps its seen_at.
    with contextlib.suppress(DocConflictError):
        runtime.ledger.put_doc(
            MEMBERS, doc_id, document, create_only=True, timeout=context.deadline.timeout(LEDGER_SECONDS)
        )
    return doc_id


def member_document(
    dataset: str, bucket: str, name: str, generation: int, seen_at: datetime, batch_id: str = ""
) -> dict[str, Any]:
    return {
        "dataset": dataset,
        "bucket": bucket,
        "name": name,
        "generation": generation,
        "key": member_key(bucket, name, generation),
        "uri": f"gs://{bucket}/{name}",
        "seen_at": timestamp_text(seen_at),
        "batched": bool(batch_id),
        "batch_id": batch_id,
    }


def _quarantine(
    objects: Objects, obj: StorageObject, report: Report, context: StepContext
) -> ObjectInfo | None:
    """Move the handled generation to ``quarantine/NAME`` with its report beside it; None when it is gone.

    Copy only if absent (a copy with the same content is an earlier attempt's); an earlier, different
    version quarantined under the same name is replaced, conditioned on its generation, so the copy and the
    report beside it always describe the newest invalid version. The report is written before the original
    is deleted, and only the handled generation is deleted.
    """

    def timeout() -> float:
        return context.deadline.timeout(OBJECT_SECONDS)

    destination = quarantine_name(obj.name)
    copied: ObjectInfo | None
    try:
        copied = objects.copy(
            obj.bucket,
            obj.name,
            obj.bucket,
            destination,
            source_generation=obj.generation,
            if_generation_match=0,
            timeout=timeout(),
        )
    except PreconditionFailed:
        existing = objects.stat(obj.bucket, destination, timeout=timeout())
        if existing is None:
            raise TransientError(f"gs://{obj.bucket}/{destination} changed while quarantining") from None
        if _same_content(existing, obj):
            copied = existing
        else:
            log.warning("replacing an older quarantined version", object=obj.uri, generation=obj.generation)
            copied = objects.copy(
                obj.bucket,
                obj.name,
                obj.bucket,
                destination,
                source_generation=obj.generation,
                if_generation_match=existing.generation,
                timeout=timeout(),
            )
    except NotFound:
        existing = objects.stat(obj.bucket, destination, timeout=timeout())
        copied = existing if existing is not None and _same_content(existing, obj) else None
        if copied is None:
            return None
    objects.write(
        obj.bucket,
        report_name(obj.name),
        report.to_json(),
        content_type="application/json",
        metadata={"source": obj.uri, "source-generation": str(obj.generation)},
        timeout=timeout(),
    )
    # NotFound: an earlier attempt deleted it; PreconditionFailed: a newer upload replaced it (not ours).
    with contextlib.suppress(NotFound, PreconditionFailed):
        objects.delete(obj.bucket, obj.name, if_generation_match=obj.generation, timeout=timeout())
    return copied


def _announce_quarantine(
    runtime: Runtime,
    obj: StorageObject,
    dataset: DatasetSpec,
    outcome: Mapping[str, Any],
    causation_id: str,
) -> None:
    """The quarantined object's own run: one step with the notification, then finished FAILED."""
    run_id = quarantine_run_id(dataset.name, obj)
    details = {key: outcome.get(key) for key in ("quarantined", "report", "failures")}
    message = notice(
        "data.quarantined",
        f"Invalid data quarantined: {obj.uri}",
        severity="warning",
        text=str(outcome.get("summary", "")),
        model=dataset.model,
        context={"dataset": dataset.name, "object": obj.uri, "generation": str(obj.generation), **details},
    )
    step = Step(
        key=f"quarantine/{obj.bucket}/{obj.name}#{obj.generation}",
        payload={"object": obj.key},
        effect=lambda _context: Effect(details, [message]),
        name="data:quarantined",
        run_id=run_id,
        causation_id=causation_id,
        cause={"cause": Cause.DATA.value, "dataset": dataset.name, "object": obj.uri},
    )
    result = runtime.steps().run(step)
    raise_for_retries([result], f"announcing the quarantine of {obj.uri}")
    runtime.ledger.finish_run(run_id, RunStatus.FAILED, timeout=deadlines.current().timeout(LEDGER_SECONDS))


#: A full batch is noticed within this long of filling when several instances admit its members (one instance
#: alone notices at the admission that fills it); between those counts an instance does not count again.
COUNT_INTERVAL_SECONDS = 0.25


class _Fullness:
    """When an instance must count a dataset's pending members again (one per ledger and dataset).

    After a count of ``p`` pending, the batch cannot be full before ``maxCount - p`` more members arrive; this
    instance's own admissions are a lower bound on the arrivals, so it counts again when they reach that gap,
    or when :data:`COUNT_INTERVAL_SECONDS` have passed (other instances' admissions are not seen here). A
    burst then costs a count every few hundred milliseconds per instance instead of one per object, and a
    count's cost grows with the members it counts.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._gap = 0  # admissions that cannot fill the batch yet; 0 = count now
        self._counted_at = -math.inf

    def due(self) -> bool:
        with self._lock:
            if self._gap > 0 and time.monotonic() - self._counted_at < COUNT_INTERVAL_SECONDS:
                self._gap -= 1
                return False
            self._counted_at = time.monotonic()
            self._gap = 0
            return True

    def counted(self, pending: int, limit: int) -> None:
        with self._lock:
            self._gap = max(0, limit - pending - 1)  # the next admission after the gap may fill it


_probes: weakref.WeakKeyDictionary[Ledger, dict[str, _Fullness]] = weakref.WeakKeyDictionary()
_probes_lock = threading.Lock()


def _fullness(ledger: Ledger, dataset: str) -> _Fullness:
    with _probes_lock:
        return _probes.setdefault(ledger, {}).setdefault(dataset, _Fullness())


def _close_if_full(runtime: Runtime, dataset: DatasetSpec) -> None:
    """Close a batch at once when ``maxCount`` members wait (best effort: the reconciler closes it too)."""
    limit = dataset.batching.max_count
    probe = _fullness(runtime.ledger, dataset.name)
    if not probe.due():
        return
    try:
        pending = runtime.ledger.count_docs(  # counted, not read: a burst's cost stays linear
            MEMBERS,
            equals={"dataset": dataset.name, "batched": False},
            limit=limit,
            timeout=deadlines.current().timeout(LEDGER_SECONDS),
        )
        probe.counted(pending, limit)
        if pending >= limit:
            close_due_batches(runtime, runtime.clock(), datasets=[dataset.name])
    except PipelineError as error:  # the object is admitted; closing is the reconciler's job too
        log.warning("could not close a full batch now", dataset=dataset.name, error=f"{error}")


# ---------------------------------------------------------------------------------------------- batches


@dataclass(frozen=True)
class BatchRecord:
    """``batches/<batch_id>``: the members of one batch, fixed when it is created."""

    dataset: str
    batch_id: str
    bucket: str
    objects: tuple[tuple[str, int, str], ...]  # (name, generation, seen_at text), in arrival order
    reason: str
    opened_at: str
    closes_at: str
    closed: bool = False

    @property
    def run_id(self) -> str:
        return data_run_id(self.dataset, self.batch_id)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(member_key(self.bucket, name, generation) for name, generation, _ in self.objects)

    @property
    def uris(self) -> tuple[str, ...]:
        return tuple(f"gs://{self.bucket}/{name}" for name, _, _ in self.objects)

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "batch_id": self.batch_id,
            "bucket": self.bucket,
            "objects": [list(item) for item in self.objects],
            "count": len(self.objects),
            "reason": self.reason,
            "opened_at": self.opened_at,
            "closes_at": self.closes_at,
            "closed": self.closed,
        }

    @classmethod
    def of(cls, batch: Batch) -> BatchRecord:
        bucket = batch.members[0].bucket
        if any(member.bucket != bucket for member in batch.members):
            raise ValueError(f"batch {batch.batch_id} spans buckets")  # a dataset has one bucket
        return cls(
            dataset=batch.dataset,
            batch_id=batch.batch_id,
            bucket=bucket,
            objects=tuple((m.name, m.generation, timestamp_text(m.seen_at)) for m in batch.members),
            reason=batch.reason,
            opened_at=timestamp_text(batch.opened_at),
            closes_at=timestamp_text(batch.closes_at),
        )

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> BatchRecord:
        try:
            return cls(
                dataset=str(data["dataset"]),
                batch_id=str(data["batch_id"]),
                bucket=str(data["bucket"]),
                objects=tuple((str(name), int(gen), str(seen)) for name, gen, seen in data["objects"]),
                reason=str(data.get("reason", "")),
                opened_at=str(data.get("opened_at", "")),
                closes_at=str(data.get("closes_at", "")),
                closed=bool(data.get("closed", False)),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise PermanentError(f"batch record is malformed: {error!r}") from None


def split_by_budget(batch: Batch, budget: int = BATCH_BUDGET_BYTES) -> list[Batch]:
    """``batch`` as consecutive batches whose object lists fit ``budget`` (usually just ``[batch]``)."""
    parts: list[list[Member]] = [[]]
    used = 0
    for member in batch.members:
        cost = len(member.uri.encode("utf-8", "surrogatepass")) + _PER_MEMBER_OVERHEAD
        if parts[-1] and used + cost > budget:
            parts.append([])
            used = 0
        parts[-1].append(member)
        used += cost
    if len(parts) == 1:
        return [batch]
    return [Batch(batch.dataset, tuple(part), batch.closes_at, batch.reason) for part in parts]


def close_due_batches(
    runtime: Runtime, now: datetime, *, datasets: Collection[str] | None = None
) -> list[str]:
    """Close every batch due at ``now`` (all datasets, or those named); returns the run ids whose
    ``training.requested`` was emitted by this call or found already emitted.

    Safe to run from overlapping ticks: each batch is one step, so a batch another tick holds right now is
    left to it (and its members kept out of other batches), and a batch closed before is a duplicate.
    """
    closed: list[str] = []
    for dataset in runtime.config.chain.datasets:
        if datasets is None or dataset.name in datasets:
            closed += _close_dataset(runtime, dataset, now)
    return closed


def _close_dataset(runtime: Runtime, dataset: DatasetSpec, now: datetime) -> list[str]:
    ledger = runtime.ledger
    deadline = deadlines.current()
    closed: list[str] = []
    listed: set[str] = set()  # member keys some batch record holds: never planned into another batch

    # 1. Records a crash left open (created, members not all marked, nothing emitted): finish them first.
    open_records = ledger.query_docs(
        BATCHES,
        equals={"dataset": dataset.name, "closed": False},
        limit=MAX_OPEN_RECORDS,
        timeout=deadline.timeout(LEDGER_SECONDS),
    )
    for doc in open_records:
        record = BatchRecord.parse(doc.data)
        listed.update(record.keys)
        closed += _closed_run(runtime.steps().run(_batch_step(runtime, dataset, record)), record)

    # 2. Batches due now among the pending members, a round at a time (a round sees at most maxCount + 1).
    limit = dataset.batching.max_count + 1
    for _ in range(MAX_ROUNDS):
        deadline.check(f"planning batches of dataset {dataset.name}")
        docs = ledger.query_docs(
            MEMBERS,
            equals={"dataset": dataset.name, "batched": False},
            order_by="seen_at",
            limit=limit,
            timeout=deadline.timeout(LEDGER_SECONDS),
        )
        members = [member for doc in docs if (member := _member(doc.data)) is not None]
        due = determined(
            plan(members, dataset.batching, now, batched=listed).due, members, len(docs) >= limit
        )
        if not due:
            break
        for batch in due:
            for part in split_by_budget(batch):
                record = BatchRecord.of(part)
                listed.update(record.keys)  # whatever the outcome: BUSY means another tick holds it
                closed += _closed_run(runtime.steps().run(_batch_step(runtime, dataset, record)), record)
    return closed


def determined(due: Sequence[Batch], members: Sequence[Member], truncated: bool) -> list[Batch]:
    """The due batches whose membership the query fully showed.

    When the query hit its limit, members past it may belong to the batch holding the last member read:
    that batch is trusted only when it is full (``max_count``: nothing can join it). Every earlier batch
    ended before a member that was read, so it is complete.
    """
    if not truncated or not members:
        return list(due)
    last = max(members, key=lambda member: (member.seen_at, member.key)).key
    return [batch for batch in due if last not in batch.keys or batch.reason == "max_count"]


def _member(data: Mapping[str, Any]) -> Member | None:
    try:
        return Member(
            dataset=str(data["dataset"]),
            bucket=str(data["bucket"]),
            name=str(data["name"]),
            generation=int(data["generation"]),
            seen_at=datetime.fromisoformat(str(data["seen_at"])),
        )
    except (KeyError, TypeError, ValueError) as error:
        log.error("member document is malformed, skipped", error=repr(error), key=str(data.get("key", "")))
        return None


def _closed_run(result: StepResult, record: BatchRecord) -> list[str]:
    if result.outcome in (Outcome.DONE, Outcome.DUPLICATE):
        return [record.run_id]
    if result.outcome is Outcome.FAILED:
        log.error("batch could not be closed", batch_id=record.batch_id, error=result.error)
    return []


def _batch_step(runtime: Runtime, dataset: DatasetSpec, record: BatchRecord) -> Step:
    return Step(
        key=f"batch/{dataset.name}/{record.batch_id}",
        payload={"dataset": dataset.name, "batch_id": record.batch_id},
        effect=functools.partial(_close_batch, runtime, dataset, record),
        name="data:batch",
        run_id=record.run_id,
        cause={"cause": Cause.DATA.value, "dataset": dataset.name, "batch_id": record.batch_id},
    )


def _close_batch(
    runtime: Runtime, dataset: DatasetSpec, proposed: BatchRecord, context: StepContext
) -> Effect:
    ledger = runtime.ledger

    def timeout() -> float:
        return context.deadline.timeout(LEDGER_SECONDS)

    try:
        ledger.put_doc(BATCHES, proposed.batch_id, proposed.to_json(), create_only=True, timeout=timeout())
        record = proposed
    except DocConflictError:
        # Created by an earlier attempt or an overlapping tick: its member list is the batch.
        existing = ledger.get_doc(BATCHES, proposed.batch_id, timeout=timeout())
        if existing is None:
            raise TransientError(f"batch record {proposed.batch_id} vanished") from None
        record = BatchRecord.parse(existing.data)
    _mark_members(ledger, record, context.deadline)
    ledger.put_doc(BATCHES, record.batch_id, replace(record, closed=True).to_json(), timeout=timeout())
    request = TrainingRequested(
        model=dataset.model,
        cause=Cause.DATA,
        data_uris=record.uris,
        dataset=dataset.name,
        detail={
            "batch_id": record.batch_id,
            "objects": len(record.objects),
            "reason": record.reason,
            "opened_at": record.opened_at,
            "closes_at": record.closes_at,
        },
    )
    result = {"batch_id": record.batch_id, "objects": len(record.objects), "reason": record.reason}
    return Effect(result, [Emit(TRAINING_REQUESTED, request.to_json())])


def _mark_members(ledger: Ledger, record: BatchRecord, deadline: deadlines.Deadline) -> None:
    """Mark every member of the record batched: independent documents, written concurrently."""

    def mark(item: tuple[str, int, str]) -> None:
        name, generation, seen_at = item
        deadline.check(f"marking the members of batch {record.batch_id}")
        document = member_document(
            record.dataset,
            record.bucket,
            name,
            generation,
            datetime.fromisoformat(seen_at),
            batch_id=record.batch_id,
        )
        doc_id = member_id(record.bucket, name, generation)
        ledger.put_doc(MEMBERS, doc_id, document, timeout=deadline.timeout(LEDGER_SECONDS))

    _run_all(mark, record.objects, MARK_WORKERS)


def _run_all(
    work: Callable[[tuple[str, int, str]], None], items: Iterable[tuple[str, int, str]], workers: int
) -> None:
    todo = list(items)
    if len(todo) <= workers:
        for item in todo:
            work(item)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mark-members") as pool:
        for _ in pool.map(work, todo):  # re-raises the first failure; the step then retries
            pass
