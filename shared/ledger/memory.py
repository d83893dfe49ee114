"""The ledger in process memory, for unit and functional tests and for local scripts.

It realises :mod:`shared.ledger.protocol` with dictionaries under one lock: every call decides and writes
atomically, so there are no races to lose. It stores copies (canonical JSON round trips) and hands out
copies, so a caller mutating a result or a step detail never changes the ledger, exactly as with a remote
store. ``timeout`` is accepted for the contract and has nothing to bound: no call waits on anything but the
lock, which is held only while deciding.

State documents get their ``version`` from one counter for the whole ledger, bumped by every write, so a
version is never reused (a document deleted and written again cannot match an old one).
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from shared.ledger import rules
from shared.ledger.errors import DocConflictError, RunNotFoundError
from shared.ledger.model import (
    Claim,
    Clock,
    IdempotencyRecord,
    JsonObject,
    RejectedEvent,
    Run,
    RunStatus,
    Step,
    StepStatus,
    StoredDoc,
    canonical_json,
)


@dataclass(frozen=True)
class _Doc:
    """A stored state document with its queryable fields, derived once when written."""

    doc: StoredDoc
    fields: dict[str, rules.FieldValue]


class InMemoryLedger:
    """A thread-safe :class:`~shared.ledger.protocol.Ledger` in process memory."""

    def __init__(self, clock: Clock = rules.utc_now) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        self._records: dict[str, IdempotencyRecord] = {}
        self._runs: dict[str, Run] = {}
        self._steps: dict[str, dict[str, Step]] = {}
        self._rejected: dict[str, RejectedEvent] = {}  # by the whole event id, as given
        self._docs: dict[str, dict[str, _Doc]] = {}  # collection -> doc id, as given -> document
        self._doc_versions = 0

    def _now(self) -> datetime:
        return rules.clock_now(self._clock)

    # Idempotency ------------------------------------------------------------------------------------------

    def claim(
        self,
        key: str,
        payload_hash: str,
        lease_seconds: float,
        ttl_seconds: float,
        *,
        timeout: float | None = None,
    ) -> Claim:
        rules.check_claim(key, payload_hash, lease_seconds, ttl_seconds)
        with self._lock:
            now = self._now()
            decision = rules.decide_claim(self._records.get(key), key, payload_hash, now)
            if isinstance(decision, Claim):
                return _copy_claim(decision)
            token = rules.new_token()
            record = rules.claim_record(key, payload_hash, token, decision, now, lease_seconds, ttl_seconds)
            self._records[key] = record
            return rules.claimed(record)

    def complete(self, key: str, token: str, result: JsonObject, *, timeout: float | None = None) -> None:
        rules.check_name("idempotency key", key)
        stored = rules.json_copy("result", result)
        with self._lock:
            updated = rules.completed_record(self._records.get(key), key, token, stored, self._now())
            if updated is not None:
                self._records[key] = updated

    def release(self, key: str, token: str, *, timeout: float | None = None) -> None:
        rules.check_name("idempotency key", key)
        with self._lock:
            updated = rules.released_record(self._records.get(key), key, token, self._now())
            if updated is not None:
                self._records[key] = updated

    def get(self, key: str, *, timeout: float | None = None) -> IdempotencyRecord | None:
        rules.check_name("idempotency key", key)
        with self._lock:
            record = self._records.get(key)
            if record is None or rules.is_expired(record, self._now()):
                return None
            return replace(record, result=None if record.result is None else _copy(record.result))

    # Runs -------------------------------------------------------------------------------------------------

    def start_run(
        self,
        run_id: str,
        cause: JsonObject,
        labels: Mapping[str, str] | None = None,
        *,
        timeout: float | None = None,
    ) -> Run:
        rules.check_name("run id", run_id)
        stored_cause = rules.json_copy("run cause", cause)
        stored_labels = rules.check_labels(labels)
        with self._lock:
            if run_id not in self._runs:
                now = self._now()
                self._runs[run_id] = Run(run_id, RunStatus.RUNNING, stored_cause, stored_labels, now, now)
                self._steps[run_id] = {}
            return self._assemble(run_id)

    def record_step(
        self,
        run_id: str,
        step: str,
        status: StepStatus,
        detail: JsonObject | None = None,
        *,
        timeout: float | None = None,
    ) -> Step:
        rules.check_name("run id", run_id)
        rules.check_name("step name", step)
        stored_detail = None if detail is None else rules.json_copy("step detail", detail)
        with self._lock:
            if run_id not in self._runs:
                raise RunNotFoundError(run_id)
            steps = self._steps[run_id]
            updated = rules.step_after(steps.get(step), step, status, stored_detail, self._now())
            if updated is not None:
                steps[step] = updated
            return _copy_step(steps[step])

    def get_run(
        self, run_id: str, *, steps: Collection[str] | None = None, timeout: float | None = None
    ) -> Run | None:
        rules.check_name("run id", run_id)
        with self._lock:
            return self._assemble(run_id, steps) if run_id in self._runs else None

    def list_runs(
        self, status: RunStatus | None = None, limit: int = 50, *, timeout: float | None = None
    ) -> list[Run]:
        if limit <= 0:
            return []
        with self._lock:
            runs = [run for run in self._runs.values() if status is None or run.status is status]
            # Ties in started_at are broken as Firestore breaks them: by document id, descending.
            runs.sort(key=lambda run: (run.started_at, rules.doc_id(run.run_id)), reverse=True)
            return [self._assemble(run.run_id) for run in runs[:limit]]

    def finish_run(self, run_id: str, status: RunStatus, *, timeout: float | None = None) -> Run:
        rules.check_name("run id", run_id)
        rules.check_finish(status)
        with self._lock:
            current = self._runs.get(run_id)
            if current is None:
                raise RunNotFoundError(run_id)
            updated = rules.finished_run(current, status, self._now())
            if updated is not None:
                self._runs[run_id] = updated
            return self._assemble(run_id)

    def _assemble(self, run_id: str, names: Collection[str] | None = None) -> Run:
        run = self._runs[run_id]
        recorded = self._steps[run_id].values()
        steps = sorted(
            (step for step in recorded if names is None or step.name in names), key=rules.step_sort_key
        )
        return replace(
            run,
            cause=_copy(run.cause),
            labels=dict(run.labels),
            steps=tuple(_copy_step(step) for step in steps),
        )

    # Rejected events --------------------------------------------------------------------------------------

    def record_rejected(
        self,
        event_id: str,
        reason: str,
        problems: Sequence[str],
        source: str,
        payload: JsonObject | str,
        *,
        timeout: float | None = None,
    ) -> bool:
        rules.check_rejected_id(event_id)
        with self._lock:
            if event_id in self._rejected:
                return False
            event, _, _ = rules.rejected_event(event_id, reason, problems, source, payload, self._now())
            self._rejected[event_id] = event
            return True

    def list_rejected(self, limit: int = 100, *, timeout: float | None = None) -> list[RejectedEvent]:
        if limit <= 0:
            return []
        with self._lock:
            # Ties in recorded_at are broken as Firestore breaks them: by document id, descending.
            by_id = sorted(
                self._rejected.items(), key=lambda item: (item[1].recorded_at, rules.digest(item[0]))
            )
            return [_copy_rejected(event) for _, event in reversed(by_id[-limit:])]

    # State documents --------------------------------------------------------------------------------------

    def get_doc(self, collection: str, doc_id: str, *, timeout: float | None = None) -> StoredDoc | None:
        rules.check_collection(collection)
        rules.check_name("document id", doc_id)
        with self._lock:
            stored = self._docs.get(collection, {}).get(doc_id)
            return None if stored is None else _copy_doc(stored.doc)

    def put_doc(
        self,
        collection: str,
        doc_id: str,
        data: JsonObject,
        *,
        create_only: bool = False,
        expect_version: str | None = None,
        timeout: float | None = None,
    ) -> StoredDoc:
        stored = rules.checked_put(collection, doc_id, data, create_only, expect_version)
        with self._lock:
            docs = self._docs.setdefault(collection, {})
            current = docs.get(doc_id)
            if create_only and current is not None:
                raise DocConflictError(collection, doc_id, "it exists already")
            if expect_version is not None:
                if current is None:
                    raise DocConflictError(collection, doc_id, "it no longer exists")
                if current.doc.version != expect_version:
                    raise DocConflictError(collection, doc_id, "it was written since that version")
            self._doc_versions += 1
            doc = StoredDoc(collection, doc_id, stored, str(self._doc_versions), self._now())
            docs[doc_id] = _Doc(doc, rules.queryable_fields(stored))
            return _copy_doc(doc)

    def query_docs(
        self,
        collection: str,
        *,
        equals: Mapping[str, str | int | bool] | None = None,
        order_by: str = "",
        limit: int = 100,
        timeout: float | None = None,
    ) -> list[StoredDoc]:
        rules.check_collection(collection)
        filters = rules.check_doc_query(equals, order_by)
        if limit <= 0:
            return []
        with self._lock:
            found = [
                stored
                for stored in self._docs.get(collection, {}).values()
                if rules.doc_matches(stored.fields, filters) and (not order_by or order_by in stored.fields)
            ]
            # Ties are broken as Firestore breaks them: by document id (the stored one), ascending.
            found.sort(key=lambda s: rules.doc_order_key(s.fields, order_by, rules.doc_id(s.doc.doc_id)))
            return [_copy_doc(stored.doc) for stored in found[:limit]]

    def count_docs(
        self,
        collection: str,
        *,
        equals: Mapping[str, str | int | bool] | None = None,
        limit: int = 1000,
        timeout: float | None = None,
    ) -> int:
        rules.check_collection(collection)
        filters = rules.check_doc_query(equals, "")
        if limit <= 0:
            return 0
        with self._lock:
            docs = self._docs.get(collection, {}).values()
            return min(limit, sum(1 for stored in docs if rules.doc_matches(stored.fields, filters)))


def _copy(obj: JsonObject) -> JsonObject:
    return rules.load_object(canonical_json(obj))


def _copy_claim(claim: Claim) -> Claim:
    return claim if claim.result is None else replace(claim, result=_copy(claim.result))


def _copy_step(step: Step) -> Step:
    return replace(step, detail=_copy(step.detail))


def _copy_rejected(event: RejectedEvent) -> RejectedEvent:
    return event if isinstance(event.payload, str) else replace(event, payload=_copy(event.payload))


def _copy_doc(doc: StoredDoc) -> StoredDoc:
    return replace(doc, data=_copy(doc.data))
