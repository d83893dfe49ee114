"""The ledger in Firestore (or its emulator): how it realises :mod:`shared.ledger.protocol`.

Layout (``prefix`` isolates tests and deployments)::

    {prefix}idempotency/{sha256(key)}                   idempotency records
    {prefix}runs/{doc_id(run_id)}                       runs
    {prefix}runs/{doc_id(run_id)}/steps/{doc_id(step)}  one document per step
    {prefix}rejected/{sha256(event_id)}                 rejected events
    {prefix}{collection}/{doc_id(doc_id)}               state documents (``put_doc``)

Document ids are bounded and never refused, whatever the name (:func:`shared.ledger.rules.doc_id`: a safe
run id or step name is its own id, anything else a readable prefix, ``~`` and its sha256); the name itself is
kept exactly in a field. Steps are their own documents so that the steps of one run never contend: recording
a step reads the run (only when the step is new, to refuse an unknown run) and never writes it, and
:meth:`FirestoreLedger.get_run` assembles the run from its step documents.

Caller objects (``result``, ``cause``, ``detail``, a rejected ``payload``) are stored as canonical JSON text
(``result_json``, ``cause_json``, ``detail_json``, ``payload_text`` with ``payload_is_json``), so they
round-trip exactly (Firestore maps refuse arrays of arrays, for one). ``labels`` is a native map, for queries.

Concurrency: no transactions (a contended one costs seconds on the emulator). A claim is create-if-absent;
every change to an existing document is an update conditioned on the ``update_time`` just read, and the
loser of a race reads again and decides again (at most :data:`MAX_OPTIMISTIC_ROUNDS` times).

Round trips (``make bench`` counts them; docs/performance.md): the common case is written first and read
only when it loses. A claim first *creates* the record (one write; a key seen before answers ``AlreadyExists``
and the claim reads and decides as above). ``complete`` and ``release`` of a claim this ledger object made
update the record conditioned on the ``update_time`` of its own claim write, without reading it; if anything
changed the record since (a take-over), the precondition fails and they read and decide. ``record_step``
first creates the step document; whether its run exists is read once per run and ledger object (runs are
never deleted), so a step of a known run is one write.

Time: each method has one budget (its ``timeout``, or the ledger's :data:`DEFAULT_TIMEOUT_SECONDS`) and every
Firestore call gets what is left of it, with the client's own retry switched off: that retry waits out an
outage for minutes. A transient failure (unavailable, aborted, ...) re-runs the read-decide-write round after
a short jittered pause while time remains; then :class:`~shared.ledger.errors.LedgerTimeoutError`.

A state document is ``{doc_id, data_json, fields, updated_at, token}``: ``data_json`` keeps the data exactly,
``fields`` is a native map of its queryable top-level fields (:func:`shared.ledger.rules.queryable_fields`)
that ``query_docs`` filters (``fields.NAME == value``) and orders on. Its ``version`` is the document's
``update_time`` as RFC 3339 text (nanoseconds kept), and ``expect_version`` becomes an update precondition on
exactly that time: a compare-and-set is one conditional write, no read. ``token`` tells our own write, landed
before a reported failure and retried, from another writer's.

``list_runs(status=...)`` needs a composite index on ``runs``: ``status`` ascending, ``started_at``
descending. ``query_docs`` with equality filters and an ``order_by`` on another field needs one per shape,
e.g. on ``members``: ``fields.dataset``, ``fields.batched``, ``fields.seen_at``, all ascending.
"""

from __future__ import annotations

import enum
import random
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from google.api_core import exceptions as api_exceptions

from shared.errors import is_transient
from shared.ledger import rules
from shared.ledger.errors import (
    DocConflictError,
    LedgerContentionError,
    LedgerTimeoutError,
    RunNotFoundError,
)
from shared.ledger.firestore_docs import (
    _fields,
    _record_from,
    _record_to_doc,
    _rejected_from_doc,
    _run_from_doc,
    _run_to_doc,
    _step_from,
    _step_from_doc,
    _step_to_doc,
    _stored_doc,
    _version,
)
from shared.ledger.model import (
    Claim,
    Clock,
    IdempotencyRecord,
    JsonObject,
    RecordState,
    RejectedEvent,
    Run,
    RunStatus,
    Step,
    StepStatus,
    StoredDoc,
    canonical_json,
)

if TYPE_CHECKING:
    from google.cloud import firestore
    from google.cloud.firestore_v1.base_document import DocumentSnapshot
    from google.cloud.firestore_v1.collection import CollectionReference
    from google.cloud.firestore_v1.document import DocumentReference
    from google.cloud.firestore_v1.query import Query

    _Snapshot = DocumentSnapshot[DocumentReference]

T = TypeVar("T")

#: A method's time budget when the caller gives none: long enough for a few optimistic rounds on a slow
#: day, short enough to fit inside a Pub/Sub ack deadline.
DEFAULT_TIMEOUT_SECONDS = 10.0
#: Optimistic-concurrency rounds (read, decide, conditional write) before giving up with a transient error.
MAX_OPTIMISTIC_ROUNDS = 16
#: Pauses between attempts after a transient failure: full jitter, doubling from the first up to the cap.
FIRST_PAUSE_SECONDS = 0.05
MAX_PAUSE_SECONDS = 1.0

_CONFLICT = (api_exceptions.Conflict, api_exceptions.AlreadyExists)
_LOST_RACE = (api_exceptions.FailedPrecondition, api_exceptions.NotFound)
_DESCENDING = "DESCENDING"
_PREFIX = re.compile(r"[A-Za-z0-9_.\-]*")
_STEPS = "steps"
#: Claims whose record this ledger object wrote, kept so ``complete`` / ``release`` need not read it back;
#: and runs known to exist. Bounded: an entry pushed out only costs one read later.
_HELD_CLAIMS = 4096
_KNOWN_RUNS = 4096


class _Again(enum.Enum):
    """What a round returns when it lost an optimistic race: read again and decide again."""

    AGAIN = "again"


_AGAIN = _Again.AGAIN


class _Budget:
    """One method's time budget; :meth:`left` is the timeout for its next Firestore call."""

    def __init__(self, what: str, seconds: float) -> None:
        self.what = what
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        return self._end - time.monotonic()

    def left(self) -> float:
        remaining = self.remaining()
        if remaining <= 0:
            raise LedgerTimeoutError(f"{self.what}: no time left of its {self.seconds:g}s timeout")
        return remaining


def _is_backend_failure(error: Exception) -> bool:
    """A failure of the store or the network that a later attempt may not see (503, aborted, deadline...)."""
    if isinstance(error, api_exceptions.GoogleAPICallError):
        return is_transient(error)
    from google.auth import exceptions as auth_exceptions

    return isinstance(error, auth_exceptions.TransportError)


class FirestoreLedger:
    """A :class:`~shared.ledger.protocol.Ledger` in Firestore: create-if-absent and conditional updates.

    ``client`` is a ``google.cloud.firestore.Client`` built by the caller; ``prefix`` is prepended to every
    top-level collection name; ``timeout`` is the default budget of each method (seconds).
    """

    def __init__(
        self,
        client: firestore.Client,
        prefix: str = "",
        clock: Clock = rules.utc_now,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        if not _PREFIX.fullmatch(prefix):
            raise ValueError(f"collection prefix {prefix!r} may only contain letters, digits, '_', '.', '-'")
        rules.check_positive("timeout", timeout)
        self._client = client
        self._prefix = prefix
        self._clock = clock
        self._timeout = timeout
        self._lock = threading.Lock()
        self._held: OrderedDict[tuple[str, str], tuple[IdempotencyRecord, Any]] = OrderedDict()
        self._runs: OrderedDict[str, None] = OrderedDict()

    def _hold(self, record: IdempotencyRecord, update_time: Any) -> None:
        """Remember the claim this object just wrote, with the write's ``update_time``."""
        with self._lock:
            self._held[(record.key, record.token)] = (record, update_time)
            while len(self._held) > _HELD_CLAIMS:
                self._held.popitem(last=False)

    def _unhold(self, key: str, token: str) -> tuple[IdempotencyRecord, Any] | None:
        with self._lock:
            return self._held.pop((key, token), None)

    def _run_known(self, run_id: str) -> bool:
        with self._lock:
            return run_id in self._runs

    def _know_run(self, run_id: str) -> None:
        with self._lock:
            self._runs[run_id] = None
            while len(self._runs) > _KNOWN_RUNS:
                self._runs.popitem(last=False)

    @property
    def prefix(self) -> str:
        return self._prefix

    def _now(self) -> datetime:
        return rules.clock_now(self._clock)

    def _collection(self, name: str) -> CollectionReference:
        return self._client.collection(f"{self._prefix}{name}")

    def _record_ref(self, key: str) -> DocumentReference:
        return self._collection("idempotency").document(rules.digest(key))

    def _run_ref(self, run_id: str) -> DocumentReference:
        return self._collection("runs").document(rules.doc_id(run_id))

    def _precondition(self, snapshot: _Snapshot) -> Any:
        return self._client.write_option(last_update_time=snapshot.update_time)

    def _within(self, what: str, timeout: float | None, attempt: Callable[[_Budget], T | _Again]) -> T:
        """Run ``attempt`` (one read-decide-write round) until it returns an answer, inside one budget."""
        budget = _Budget(what, self._timeout if timeout is None else timeout)
        races = failures = 0
        while True:
            budget.left()
            try:
                outcome = attempt(budget)
            except Exception as error:
                if not _is_backend_failure(error):
                    raise
                failures += 1
                pause = random.uniform(0, min(MAX_PAUSE_SECONDS, FIRST_PAUSE_SECONDS * 2 ** (failures - 1)))
                if budget.remaining() <= pause:
                    raise LedgerTimeoutError(
                        f"{what}: Firestore did not answer within {budget.seconds:g}s "
                        f"({failures} attempt(s); last: {type(error).__name__}: {error})"
                    ) from error
                time.sleep(pause)
                continue
            if outcome is _AGAIN:
                races += 1
                if races >= MAX_OPTIMISTIC_ROUNDS:
                    raise LedgerContentionError(f"{what}: too much contention, try again later")
                continue
            return outcome

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
        ref = self._record_ref(key)
        token = rules.new_token()
        blind = [True]  # the first round creates without reading: a fresh key is one write

        def attempt(budget: _Budget) -> Claim | _Again:
            if blind[0]:
                blind[0] = False
                now = self._now()
                fresh = rules.claim_record(
                    key, payload_hash, token, rules.Take(attempt=1), now, lease_seconds, ttl_seconds
                )
                try:
                    written = ref.create(_record_to_doc(fresh), retry=None, timeout=budget.left())
                except _CONFLICT:
                    pass  # the key was claimed before (or its record expired): read and decide
                else:
                    self._hold(fresh, written.update_time)
                    return rules.claimed(fresh)
            snapshot = ref.get(retry=None, timeout=budget.left())
            current = _record_from(snapshot)
            if current is not None and current.token == token and current.state is RecordState.IN_PROGRESS:
                return rules.claimed(current)  # our own write landed although the call reported a failure
            now = self._now()
            decision = rules.decide_claim(current, key, payload_hash, now)
            if isinstance(decision, Claim):
                return decision
            record = rules.claim_record(key, payload_hash, token, decision, now, lease_seconds, ttl_seconds)
            try:
                if snapshot.exists:
                    written = ref.update(
                        _record_to_doc(record),
                        option=self._precondition(snapshot),
                        retry=None,
                        timeout=budget.left(),
                    )
                else:
                    written = ref.create(_record_to_doc(record), retry=None, timeout=budget.left())
            except (*_CONFLICT, *_LOST_RACE):
                return _AGAIN  # someone else wrote first
            self._hold(record, written.update_time)
            return rules.claimed(record)

        return self._within("claiming an idempotency key", timeout, attempt)

    def complete(self, key: str, token: str, result: JsonObject, *, timeout: float | None = None) -> None:
        rules.check_name("idempotency key", key)
        stored = rules.json_copy("result", result)
        self._update_record(
            "completing an idempotency key",
            key,
            token,
            lambda record, now: rules.completed_record(record, key, token, stored, now),
            timeout,
        )

    def release(self, key: str, token: str, *, timeout: float | None = None) -> None:
        rules.check_name("idempotency key", key)
        self._update_record(
            "releasing an idempotency key",
            key,
            token,
            lambda record, now: rules.released_record(record, key, token, now),
            timeout,
        )

    def _update_record(
        self,
        what: str,
        key: str,
        token: str,
        change: Callable[[IdempotencyRecord | None, datetime], IdempotencyRecord | None],
        timeout: float | None,
    ) -> None:
        ref = self._record_ref(key)
        held = [self._unhold(key, token)]

        def attempt(budget: _Budget) -> _Again | None:
            if held[0] is not None:
                # Our own claim, as written: change it conditioned on that write's time, no read. Any change
                # since (a take-over after our lease lapsed) fails the precondition; then read and decide.
                record, update_time = held[0]
                held[0] = None
                updated = change(record, self._now())
                if updated is None:
                    return None
                try:
                    ref.update(
                        _record_to_doc(updated),
                        option=self._client.write_option(last_update_time=update_time),
                        retry=None,
                        timeout=budget.left(),
                    )
                except _LOST_RACE:
                    pass
                else:
                    return None
            snapshot = ref.get(retry=None, timeout=budget.left())
            updated = change(_record_from(snapshot), self._now())
            if updated is None:
                return None
            try:
                ref.update(
                    _record_to_doc(updated),
                    option=self._precondition(snapshot),
                    retry=None,
                    timeout=budget.left(),
                )
            except _LOST_RACE:
                return _AGAIN
            return None

        self._within(what, timeout, attempt)

    def get(self, key: str, *, timeout: float | None = None) -> IdempotencyRecord | None:
        rules.check_name("idempotency key", key)
        ref = self._record_ref(key)

        def attempt(budget: _Budget) -> IdempotencyRecord | None:
            record = _record_from(ref.get(retry=None, timeout=budget.left()))
            return None if record is None or rules.is_expired(record, self._now()) else record

        return self._within("reading an idempotency key", timeout, attempt)

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
        ref = self._run_ref(run_id)

        def attempt(budget: _Budget) -> Run | _Again:
            now = self._now()
            run = Run(run_id, RunStatus.RUNNING, stored_cause, stored_labels, now, now)
            try:
                ref.create(_run_to_doc(run), retry=None, timeout=budget.left())
            except _CONFLICT:
                snapshot = ref.get(retry=None, timeout=budget.left())
                # Absent again only if someone deleted it in between: create it again.
                if not snapshot.exists:
                    return _AGAIN
                self._know_run(run_id)
                return self._assemble(snapshot, budget)
            self._know_run(run_id)
            return run

        return self._within("starting a run", timeout, attempt)

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
        run_ref = self._run_ref(run_id)
        ref = run_ref.collection(_STEPS).document(rules.doc_id(step))

        blind = [True]  # the first round creates the step without reading it: a new step is one write

        def attempt(budget: _Budget) -> Step | _Again:
            if blind[0]:
                blind[0] = False
                self._check_run(run_id, run_ref, budget)
                created = rules.step_after(None, step, status, stored_detail, self._now())
                assert created is not None  # a first record always changes something
                try:
                    ref.create(_step_to_doc(created), retry=None, timeout=budget.left())
                except _CONFLICT:
                    pass  # recorded before: read and decide
                else:
                    return created
            snapshot = ref.get(retry=None, timeout=budget.left())
            current = _step_from(snapshot)
            # A step document exists only under a started run, so only a new step needs the run checked.
            if current is None:
                self._check_run(run_id, run_ref, budget)
            updated = rules.step_after(current, step, status, stored_detail, self._now())
            if updated is None:
                assert current is not None  # a first record always changes something
                return current
            try:
                if snapshot.exists:
                    ref.update(
                        _step_to_doc(updated),
                        option=self._precondition(snapshot),
                        retry=None,
                        timeout=budget.left(),
                    )
                else:
                    ref.create(_step_to_doc(updated), retry=None, timeout=budget.left())
            except (*_CONFLICT, *_LOST_RACE):
                return _AGAIN
            return updated

        return self._within("recording a step", timeout, attempt)

    def _check_run(self, run_id: str, run_ref: DocumentReference, budget: _Budget) -> None:
        """Refuse a step of an unknown run: read once per run, remembered (runs are never deleted)."""
        if self._run_known(run_id):
            return
        if not run_ref.get(retry=None, timeout=budget.left()).exists:
            raise RunNotFoundError(run_id)
        self._know_run(run_id)

    def get_run(
        self, run_id: str, *, steps: Collection[str] | None = None, timeout: float | None = None
    ) -> Run | None:
        rules.check_name("run id", run_id)
        for name in steps or ():
            rules.check_name("step name", name)
        ref = self._run_ref(run_id)

        def attempt(budget: _Budget) -> Run | None:
            if steps is not None:
                return self._partial_run(run_id, ref, steps, budget)
            snapshot = ref.get(retry=None, timeout=budget.left())
            if not snapshot.exists:
                return None
            self._know_run(run_id)  # a step recorded on it next needs no existence read
            return self._assemble(snapshot, budget)

        return self._within("reading a run", timeout, attempt)

    def _partial_run(
        self, run_id: str, ref: DocumentReference, names: Collection[str], budget: _Budget
    ) -> Run | None:
        """The run document and the named step documents in one batch read."""
        step_refs = [ref.collection(_STEPS).document(rules.doc_id(name)) for name in sorted(set(names))]
        found = {
            snapshot.reference.path: snapshot
            for snapshot in self._client.get_all([ref, *step_refs], retry=None, timeout=budget.left())
        }
        run = found.get(ref.path)
        if run is None or not run.exists:
            return None
        self._know_run(run_id)
        recorded = (found.get(step_ref.path) for step_ref in step_refs)
        chosen = (_step_from_doc(_fields(item)) for item in recorded if item is not None and item.exists)
        return _run_from_doc(_fields(run), tuple(sorted(chosen, key=rules.step_sort_key)))

    def list_runs(
        self, status: RunStatus | None = None, limit: int = 50, *, timeout: float | None = None
    ) -> list[Run]:
        from google.cloud.firestore_v1.base_query import FieldFilter

        if limit <= 0:
            return []
        query: Query | CollectionReference = self._collection("runs")
        if status is not None:
            query = query.where(filter=FieldFilter("status", "==", status.value))
        query = query.order_by("started_at", direction=_DESCENDING).limit(limit)

        def attempt(budget: _Budget) -> list[Run]:
            snapshots = list(query.stream(retry=None, timeout=budget.left()))
            return [self._assemble(snapshot, budget) for snapshot in snapshots]

        return self._within("listing runs", timeout, attempt)

    def finish_run(self, run_id: str, status: RunStatus, *, timeout: float | None = None) -> Run:
        rules.check_name("run id", run_id)
        rules.check_finish(status)
        ref = self._run_ref(run_id)

        def attempt(budget: _Budget) -> Run | _Again:
            snapshot = ref.get(retry=None, timeout=budget.left())
            if not snapshot.exists:
                raise RunNotFoundError(run_id)
            current = _run_from_doc(_fields(snapshot), ())
            updated = rules.finished_run(current, status, self._now())
            if updated is not None:
                try:
                    ref.update(
                        {
                            "status": status.value,
                            "updated_at": updated.updated_at,
                            "finished_at": updated.finished_at,
                        },
                        option=self._precondition(snapshot),
                        retry=None,
                        timeout=budget.left(),
                    )
                except _LOST_RACE:
                    return _AGAIN
            return replace(updated or current, steps=self._steps(ref, budget))

        return self._within("finishing a run", timeout, attempt)

    def _steps(self, run_ref: DocumentReference, budget: _Budget) -> tuple[Step, ...]:
        docs = run_ref.collection(_STEPS).stream(retry=None, timeout=budget.left())
        return tuple(sorted((_step_from_doc(_fields(doc)) for doc in docs), key=rules.step_sort_key))

    def _assemble(self, snapshot: _Snapshot, budget: _Budget) -> Run:
        return _run_from_doc(_fields(snapshot), self._steps(snapshot.reference, budget))

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
        event, text, is_json = rules.rejected_event(event_id, reason, problems, source, payload, self._now())
        token = rules.new_token()  # tells our own write, landed before a reported failure, from another's
        doc = {
            "event_id": event.event_id,
            "reason": event.reason,
            "problems": list(event.problems),
            "source": event.source,
            "payload_text": text,
            "payload_is_json": is_json,
            "payload_truncated": event.payload_truncated,
            "recorded_at": event.recorded_at,
            "token": token,
        }
        ref = self._collection("rejected").document(rules.digest(event_id))

        def attempt(budget: _Budget) -> bool:
            try:
                ref.create(doc, retry=None, timeout=budget.left())
            except _CONFLICT:
                stored = ref.get(retry=None, timeout=budget.left()).to_dict() or {}
                return bool(stored.get("token") == token)
            return True

        return self._within("recording a rejected event", timeout, attempt)

    def list_rejected(self, limit: int = 100, *, timeout: float | None = None) -> list[RejectedEvent]:
        if limit <= 0:
            return []
        query = self._collection("rejected").order_by("recorded_at", direction=_DESCENDING).limit(limit)

        def attempt(budget: _Budget) -> list[RejectedEvent]:
            return [
                _rejected_from_doc(_fields(doc)) for doc in query.stream(retry=None, timeout=budget.left())
            ]

        return self._within("listing rejected events", timeout, attempt)

    # State documents --------------------------------------------------------------------------------------

    def _doc_ref(self, collection: str, doc_id: str) -> DocumentReference:
        return self._collection(collection).document(rules.doc_id(doc_id))

    def get_doc(self, collection: str, doc_id: str, *, timeout: float | None = None) -> StoredDoc | None:
        rules.check_collection(collection)
        rules.check_name("document id", doc_id)
        ref = self._doc_ref(collection, doc_id)

        def attempt(budget: _Budget) -> StoredDoc | None:
            snapshot = ref.get(retry=None, timeout=budget.left())
            return _stored_doc(collection, snapshot) if snapshot.exists else None

        return self._within("reading a state document", timeout, attempt)

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
        from google.protobuf.timestamp_pb2 import Timestamp

        stored = rules.checked_put(collection, doc_id, data, create_only, expect_version)
        option: Any = None
        if expect_version is not None:
            update_time = Timestamp()
            try:
                update_time.FromJsonString(expect_version)  # RFC 3339, nanoseconds kept
                option = self._client.write_option(last_update_time=update_time)
            except ValueError:
                raise DocConflictError(collection, doc_id, "that version was never one of it") from None
        ref = self._doc_ref(collection, doc_id)
        token = rules.new_token()
        fields = rules.queryable_fields(stored)

        expires = _expiry(stored)

        def attempt(budget: _Budget) -> StoredDoc:
            now = self._now()
            doc = {
                "doc_id": doc_id,
                "data_json": canonical_json(stored),
                "fields": fields,  # replaced whole by update(): no field of an older version lingers
                "updated_at": now,
                "token": token,
            }
            if expires is not None:
                doc[EXPIRY_FIELD] = expires  # a Timestamp: what a Firestore TTL policy deletes by
            try:
                if create_only:
                    written = ref.create(doc, retry=None, timeout=budget.left())
                elif option is not None:
                    written = ref.update(doc, option=option, retry=None, timeout=budget.left())
                else:
                    written = ref.set(doc, retry=None, timeout=budget.left())
            except (*_CONFLICT, *_LOST_RACE) as error:
                # A retried write whose first try landed conflicts with itself: our token says so.
                snapshot = ref.get(retry=None, timeout=budget.left())
                if snapshot.exists and _fields(snapshot).get("token") == token:
                    return _stored_doc(collection, snapshot)
                why = (
                    "it exists already"
                    if isinstance(error, _CONFLICT)
                    else "it was written since that version"
                )
                if not snapshot.exists and not create_only:
                    why = "it no longer exists"
                raise DocConflictError(collection, doc_id, why) from None
            return StoredDoc(collection, doc_id, stored, _version(written.update_time), now)

        return self._within("writing a state document", timeout, attempt)

    def query_docs(
        self,
        collection: str,
        *,
        equals: Mapping[str, str | int | bool] | None = None,
        order_by: str = "",
        limit: int = 100,
        timeout: float | None = None,
    ) -> list[StoredDoc]:
        from google.cloud.firestore_v1.base_query import FieldFilter

        rules.check_collection(collection)
        filters = rules.check_doc_query(equals, order_by)
        if limit <= 0:
            return []
        query: Query | CollectionReference = self._collection(collection)
        for name, value in filters.items():
            query = query.where(filter=FieldFilter(f"fields.{name}", "==", value))
        # Ordering on a field held equal changes nothing (ties go by document id) and Firestore may refuse it.
        if order_by and order_by not in filters:
            query = query.order_by(f"fields.{order_by}")
        query = query.limit(limit)

        def attempt(budget: _Budget) -> list[StoredDoc]:
            return [_stored_doc(collection, doc) for doc in query.stream(retry=None, timeout=budget.left())]

        return self._within("querying state documents", timeout, attempt)

    def count_docs(
        self,
        collection: str,
        *,
        equals: Mapping[str, str | int | bool] | None = None,
        limit: int = 1000,
        timeout: float | None = None,
    ) -> int:
        from google.cloud.firestore_v1.base_query import FieldFilter

        rules.check_collection(collection)
        filters = rules.check_doc_query(equals, "")
        if limit <= 0:
            return 0
        query: Query | CollectionReference = self._collection(collection)
        for name, value in filters.items():
            query = query.where(filter=FieldFilter(f"fields.{name}", "==", value))
        # An aggregation: one answer, no document read. (Its annotations say a class and a flat list; at run
        # time it is an AggregationQuery answering one list of results per query.)
        counting: Any = query.limit(limit).count()

        def attempt(budget: _Budget) -> int:
            results: Any = counting.get(retry=None, timeout=budget.left())
            return int(results[0][0].value) if results and results[0] else 0

        return self._within("counting state documents", timeout, attempt)


#: A state document whose data has a top-level ``expires_at`` (RFC 3339 text) also gets it as a Firestore
#: Timestamp under this name, so a TTL policy on the collection deletes it (``deploy plan`` sets the policies;
#: Slack's replay records use it). The data read back is the data written: the Timestamp is not part of it.
EXPIRY_FIELD = "expires_at"


def _expiry(data: JsonObject) -> datetime | None:
    value = data.get(EXPIRY_FIELD)
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None
