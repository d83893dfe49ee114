"""The ledger: idempotency records, run records and rejected events, in Firestore or in memory.

Every handler is delivered at least once, so every step first *claims* an idempotency record for its domain
key, does its side effect, then *completes* the record with a small result (or *releases* it on failure so
a retry can claim it at once). The ledger also keeps the history of each pipeline run and a record of every
event that was refused, so nothing is silently lost.

Data model
==========

Idempotency record (one per domain key: a GitHub delivery id, ``bucket/object#generation``, a Pub/Sub
message id, ``run-id/step`` ...)

``key``             the domain key as given (any string; the storage id is ``sha256(key)`` hex, because keys
                    may contain ``/``, ``#`` and other characters Firestore document ids reject)
``payload_hash``    :func:`payload_hash` of the payload the key was first claimed for; claiming the same key
                    with a different hash raises :class:`KeyReuseError` (a permanent error)
``state``           ``IN_PROGRESS`` (a holder has a lease), ``COMPLETED`` (done, ``result`` stored) or
                    ``RELEASED`` (the holder gave up; the next claim takes it at once)
``token``           random lease token of the current (or last) holder; ``complete`` and ``release`` must
                    present it, otherwise :class:`LeaseLostError`
``attempt``         1 for the first claim, +1 for each take-over of a released or lapsed lease
``lease_expires_at`` until then an ``IN_PROGRESS`` record belongs to its holder; afterwards anyone may take it
                    over (with a new token)
``expires_at``      after this instant the record is treated as absent (a fresh claim starts again at attempt
                    1 and the payload hash is not compared). Set to ``now + max(ttl, lease)`` on claim and to
                    ``now + ttl`` on completion; it is a ``Timestamp`` so a Firestore TTL policy on
                    ``expires_at`` can delete old records, but the ledger never relies on that deletion
``result``          JSON object stored on completion and handed back to later claims as ``COMPLETED``; keep
                    it small (ids and names, not artefacts: a Firestore document holds at most 1 MiB)
``created_at``      when the key was first claimed (kept across take-overs of a live record)

Every lease and expiry decision uses the injected ``clock`` (timezone-aware UTC), never the server's time,
so tests move time forward without sleeping and both backends decide identically.

Run record: one per run id, with its steps.

``{run_id, status: RUNNING|SUCCEEDED|FAILED|CANCELLED, cause, labels, started_at, updated_at, finished_at}``;
``start_run`` is idempotent (a second call returns the existing run unchanged) and a terminal status is
sticky. Each step is ``{name, status: STARTED|SUCCEEDED|FAILED|SKIPPED, started_at, finished_at,
updated_at, detail}``: ``started_at`` comes from the step's first record, ``finished_at`` from the record
that made it terminal, and ``detail`` objects are merged (later keys win). Step transitions:

* a record that does not change the status is a no-op (redelivery is harmless);
* ``STARTED`` never reopens a terminal step (out-of-order delivery);
* ``SUCCEEDED`` and ``SKIPPED`` are final; ``FAILED`` may be superseded by a later ``SUCCEEDED`` or
  ``SKIPPED`` (a retry's outcome).

Steps may still be recorded on a finished run (late events are kept); they never change the run's status.

Rejected event: ``{event_id, reason ("invalid", "expired", "key_reuse" ...), problems, source, payload,
payload_truncated, recorded_at}``, idempotent on ``event_id`` (the first record wins). Payloads longer
than :data:`MAX_REJECTED_PAYLOAD_CHARS` characters of JSON are stored truncated, as text.

Firestore layout (``prefix`` isolates tests and deployments)
============================================================

``{prefix}idempotency/{sha256(key)}``  idempotency records
``{prefix}runs/{run-doc-id}``          runs; ``{prefix}runs/{run-doc-id}/steps/{step-doc-id}`` their steps
``{prefix}rejected/{sha256(event_id)}`` rejected events

Run and step document ids are the name itself when it is a safe Firestore id (``[A-Za-z0-9][A-Za-z0-9_.-]*``
up to 200 characters), otherwise a sanitised prefix plus ``~`` and 16 hex digits of its sha256; the original
name is always kept in a field. Caller-supplied objects (``result``, ``cause``, ``detail``, ``payload``) are
stored as canonical JSON text (``result_json``, ``cause_json``, ``detail_json``; a rejected payload as
``payload_text`` with ``payload_is_json``) so that they round-trip exactly in both backends (Firestore maps
reject, for instance, arrays of arrays); they must be JSON-serialisable. ``labels`` (strings only) is a
native map so it can be queried.

The Firestore hot path uses no transactions (a contended transaction costs seconds on the emulator): claims
use create-if-absent, and every change to an existing document is an update conditioned on the
``update_time`` read just before (optimistic concurrency; the loser re-reads and decides again).
``list_runs(status=...)`` needs a composite index on ``runs``: ``status`` ascending, ``started_at``
descending.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from google.api_core import exceptions as api_exceptions

if TYPE_CHECKING:
    from google.cloud import firestore
    from google.cloud.firestore_v1.base_document import DocumentSnapshot
    from google.cloud.firestore_v1.collection import CollectionReference
    from google.cloud.firestore_v1.document import DocumentReference
    from google.cloud.firestore_v1.query import Query

    _Snapshot = DocumentSnapshot[DocumentReference]

__all__ = [
    "MAX_REJECTED_PAYLOAD_CHARS",
    "Claim",
    "ClaimStatus",
    "Clock",
    "FirestoreLedger",
    "IdempotencyRecord",
    "InMemoryLedger",
    "KeyReuseError",
    "LeaseLostError",
    "Ledger",
    "LedgerContentionError",
    "LedgerError",
    "RecordState",
    "RejectedEvent",
    "Run",
    "RunNotFoundError",
    "RunStatus",
    "Step",
    "StepStatus",
    "canonical_json",
    "payload_hash",
]

JsonObject = dict[str, Any]
Clock = Callable[[], datetime]

#: Rejected payloads longer than this (as JSON text) are stored truncated, to stay under Firestore's 1 MiB.
MAX_REJECTED_PAYLOAD_CHARS = 100_000
#: At most this many problems of at most this many characters are kept per rejected event.
MAX_REJECTED_PROBLEMS = 100
MAX_PROBLEM_CHARS = 1_000
#: Optimistic-concurrency rounds (read, decide, conditional write) before giving up with a transient error.
MAX_OPTIMISTIC_ROUNDS = 16

_SAFE_DOC_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9_.\-]")
_PREFIX = re.compile(r"[A-Za-z0-9_.\-]*")


# ----------------------------------------------------------------------------------------------------
# Errors


class LedgerError(Exception):
    """Base of the ledger's errors. ``retryable`` says whether redelivering the event may succeed."""

    http_status = 500
    retryable = True


class KeyReuseError(LedgerError):
    """An idempotency key was claimed again with a different payload: permanent, never retry."""

    http_status = 409
    retryable = False

    def __init__(self, key: str, stored_hash: str, given_hash: str) -> None:
        self.key = key
        self.stored_hash = stored_hash
        self.given_hash = given_hash
        super().__init__(
            f"idempotency key {key!r} was already used with a different payload "
            f"(stored sha256 {stored_hash[:12]}..., this one {given_hash[:12]}...)"
        )


class LeaseLostError(LedgerError):
    """``complete``/``release`` with a token that no longer holds the record (taken over, expired, unknown).

    The work may have been done twice; redelivery will see the other holder's outcome.
    """

    http_status = 409
    retryable = True

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"lease on idempotency key {key!r} lost: {reason}")


class RunNotFoundError(LedgerError, LookupError):
    """A step or outcome was recorded for a run id that was never started."""

    http_status = 404
    retryable = True

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"run {run_id!r} does not exist")


class LedgerContentionError(LedgerError):
    """Too many concurrent writers kept winning the optimistic race; try again later."""

    http_status = 503
    retryable = True


# ----------------------------------------------------------------------------------------------------
# Values


class ClaimStatus(enum.Enum):
    CLAIMED = "CLAIMED"
    COMPLETED = "COMPLETED"
    IN_PROGRESS = "IN_PROGRESS"


class RecordState(enum.Enum):
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    RELEASED = "RELEASED"


class StepStatus(enum.Enum):
    STARTED = "STARTED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"

    @property
    def terminal(self) -> bool:
        return self is not StepStatus.STARTED


class RunStatus(enum.Enum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self is not RunStatus.RUNNING


@dataclass(frozen=True)
class Claim:
    """The answer to :meth:`Ledger.claim`.

    ``CLAIMED``: the caller holds the lease (``token``) until ``lease_expires_at``.
    ``COMPLETED``: already done; ``result`` is the stored result.
    ``IN_PROGRESS``: someone else holds a live lease until ``lease_expires_at``; answer "retry later".
    """

    status: ClaimStatus
    key: str
    attempt: int
    token: str | None = None
    lease_expires_at: datetime | None = None
    result: JsonObject | None = None

    @property
    def claimed(self) -> bool:
        return self.status is ClaimStatus.CLAIMED

    def retry_after(self, now: datetime) -> float:
        """Seconds until the current lease lapses (0 when there is none or it already has)."""
        if self.lease_expires_at is None:
            return 0.0
        return max(0.0, (self.lease_expires_at - now).total_seconds())


@dataclass(frozen=True)
class IdempotencyRecord:
    key: str
    payload_hash: str
    state: RecordState
    token: str
    attempt: int
    lease_expires_at: datetime
    expires_at: datetime
    ttl_seconds: float
    created_at: datetime
    updated_at: datetime
    result: JsonObject | None = None


@dataclass(frozen=True)
class Step:
    name: str
    status: StepStatus
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    detail: JsonObject = field(default_factory=dict)


@dataclass(frozen=True)
class Run:
    run_id: str
    status: RunStatus
    cause: JsonObject
    labels: dict[str, str]
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    steps: tuple[Step, ...] = ()

    def step(self, name: str) -> Step | None:
        return next((step for step in self.steps if step.name == name), None)


@dataclass(frozen=True)
class RejectedEvent:
    event_id: str
    reason: str
    problems: tuple[str, ...]
    source: str
    payload: JsonObject | str
    payload_truncated: bool
    recorded_at: datetime


# ----------------------------------------------------------------------------------------------------
# Helpers shared by both backends


def canonical_json(obj: object) -> str:
    """Canonical JSON text: sorted keys, no whitespace, UTF-8 kept, NaN/Infinity refused."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def payload_hash(obj: object) -> str:
    """sha256 hex of ``obj``: of the bytes themselves for ``bytes`` (e.g. a raw webhook body), otherwise of
    its :func:`canonical_json` text (so key order does not matter)."""
    data = bytes(obj) if isinstance(obj, bytes | bytearray) else canonical_json(obj).encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _doc_id(name: str) -> str:
    """A Firestore-safe document id for a run id or step name, injective in practice."""
    if _SAFE_DOC_ID.fullmatch(name):
        return name
    return f"{_UNSAFE_CHARS.sub('_', name)[:100]}~{_sha256(name)[:16]}"


def _json_copy(obj: JsonObject) -> JsonObject:
    value = json.loads(canonical_json(obj))
    if not isinstance(value, dict):
        raise TypeError(f"expected a JSON object, got {type(obj).__name__}")
    return value


def _load_object(text: str) -> JsonObject:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise TypeError("stored JSON is not an object")
    return value


def _require_name(what: str, value: str) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string")


def _require_positive(what: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{what} must be positive, got {value!r}")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _as_utc(value: datetime) -> datetime:
    """A plain ``datetime`` in UTC (Firestore hands back a nanosecond subclass)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: the ledger needs timezone-aware datetimes")
    v = value.astimezone(UTC)
    return datetime(v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond, tzinfo=UTC)


def _clock_now(clock: Clock) -> datetime:
    return _as_utc(clock())


def _new_token() -> str:
    return secrets.token_hex(16)


def _is_expired(record: IdempotencyRecord, now: datetime) -> bool:
    return now >= record.expires_at


@dataclass(frozen=True)
class _Take:
    """Decision: write a new claim, as ``attempt``; ``created_at`` is kept from a record taken over."""

    attempt: int
    created_at: datetime | None = None


def _decide_claim(
    record: IdempotencyRecord | None, key: str, given_hash: str, now: datetime
) -> Claim | _Take:
    if record is None or _is_expired(record, now):
        return _Take(attempt=1)
    if record.payload_hash != given_hash:
        raise KeyReuseError(key, record.payload_hash, given_hash)
    if record.state is RecordState.COMPLETED:
        return Claim(ClaimStatus.COMPLETED, key, record.attempt, result=record.result)
    if record.state is RecordState.IN_PROGRESS and now < record.lease_expires_at:
        return Claim(ClaimStatus.IN_PROGRESS, key, record.attempt, lease_expires_at=record.lease_expires_at)
    return _Take(attempt=record.attempt + 1, created_at=record.created_at)


def _claim_record(
    key: str,
    given_hash: str,
    token: str,
    take: _Take,
    now: datetime,
    lease_seconds: float,
    ttl_seconds: float,
) -> IdempotencyRecord:
    return IdempotencyRecord(
        key=key,
        payload_hash=given_hash,
        state=RecordState.IN_PROGRESS,
        token=token,
        attempt=take.attempt,
        lease_expires_at=now + timedelta(seconds=lease_seconds),
        expires_at=now + timedelta(seconds=max(lease_seconds, ttl_seconds)),
        ttl_seconds=ttl_seconds,
        created_at=take.created_at or now,
        updated_at=now,
    )


def _claimed(record: IdempotencyRecord) -> Claim:
    return Claim(
        ClaimStatus.CLAIMED,
        record.key,
        record.attempt,
        token=record.token,
        lease_expires_at=record.lease_expires_at,
    )


def _completed_record(
    record: IdempotencyRecord | None, key: str, token: str, result: JsonObject, now: datetime
) -> IdempotencyRecord | None:
    """The record after ``complete``; None when it is already completed by this token (no-op)."""
    if record is None:
        raise LeaseLostError(key, "no such record")
    if record.token != token:
        raise LeaseLostError(key, f"held by another token (attempt {record.attempt})")
    if record.state is RecordState.COMPLETED:
        return None
    if record.state is RecordState.RELEASED:
        raise LeaseLostError(key, "already released")
    return replace(
        record,
        state=RecordState.COMPLETED,
        result=result,
        expires_at=now + timedelta(seconds=record.ttl_seconds),
        updated_at=now,
    )


def _released_record(
    record: IdempotencyRecord | None, key: str, token: str, now: datetime
) -> IdempotencyRecord | None:
    """The record after ``release``; None when it is already released by this token (no-op)."""
    if record is None:
        raise LeaseLostError(key, "no such record")
    if record.token != token:
        raise LeaseLostError(key, f"held by another token (attempt {record.attempt})")
    if record.state is RecordState.RELEASED:
        return None
    if record.state is RecordState.COMPLETED:
        raise LeaseLostError(key, "already completed")
    return replace(record, state=RecordState.RELEASED, lease_expires_at=now, updated_at=now)


_FINAL_STEP_STATUSES = frozenset({StepStatus.SUCCEEDED, StepStatus.SKIPPED})


def _step_after(
    current: Step | None, name: str, status: StepStatus, detail: JsonObject | None, now: datetime
) -> Step | None:
    """The step after recording ``status``; None when the record changes nothing."""
    if current is None:
        return Step(
            name=name,
            status=status,
            started_at=now,
            updated_at=now,
            finished_at=now if status.terminal else None,
            detail=dict(detail or {}),
        )
    if status is current.status or current.status in _FINAL_STEP_STATUSES:
        return None
    if current.status.terminal and not status.terminal:
        return None  # a late STARTED never reopens a finished step
    return replace(
        current,
        status=status,
        updated_at=now,
        finished_at=now if status.terminal else None,
        detail={**current.detail, **(detail or {})},
    )


def _finished_run(current: Run, status: RunStatus, now: datetime) -> Run | None:
    if current.status.terminal:
        return None
    return replace(current, status=status, updated_at=now, finished_at=now)


def _rejected_event(
    event_id: str, reason: str, problems: Sequence[str], source: str, payload: JsonObject | str, now: datetime
) -> tuple[RejectedEvent, str, bool]:
    """The event as stored, plus its payload text and whether that text is JSON."""
    is_json = not isinstance(payload, str)
    text = canonical_json(payload) if is_json else str(payload)
    truncated = len(text) > MAX_REJECTED_PAYLOAD_CHARS
    if truncated:
        text = text[:MAX_REJECTED_PAYLOAD_CHARS]
        is_json = False
    event = RejectedEvent(
        event_id=event_id,
        reason=reason,
        problems=tuple(str(p)[:MAX_PROBLEM_CHARS] for p in problems[:MAX_REJECTED_PROBLEMS]),
        source=source,
        payload=_load_object(text) if is_json else text,
        payload_truncated=truncated,
        recorded_at=now,
    )
    return event, text, is_json


def _step_sort_key(step: Step) -> tuple[datetime, str]:
    return (step.started_at, step.name)


def _validate_claim_args(key: str, given_hash: str, lease_seconds: float, ttl_seconds: float) -> None:
    _require_name("key", key)
    _require_name("payload_hash", given_hash)
    _require_positive("lease_seconds", lease_seconds)
    _require_positive("ttl_seconds", ttl_seconds)


def _validate_finish(status: RunStatus) -> None:
    if not status.terminal:
        raise ValueError(f"finish_run needs a terminal status, got {status.value}")


# ----------------------------------------------------------------------------------------------------
# The protocol


@runtime_checkable
class Ledger(Protocol):
    """Idempotency records, run records and rejected events (see the module docstring)."""

    def claim(self, key: str, payload_hash: str, lease_seconds: float, ttl_seconds: float) -> Claim:
        """Claim ``key`` for a payload; raises :class:`KeyReuseError` if it was used for another payload."""
        ...

    def complete(self, key: str, token: str, result: JsonObject) -> None:
        """Store the result; :class:`LeaseLostError` unless ``token`` holds the record. Idempotent."""
        ...

    def release(self, key: str, token: str) -> None:
        """Give up the lease so a retry can claim at once; LeaseLostError unless ``token`` holds it."""
        ...

    def get(self, key: str) -> IdempotencyRecord | None:
        """The live record for ``key``; None when absent or past its expiry."""
        ...

    def start_run(self, run_id: str, cause: JsonObject, labels: dict[str, str] | None = None) -> Run:
        """Create the run, RUNNING; if it exists already, return it unchanged."""
        ...

    def record_step(
        self, run_id: str, step: str, status: StepStatus, detail: JsonObject | None = None
    ) -> Step:
        """Record a step's status (see the transition rules); returns the step as stored."""
        ...

    def get_run(self, run_id: str) -> Run | None:
        """The run with its steps ordered by ``started_at``; None when unknown."""
        ...

    def list_runs(self, status: RunStatus | None = None, limit: int = 50) -> list[Run]:
        """Runs, newest ``started_at`` first, optionally only those with ``status``."""
        ...

    def finish_run(self, run_id: str, status: RunStatus) -> Run:
        """RUNNING -> ``status`` (terminal); a terminal run is returned unchanged."""
        ...

    def record_rejected(
        self, event_id: str, reason: str, problems: Sequence[str], source: str, payload: JsonObject | str
    ) -> bool:
        """Record a refused event; True when newly recorded, False when ``event_id`` was already recorded."""
        ...

    def list_rejected(self, limit: int = 100) -> list[RejectedEvent]:
        """Rejected events, most recent first."""
        ...


# ----------------------------------------------------------------------------------------------------
# In memory


class InMemoryLedger:
    """A thread-safe ledger in process memory, with the same semantics as :class:`FirestoreLedger`."""

    def __init__(self, clock: Clock = _utc_now) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        self._records: dict[str, IdempotencyRecord] = {}
        self._runs: dict[str, Run] = {}
        self._steps: dict[str, dict[str, Step]] = {}
        self._rejected: dict[str, RejectedEvent] = {}

    def _now(self) -> datetime:
        return _clock_now(self._clock)

    def claim(self, key: str, payload_hash: str, lease_seconds: float, ttl_seconds: float) -> Claim:
        _validate_claim_args(key, payload_hash, lease_seconds, ttl_seconds)
        with self._lock:
            now = self._now()
            decision = _decide_claim(self._records.get(key), key, payload_hash, now)
            if isinstance(decision, Claim):
                return _copy_claim(decision)
            record = _claim_record(key, payload_hash, _new_token(), decision, now, lease_seconds, ttl_seconds)
            self._records[key] = record
            return _claimed(record)

    def complete(self, key: str, token: str, result: JsonObject) -> None:
        stored = _json_copy(result)
        with self._lock:
            updated = _completed_record(self._records.get(key), key, token, stored, self._now())
            if updated is not None:
                self._records[key] = updated

    def release(self, key: str, token: str) -> None:
        with self._lock:
            updated = _released_record(self._records.get(key), key, token, self._now())
            if updated is not None:
                self._records[key] = updated

    def get(self, key: str) -> IdempotencyRecord | None:
        with self._lock:
            record = self._records.get(key)
            if record is None or _is_expired(record, self._now()):
                return None
            return replace(record, result=None if record.result is None else _json_copy(record.result))

    def start_run(self, run_id: str, cause: JsonObject, labels: dict[str, str] | None = None) -> Run:
        _require_name("run_id", run_id)
        stored_cause = _json_copy(cause)
        stored_labels = {str(k): str(v) for k, v in (labels or {}).items()}
        with self._lock:
            if run_id not in self._runs:
                now = self._now()
                self._runs[run_id] = Run(run_id, RunStatus.RUNNING, stored_cause, stored_labels, now, now)
                self._steps[run_id] = {}
            return self._assemble(run_id)

    def record_step(
        self, run_id: str, step: str, status: StepStatus, detail: JsonObject | None = None
    ) -> Step:
        _require_name("step", step)
        stored_detail = None if detail is None else _json_copy(detail)
        with self._lock:
            if run_id not in self._runs:
                raise RunNotFoundError(run_id)
            steps = self._steps[run_id]
            current = steps.get(step)
            updated = _step_after(current, step, status, stored_detail, self._now())
            if updated is not None:
                steps[step] = updated
            return _copy_step(steps[step])

    def get_run(self, run_id: str) -> Run | None:
        with self._lock:
            return self._assemble(run_id) if run_id in self._runs else None

    def list_runs(self, status: RunStatus | None = None, limit: int = 50) -> list[Run]:
        if limit <= 0:
            return []
        with self._lock:
            runs = [run for run in self._runs.values() if status is None or run.status is status]
            runs.sort(key=lambda run: (run.started_at, _doc_id(run.run_id)), reverse=True)
            return [self._assemble(run.run_id) for run in runs[:limit]]

    def finish_run(self, run_id: str, status: RunStatus) -> Run:
        _validate_finish(status)
        with self._lock:
            current = self._runs.get(run_id)
            if current is None:
                raise RunNotFoundError(run_id)
            updated = _finished_run(current, status, self._now())
            if updated is not None:
                self._runs[run_id] = updated
            return self._assemble(run_id)

    def record_rejected(
        self, event_id: str, reason: str, problems: Sequence[str], source: str, payload: JsonObject | str
    ) -> bool:
        _require_name("event_id", event_id)
        with self._lock:
            if event_id in self._rejected:
                return False
            event, _, _ = _rejected_event(event_id, reason, problems, source, payload, self._now())
            self._rejected[event_id] = event
            return True

    def list_rejected(self, limit: int = 100) -> list[RejectedEvent]:
        if limit <= 0:
            return []
        with self._lock:
            events = sorted(
                self._rejected.values(), key=lambda e: (e.recorded_at, _sha256(e.event_id)), reverse=True
            )
            return [_copy_rejected(event) for event in events[:limit]]

    def _assemble(self, run_id: str) -> Run:
        run = self._runs[run_id]
        steps = sorted(self._steps[run_id].values(), key=_step_sort_key)
        return replace(
            run,
            cause=_json_copy(run.cause),
            labels=dict(run.labels),
            steps=tuple(_copy_step(step) for step in steps),
        )


def _copy_claim(claim: Claim) -> Claim:
    return claim if claim.result is None else replace(claim, result=_json_copy(claim.result))


def _copy_step(step: Step) -> Step:
    return replace(step, detail=_json_copy(step.detail))


def _copy_rejected(event: RejectedEvent) -> RejectedEvent:
    payload = event.payload if isinstance(event.payload, str) else _json_copy(event.payload)
    return replace(event, payload=payload)


# ----------------------------------------------------------------------------------------------------
# Firestore

_CONFLICT = (api_exceptions.Conflict, api_exceptions.AlreadyExists)
_LOST_RACE = (api_exceptions.FailedPrecondition, api_exceptions.NotFound)
_DESCENDING = "DESCENDING"


def _data(snapshot: _Snapshot) -> dict[str, Any] | None:
    """The snapshot's fields, or None when the document does not exist."""
    return snapshot.to_dict() if snapshot.exists else None


def _fields(snapshot: _Snapshot) -> dict[str, Any]:
    data = snapshot.to_dict()
    if data is None:
        raise LookupError(f"document {snapshot.reference.path} does not exist")
    return data


def _record_to_doc(record: IdempotencyRecord) -> dict[str, Any]:
    return {
        "key": record.key,
        "payload_hash": record.payload_hash,
        "state": record.state.value,
        "token": record.token,
        "attempt": record.attempt,
        "lease_expires_at": record.lease_expires_at,
        "expires_at": record.expires_at,
        "ttl_seconds": record.ttl_seconds,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "result_json": None if record.result is None else canonical_json(record.result),
    }


def _record_from_doc(doc: dict[str, Any]) -> IdempotencyRecord:
    result_json = doc.get("result_json")
    return IdempotencyRecord(
        key=str(doc["key"]),
        payload_hash=str(doc["payload_hash"]),
        state=RecordState(doc["state"]),
        token=str(doc["token"]),
        attempt=int(doc["attempt"]),
        lease_expires_at=_as_utc(doc["lease_expires_at"]),
        expires_at=_as_utc(doc["expires_at"]),
        ttl_seconds=float(doc["ttl_seconds"]),
        created_at=_as_utc(doc["created_at"]),
        updated_at=_as_utc(doc["updated_at"]),
        result=None if result_json is None else _load_object(str(result_json)),
    )


def _run_to_doc(run: Run) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "status": run.status.value,
        "cause_json": canonical_json(run.cause),
        "labels": dict(run.labels),
        "started_at": run.started_at,
        "updated_at": run.updated_at,
        "finished_at": run.finished_at,
    }


def _run_from_doc(doc: dict[str, Any], steps: tuple[Step, ...]) -> Run:
    finished = doc.get("finished_at")
    return Run(
        run_id=str(doc["run_id"]),
        status=RunStatus(doc["status"]),
        cause=_load_object(str(doc["cause_json"])),
        labels={str(k): str(v) for k, v in (doc.get("labels") or {}).items()},
        started_at=_as_utc(doc["started_at"]),
        updated_at=_as_utc(doc["updated_at"]),
        finished_at=None if finished is None else _as_utc(finished),
        steps=steps,
    )


def _step_to_doc(step: Step) -> dict[str, Any]:
    return {
        "name": step.name,
        "status": step.status.value,
        "started_at": step.started_at,
        "updated_at": step.updated_at,
        "finished_at": step.finished_at,
        "detail_json": canonical_json(step.detail),
    }


def _step_from_doc(doc: dict[str, Any]) -> Step:
    finished = doc.get("finished_at")
    return Step(
        name=str(doc["name"]),
        status=StepStatus(doc["status"]),
        started_at=_as_utc(doc["started_at"]),
        updated_at=_as_utc(doc["updated_at"]),
        finished_at=None if finished is None else _as_utc(finished),
        detail=_load_object(str(doc.get("detail_json") or "{}")),
    )


def _rejected_from_doc(doc: dict[str, Any]) -> RejectedEvent:
    text = str(doc["payload_text"])
    payload: JsonObject | str = _load_object(text) if doc.get("payload_is_json") else text
    return RejectedEvent(
        event_id=str(doc["event_id"]),
        reason=str(doc["reason"]),
        problems=tuple(str(p) for p in doc.get("problems") or ()),
        source=str(doc["source"]),
        payload=payload,
        payload_truncated=bool(doc.get("payload_truncated")),
        recorded_at=_as_utc(doc["recorded_at"]),
    )


class FirestoreLedger:
    """The ledger in Firestore (or its emulator). No transactions: create-if-absent and conditional updates.

    ``client`` is a ``google.cloud.firestore.Client`` built by the caller; ``prefix`` is prepended to every
    top-level collection name.
    """

    def __init__(self, client: firestore.Client, prefix: str = "", clock: Clock = _utc_now) -> None:
        if not _PREFIX.fullmatch(prefix):
            raise ValueError(f"collection prefix {prefix!r} may only contain letters, digits, '_', '.', '-'")
        self._client = client
        self._prefix = prefix
        self._clock = clock

    @property
    def prefix(self) -> str:
        return self._prefix

    def _now(self) -> datetime:
        return _clock_now(self._clock)

    def _collection(self, name: str) -> CollectionReference:
        return self._client.collection(f"{self._prefix}{name}")

    def _record_ref(self, key: str) -> DocumentReference:
        return self._collection("idempotency").document(_sha256(key))

    def _run_ref(self, run_id: str) -> DocumentReference:
        return self._collection("runs").document(_doc_id(run_id))

    def _precondition(self, snapshot: _Snapshot) -> Any:
        return self._client.write_option(last_update_time=snapshot.update_time)

    # Idempotency ------------------------------------------------------------------------------------------

    def claim(self, key: str, payload_hash: str, lease_seconds: float, ttl_seconds: float) -> Claim:
        _validate_claim_args(key, payload_hash, lease_seconds, ttl_seconds)
        ref = self._record_ref(key)
        token = _new_token()
        for _ in range(MAX_OPTIMISTIC_ROUNDS):
            snapshot = ref.get()
            data = _data(snapshot)
            current = None if data is None else _record_from_doc(data)
            if current is not None and current.token == token and current.state is RecordState.IN_PROGRESS:
                return _claimed(current)  # our own write landed although the call reported a failure
            now = self._now()
            decision = _decide_claim(current, key, payload_hash, now)
            if isinstance(decision, Claim):
                return decision
            record = _claim_record(key, payload_hash, token, decision, now, lease_seconds, ttl_seconds)
            try:
                if snapshot.exists:
                    ref.update(_record_to_doc(record), option=self._precondition(snapshot))
                else:
                    ref.create(_record_to_doc(record))
            except (*_CONFLICT, *_LOST_RACE):
                continue  # someone else wrote first: read again and decide again
            return _claimed(record)
        raise LedgerContentionError(f"could not claim idempotency key {key!r}: too much contention")

    def complete(self, key: str, token: str, result: JsonObject) -> None:
        stored = _json_copy(result)
        self._update_record(key, lambda record, now: _completed_record(record, key, token, stored, now))

    def release(self, key: str, token: str) -> None:
        self._update_record(key, lambda record, now: _released_record(record, key, token, now))

    def _update_record(
        self,
        key: str,
        change: Callable[[IdempotencyRecord | None, datetime], IdempotencyRecord | None],
    ) -> None:
        ref = self._record_ref(key)
        for _ in range(MAX_OPTIMISTIC_ROUNDS):
            snapshot = ref.get()
            data = _data(snapshot)
            current = None if data is None else _record_from_doc(data)
            updated = change(current, self._now())
            if updated is None:
                return
            try:
                ref.update(_record_to_doc(updated), option=self._precondition(snapshot))
            except _LOST_RACE:
                continue
            return
        raise LedgerContentionError(f"could not update idempotency key {key!r}: too much contention")

    def get(self, key: str) -> IdempotencyRecord | None:
        snapshot = self._record_ref(key).get()
        data = _data(snapshot)
        if data is None:
            return None
        record = _record_from_doc(data)
        return None if _is_expired(record, self._now()) else record

    # Runs -------------------------------------------------------------------------------------------------

    def start_run(self, run_id: str, cause: JsonObject, labels: dict[str, str] | None = None) -> Run:
        _require_name("run_id", run_id)
        now = self._now()
        run = Run(
            run_id,
            RunStatus.RUNNING,
            _json_copy(cause),
            {str(k): str(v) for k, v in (labels or {}).items()},
            now,
            now,
        )
        try:
            self._run_ref(run_id).create(_run_to_doc(run))
        except _CONFLICT:
            existing = self.get_run(run_id)
            if existing is None:  # pragma: no cover - only if someone deletes runs concurrently
                raise LedgerContentionError(f"run {run_id!r} vanished while starting it") from None
            return existing
        return run

    def record_step(
        self, run_id: str, step: str, status: StepStatus, detail: JsonObject | None = None
    ) -> Step:
        _require_name("step", step)
        stored_detail = None if detail is None else _json_copy(detail)
        run_ref = self._run_ref(run_id)
        if not run_ref.get().exists:
            raise RunNotFoundError(run_id)
        ref = run_ref.collection("steps").document(_doc_id(step))
        for _ in range(MAX_OPTIMISTIC_ROUNDS):
            snapshot = ref.get()
            data = _data(snapshot)
            current = None if data is None else _step_from_doc(data)
            updated = _step_after(current, step, status, stored_detail, self._now())
            if updated is None:
                assert current is not None  # a first record always changes something
                return current
            try:
                if snapshot.exists:
                    ref.update(_step_to_doc(updated), option=self._precondition(snapshot))
                else:
                    ref.create(_step_to_doc(updated))
            except (*_CONFLICT, *_LOST_RACE):
                continue
            return updated
        raise LedgerContentionError(f"could not record step {step!r} of run {run_id!r}: too much contention")

    def get_run(self, run_id: str) -> Run | None:
        snapshot = self._run_ref(run_id).get()
        return self._assemble(snapshot) if snapshot.exists else None

    def list_runs(self, status: RunStatus | None = None, limit: int = 50) -> list[Run]:
        from google.cloud.firestore_v1.base_query import FieldFilter

        if limit <= 0:
            return []
        query: Query | CollectionReference = self._collection("runs")
        if status is not None:
            query = query.where(filter=FieldFilter("status", "==", status.value))
        query = query.order_by("started_at", direction=_DESCENDING).limit(limit)
        return [self._assemble(snapshot) for snapshot in query.stream()]

    def finish_run(self, run_id: str, status: RunStatus) -> Run:
        _validate_finish(status)
        ref = self._run_ref(run_id)
        for _ in range(MAX_OPTIMISTIC_ROUNDS):
            snapshot = ref.get()
            if not snapshot.exists:
                raise RunNotFoundError(run_id)
            current = self._assemble(snapshot)
            updated = _finished_run(current, status, self._now())
            if updated is None:
                return current
            try:
                ref.update(
                    {
                        "status": status.value,
                        "updated_at": updated.updated_at,
                        "finished_at": updated.finished_at,
                    },
                    option=self._precondition(snapshot),
                )
            except _LOST_RACE:
                continue
            return updated
        raise LedgerContentionError(f"could not finish run {run_id!r}: too much contention")

    def _assemble(self, snapshot: _Snapshot) -> Run:
        steps = [_step_from_doc(_fields(doc)) for doc in snapshot.reference.collection("steps").stream()]
        return _run_from_doc(_fields(snapshot), tuple(sorted(steps, key=_step_sort_key)))

    # Rejected events --------------------------------------------------------------------------------------

    def record_rejected(
        self, event_id: str, reason: str, problems: Sequence[str], source: str, payload: JsonObject | str
    ) -> bool:
        _require_name("event_id", event_id)
        event, text, is_json = _rejected_event(event_id, reason, problems, source, payload, self._now())
        doc = {
            "event_id": event.event_id,
            "reason": event.reason,
            "problems": list(event.problems),
            "source": event.source,
            "payload_text": text,
            "payload_is_json": is_json,
            "payload_truncated": event.payload_truncated,
            "recorded_at": event.recorded_at,
        }
        try:
            self._collection("rejected").document(_sha256(event_id)).create(doc)
        except _CONFLICT:
            return False
        return True

    def list_rejected(self, limit: int = 100) -> list[RejectedEvent]:
        if limit <= 0:
            return []
        query = self._collection("rejected").order_by("recorded_at", direction=_DESCENDING).limit(limit)
        return [_rejected_from_doc(_fields(snapshot)) for snapshot in query.stream()]


if TYPE_CHECKING:

    def _conforms(memory: InMemoryLedger, store: FirestoreLedger) -> tuple[Ledger, Ledger]:
        return memory, store
