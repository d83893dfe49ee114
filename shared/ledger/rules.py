"""The ledger's decisions as pure functions, so both backends decide identically.

A backend reads the current record, asks a function here what it becomes, and writes the answer (under a
lock in memory, with a conditional write in Firestore). The argument checks and the bounding of what gets
stored live here too: whatever a backend is given, it refuses the same inputs with the same
:class:`~shared.ledger.errors.InvalidLedgerInput` and stores the same bounded values.
"""

from __future__ import annotations

import hashlib
import json
import re
import reprlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from shared.ledger.errors import InvalidLedgerInput, KeyReuseError, LeaseLostError
from shared.ledger.model import (
    MAX_COLLECTION_BYTES,
    MAX_JSON_BYTES,
    MAX_LABEL_KEY_BYTES,
    MAX_LABEL_VALUE_BYTES,
    MAX_LABELS,
    MAX_NAME_BYTES,
    MAX_PAYLOAD_HASH_BYTES,
    MAX_PROBLEM_BYTES,
    MAX_QUERYABLE_TEXT_BYTES,
    MAX_REJECTED_ID_BYTES,
    MAX_REJECTED_PAYLOAD_BYTES,
    MAX_REJECTED_PROBLEMS,
    Claim,
    ClaimStatus,
    Clock,
    IdempotencyRecord,
    JsonObject,
    RecordState,
    RejectedEvent,
    Run,
    RunStatus,
    Step,
    StepStatus,
    canonical_json,
)
from shared.problems import shown

# Time -------------------------------------------------------------------------------------------------------


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """A plain ``datetime`` in UTC (Firestore hands back a nanosecond subclass)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: the ledger needs timezone-aware datetimes")
    v = value.astimezone(UTC)
    return datetime(v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond, tzinfo=UTC)


def clock_now(clock: Clock) -> datetime:
    return as_utc(clock())


# Storage ids ------------------------------------------------------------------------------------------------
# Both backends order ties by these ids (Firestore breaks ties by document name), so they live here.

#: A run id or step name used as its own document id: readable in the console, and never one of the ids
#: Firestore reserves (``.``, ``..``, ``__x__``) because it starts with a letter or digit.
_SAFE_DOC_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9_.\-]")


def digest(text: str) -> str:
    """sha256 hex of ``text``; total (lone surrogates are hashed as their UTF-8-like bytes)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def doc_id(name: str) -> str:
    """A Firestore document id for a run id or step name: total, at most 200 bytes, distinct names never
    share one (a safe name is itself; any other name gets a readable prefix, ``~`` (never in a safe name)
    and the whole sha256, so two names differing anywhere, even past the prefix, get different ids)."""
    if _SAFE_DOC_ID.fullmatch(name):
        return name
    return f"{_UNSAFE_CHARS.sub('_', name[:64])}~{digest(name)}"


# Argument checks --------------------------------------------------------------------------------------------


def utf8_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored as UTF-8 (a lone surrogate), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return (
            f"holds a lone surrogate {text[error.start]!r} at index {error.start}, which is not Unicode text"
        )
    return None


def check_name(what: str, value: object, max_bytes: int = MAX_NAME_BYTES) -> str:
    """``value`` if it can be a key, run id or step name; otherwise :class:`InvalidLedgerInput`."""
    if not isinstance(value, str):
        raise InvalidLedgerInput(what, [f"must be a string, got {type(value).__name__}"])
    if not value:
        raise InvalidLedgerInput(what, ["must not be empty"])
    unicode_problem = utf8_problem(value)
    if unicode_problem is not None:
        raise InvalidLedgerInput(what, [unicode_problem])
    size = len(value.encode("utf-8"))
    if size > max_bytes:
        raise InvalidLedgerInput(
            what, [f"is {size:,} bytes of UTF-8, over the ledger's limit of {max_bytes:,}"]
        )
    return value


def check_rejected_id(event_id: object) -> str:
    """A rejected event's id: any non-empty text (it is stored bounded, and keyed by its digest)."""
    if not isinstance(event_id, str) or not event_id:
        raise InvalidLedgerInput("rejected event id", ["must be a non-empty string"])
    return event_id


def check_positive(what: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{what} must be positive, got {value!r}")


def check_claim(key: str, given_hash: str, lease_seconds: float, ttl_seconds: float) -> None:
    check_name("idempotency key", key)
    check_name("payload hash", given_hash, MAX_PAYLOAD_HASH_BYTES)
    check_positive("lease_seconds", lease_seconds)
    check_positive("ttl_seconds", ttl_seconds)


def check_finish(status: RunStatus) -> None:
    if not status.terminal:
        raise ValueError(f"finish_run needs a terminal status, got {status.value}")


def json_copy(what: str, obj: object) -> JsonObject:
    """A deep copy of the JSON object ``obj`` as it will be stored; :class:`InvalidLedgerInput` if it is not
    one, cannot be JSON (NaN, a set, nested too deep), is not Unicode, or is over :data:`MAX_JSON_BYTES`."""
    if not isinstance(obj, Mapping):
        raise InvalidLedgerInput(what, [f"must be a JSON object, got {type(obj).__name__}"])
    try:
        text = canonical_json(obj)
    except (TypeError, ValueError, RecursionError) as error:
        raise InvalidLedgerInput(
            what, [f"is not storable as JSON: {type(error).__name__}: {error}"]
        ) from None
    unicode_problem = utf8_problem(text)
    if unicode_problem is not None:
        raise InvalidLedgerInput(what, [unicode_problem])
    size = len(text.encode("utf-8"))
    if size > MAX_JSON_BYTES:
        raise InvalidLedgerInput(
            what, [f"is {size:,} bytes as JSON, over the ledger's limit of {MAX_JSON_BYTES:,}"]
        )
    return load_object(text)


def load_object(text: str) -> JsonObject:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise TypeError("stored JSON is not an object")
    return value


def check_labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    """The labels as stored (keys and values as text); :class:`InvalidLedgerInput` lists every bad one."""
    stored = {str(key): str(value) for key, value in (labels or {}).items()}
    problems: list[str] = []
    if len(stored) > MAX_LABELS:
        problems.append(f"at most {MAX_LABELS} labels, got {len(stored)}")
    for index, (key, value) in enumerate(stored.items()):
        if len(problems) >= 10:
            break
        where = f"label #{index + 1}"
        if not key:
            problems.append(f"{where}: the key must not be empty")
        elif key.startswith("__") and key.endswith("__"):
            problems.append(f"{where}: the key must not look like __name__ (reserved by Firestore)")
        for part, text, limit in (("key", key, MAX_LABEL_KEY_BYTES), ("value", value, MAX_LABEL_VALUE_BYTES)):
            unicode_problem = utf8_problem(text)
            if unicode_problem is not None:
                problems.append(f"{where}: the {part} {unicode_problem}")
            elif len(text.encode("utf-8")) > limit:
                problems.append(f"{where}: the {part} is over {limit:,} bytes of UTF-8")
    if problems:
        raise InvalidLedgerInput("run labels", problems)
    return stored


# Idempotency records ----------------------------------------------------------------------------------------


def new_token() -> str:
    return secrets.token_hex(16)


def is_expired(record: IdempotencyRecord, now: datetime) -> bool:
    return now >= record.expires_at


@dataclass(frozen=True)
class Take:
    """Decision: write a new claim, as ``attempt``; ``created_at`` is kept from a record taken over."""

    attempt: int
    created_at: datetime | None = None


def decide_claim(record: IdempotencyRecord | None, key: str, given_hash: str, now: datetime) -> Claim | Take:
    """What a claim of ``key`` answers given the current record: an answer, or a :class:`Take` to write."""
    if record is None or is_expired(record, now):
        return Take(attempt=1)
    if record.payload_hash != given_hash:
        raise KeyReuseError(key, record.payload_hash, given_hash)
    if record.state is RecordState.COMPLETED:
        return Claim(ClaimStatus.COMPLETED, key, record.attempt, result=record.result)
    if record.state is RecordState.IN_PROGRESS and now < record.lease_expires_at:
        return Claim(ClaimStatus.IN_PROGRESS, key, record.attempt, lease_expires_at=record.lease_expires_at)
    return Take(attempt=record.attempt + 1, created_at=record.created_at)


def claim_record(
    key: str,
    given_hash: str,
    token: str,
    take: Take,
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


def claimed(record: IdempotencyRecord) -> Claim:
    return Claim(
        ClaimStatus.CLAIMED,
        record.key,
        record.attempt,
        token=record.token,
        lease_expires_at=record.lease_expires_at,
    )


def completed_record(
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


def released_record(
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


# Runs and steps ---------------------------------------------------------------------------------------------

_FINAL_STEP_STATUSES = frozenset({StepStatus.SUCCEEDED, StepStatus.SKIPPED})


def step_after(
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
    merged = {**current.detail, **(detail or {})}
    return replace(
        current,
        status=status,
        updated_at=now,
        finished_at=now if status.terminal else None,
        detail=json_copy("step detail (merged)", merged) if detail else merged,
    )


def finished_run(current: Run, status: RunStatus, now: datetime) -> Run | None:
    if current.status.terminal:
        return None
    return replace(current, status=status, updated_at=now, finished_at=now)


def step_sort_key(step: Step) -> tuple[datetime, str]:
    return (step.started_at, step.name)


# Rejected events --------------------------------------------------------------------------------------------

_CUT = "…"  # ends a stored text that was cut to its limit

_payload_repr = reprlib.Repr()
_payload_repr.maxlevel = 8
_payload_repr.maxstring = _payload_repr.maxother = 1_000
_payload_repr.maxlist = _payload_repr.maxtuple = _payload_repr.maxdict = _payload_repr.maxset = 200


def storable_text(text: str, max_bytes: int, mark_cut: bool = True) -> tuple[str, bool]:
    """``text`` as Firestore can store it: valid UTF-8 (a lone surrogate becomes the six characters
    ``\\ud800``), at most ``max_bytes``, cut on a character boundary (ending in ``…`` when ``mark_cut``).
    Returns the text and whether it was cut."""
    data = text.encode("utf-8", "backslashreplace")
    if len(data) <= max_bytes:
        return data.decode("utf-8"), False
    room = max_bytes - len(_CUT.encode("utf-8")) if mark_cut else max_bytes
    cut = data[:room].decode("utf-8", "ignore")  # "ignore" drops a character split by the cut
    return (cut + _CUT if mark_cut else cut), True


def _payload_text(payload: object) -> tuple[str, bool]:
    """The payload as text, and whether that text is a JSON object."""
    if isinstance(payload, str):
        return payload, False
    if isinstance(payload, Mapping):
        try:
            text = canonical_json(payload)
        except (TypeError, ValueError, RecursionError):
            pass  # not JSON (a set, NaN, nested too deep): kept as a bounded repr below
        else:
            if utf8_problem(text) is None:
                return text, True
            # Lone surrogates: JSON's \u escapes keep the exact value in ASCII text.
            return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True), True
    return _payload_repr.repr(payload), False


def _stored_problems(problems: Sequence[object]) -> tuple[str, ...]:
    count = len(problems)
    keep = count if count <= MAX_REJECTED_PROBLEMS else MAX_REJECTED_PROBLEMS - 1
    stored = [storable_text(str(problem), MAX_PROBLEM_BYTES)[0] for problem in problems[:keep]]
    if keep < count:
        stored.append(f"... and {count - keep:,} more problems, not stored")
    return tuple(stored)


def rejected_event(
    event_id: str, reason: str, problems: Sequence[str], source: str, payload: object, now: datetime
) -> tuple[RejectedEvent, str, bool]:
    """The event as stored (every field bounded and valid UTF-8), plus its payload text and whether that text
    is JSON. Never fails on what it is given: recording a rejected event is how a hostile one is acknowledged.
    """
    text, is_json = _payload_text(payload)
    text, truncated = storable_text(text, MAX_REJECTED_PAYLOAD_BYTES, mark_cut=False)
    is_json = is_json and not truncated
    event = RejectedEvent(
        event_id=storable_text(event_id, MAX_REJECTED_ID_BYTES)[0],
        reason=storable_text(str(reason), MAX_REJECTED_ID_BYTES)[0],
        problems=_stored_problems(problems),
        source=storable_text(str(source), MAX_REJECTED_ID_BYTES)[0],
        payload=load_object(text) if is_json else text,
        payload_truncated=truncated,
        recorded_at=now,
    )
    return event, text, is_json


# State documents --------------------------------------------------------------------------------------------

#: A collection name: a lowercase slug, so ``{prefix}{collection}`` is always a valid collection id.
_COLLECTION = re.compile(r"[a-z][a-z0-9_\-]*")
#: The ledger's own collections: a state document there would corrupt idempotency records or runs.
RESERVED_COLLECTIONS = frozenset({"idempotency", "runs", "rejected"})
#: A queryable field name: a plain identifier, so it is a valid Firestore field path without quoting
#: (``fields.NAME``), and never one of the ``__x__`` names Firestore reserves.
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
_INT64 = range(-(2**63), 2**63)

#: What an equality filter may compare with: text, an integer or a boolean.
QueryValue = str | int | bool
#: A queryable field's value (top-level, scalar): what both backends filter and order on.
FieldValue = str | int | float | bool | None


def check_collection(collection: object) -> str:
    """``collection`` if it can name a collection of state documents, else :class:`InvalidLedgerInput`."""
    if not isinstance(collection, str) or not _COLLECTION.fullmatch(collection):
        raise InvalidLedgerInput(
            "collection name",
            [f"{shown(collection)} must be a lowercase slug (a-z first, then a-z, 0-9, '_', '-')"],
        )
    if len(collection) > MAX_COLLECTION_BYTES:
        raise InvalidLedgerInput(
            "collection name", [f"is {len(collection)} characters, over {MAX_COLLECTION_BYTES}"]
        )
    if collection in RESERVED_COLLECTIONS:
        raise InvalidLedgerInput(
            "collection name", [f"{collection!r} is one of the ledger's own collections"]
        )
    return collection


def check_put_mode(create_only: bool, expect_version: str | None) -> None:
    """A caller bug, not data: a document cannot both not exist yet and be at a version."""
    if create_only and expect_version is not None:
        raise ValueError("put_doc takes create_only or expect_version, not both")


def checked_put(
    collection: str, doc_id: str, data: JsonObject, create_only: bool, expect_version: str | None
) -> JsonObject:
    """Every check ``put_doc`` makes before writing, for both backends; returns the data to store (a copy)."""
    check_collection(collection)
    check_name("document id", doc_id)
    stored = json_copy("document data", data)
    check_put_mode(create_only, expect_version)
    return stored


def queryable(value: object) -> bool:
    """Whether a top-level value is indexed for queries: a scalar Firestore can store and compare exactly."""
    if value is None or isinstance(value, bool | float):
        return True
    if isinstance(value, int):
        return value in _INT64
    if isinstance(value, str):
        return utf8_problem(value) is None and len(value.encode("utf-8")) <= MAX_QUERYABLE_TEXT_BYTES
    return False


def queryable_fields(data: JsonObject) -> dict[str, FieldValue]:
    """The top-level fields of ``data`` a query can filter or order on (plain-identifier names, scalar
    values); the rest is stored but not queryable. Both backends derive the same set from the same data."""
    return {
        name: value
        for name, value in data.items()
        if _FIELD_NAME.fullmatch(name)
        and not (name.startswith("__") and name.endswith("__"))
        and queryable(value)
    }


def _check_field_name(what: str, name: object) -> str:
    if not isinstance(name, str) or not _FIELD_NAME.fullmatch(name) or (name[:2] == name[-2:] == "__"):
        raise InvalidLedgerInput(
            what, [f"{shown(name)} must be a plain identifier of at most 100 characters, not __x__"]
        )
    return name


def check_doc_query(equals: Mapping[str, QueryValue] | None, order_by: str) -> dict[str, QueryValue]:
    """The equality filters of ``query_docs``, checked; :class:`InvalidLedgerInput` names the bad one."""
    filters: dict[str, QueryValue] = {}
    for name, value in (equals or {}).items():
        _check_field_name("query field", name)
        if not isinstance(value, str | int) or (isinstance(value, int) and not queryable(value)):
            raise InvalidLedgerInput(
                "query value", [f"for {name!r} must be text, a 64-bit integer or a boolean"]
            )
        if isinstance(value, str) and not queryable(value):
            raise InvalidLedgerInput(
                "query value",
                [f"for {name!r} is over {MAX_QUERYABLE_TEXT_BYTES:,} bytes of UTF-8 or not Unicode"],
            )
        filters[name] = value
    if order_by:
        _check_field_name("query order_by", order_by)
    return filters


def doc_matches(fields: Mapping[str, FieldValue], equals: Mapping[str, QueryValue]) -> bool:
    """Firestore's equality: a boolean equals only a boolean, a number any equal number, text equal text."""
    for name, wanted in equals.items():
        if name not in fields:
            return False
        value = fields[name]
        if value is None or isinstance(value, bool) != isinstance(wanted, bool) or value != wanted:
            return False
    return True


def doc_order_key(fields: Mapping[str, FieldValue], order_by: str, doc_id: str) -> tuple[object, ...]:
    """Firestore's ascending order on ``order_by`` (null < booleans < numbers < text, text by code point as
    UTF-8 bytes are), ties by document id; without ``order_by``, by document id alone."""
    if not order_by:
        return (doc_id,)
    value = fields[order_by]
    if value is None:
        return (0, 0, doc_id)
    if isinstance(value, bool):
        return (1, int(value), doc_id)
    if isinstance(value, int | float):
        return (2, value, doc_id)
    return (3, value, doc_id)
