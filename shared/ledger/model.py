"""The ledger's values: what a claim answers, the records it keeps, and the limits on what it stores.

Plain frozen dataclasses and enums, shared by every backend; the behaviour is written down once, in
:mod:`shared.ledger.protocol`.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

JsonObject = dict[str, Any]
#: Where a ledger reads "now": timezone-aware, injected so tests move time without sleeping.
Clock = Callable[[], datetime]

# Limits -----------------------------------------------------------------------------------------------------
# All sizes are UTF-8 bytes. Every document a backend writes must fit Firestore's 1 MiB, so each limit below
# is chosen with the others in mind: the largest possible idempotency record, run, step or rejected event
# stays under 600 KiB (the contract tests store the worst cases).

#: An idempotency key, a run id or a step name. Ids that arrive on events are bounded far lower
#: (``shared.events.limits.MAX_ID_BYTES``); this leaves room for keys built from several of them
#: (``gs://BUCKET/OBJECT#GENERATION``, ``notify/EVENT_ID/CHANNEL``). Longer ones are refused, never cut.
MAX_NAME_BYTES = 4_096
#: A payload hash as given to ``claim`` (a sha256 hex digest is 64 characters).
MAX_PAYLOAD_HASH_BYTES = 256
#: A ``result``, a run's ``cause`` or a step's ``detail`` (merged), as canonical JSON.
MAX_JSON_BYTES = 256 * 1024
#: Labels on a run: how many, and the size of each key and value.
MAX_LABELS = 64
MAX_LABEL_KEY_BYTES = 256
MAX_LABEL_VALUE_BYTES = 1_500
#: A rejected event is recorded whatever it holds: its event id, reason and source are stored cut to this
#: size (the record stays keyed by the whole event id) ...
MAX_REJECTED_ID_BYTES = 1_500
#: ... its payload (as JSON text) to this size, marked ``payload_truncated`` ...
MAX_REJECTED_PAYLOAD_BYTES = 256 * 1024
#: ... and at most this many problems of at most this size each.
MAX_REJECTED_PROBLEMS = 100
MAX_PROBLEM_BYTES = 1_000
#: A state document's collection name: a short slug (the ledger prefixes it, so it stays a valid
#: Firestore collection id), never one of the ledger's own collections.
MAX_COLLECTION_BYTES = 40
#: The longest text a state document query can match on: Firestore compares only the first 1,500 bytes of
#: an indexed string, so longer top-level texts are not queryable at all (in every backend alike).
MAX_QUERYABLE_TEXT_BYTES = 1_500


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
    """The answer to :meth:`~shared.ledger.Ledger.claim`.

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
    """A refused event as stored: ``event_id``, ``reason`` and ``source`` may be cut (see the limits)."""

    event_id: str
    reason: str
    problems: tuple[str, ...]
    source: str
    payload: JsonObject | str
    payload_truncated: bool
    recorded_at: datetime


@dataclass(frozen=True)
class StoredDoc:
    """A state document as stored: its ``data`` (a copy), and the ``version`` to hand back to ``put_doc`` as
    ``expect_version`` for a compare-and-set. ``updated_at`` comes from the ledger's clock."""

    collection: str
    doc_id: str
    data: JsonObject
    version: str
    updated_at: datetime


def canonical_json(obj: object) -> str:
    """Canonical JSON text: sorted keys, no whitespace, UTF-8 kept, NaN/Infinity refused."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def payload_hash(obj: object) -> str:
    """sha256 hex of ``obj``: of the bytes themselves for ``bytes`` (e.g. a raw webhook body), otherwise of
    its :func:`canonical_json` text (so key order does not matter).

    Strings with lone surrogates (JSON's ``"\\ud800"`` parses to one) hash too, as their UTF-8-like bytes.
    """
    if isinstance(obj, bytes | bytearray):
        return hashlib.sha256(bytes(obj)).hexdigest()
    return hashlib.sha256(canonical_json(obj).encode("utf-8", "surrogatepass")).hexdigest()
