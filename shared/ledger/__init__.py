"""The ledger: idempotency records, run records, rejected events and state documents, in Firestore or in
memory.

The contract is :class:`Ledger` (:mod:`shared.ledger.protocol`, written down once); the values are in
:mod:`~shared.ledger.model`, the errors in :mod:`~shared.ledger.errors`, the decisions both backends share in
:mod:`~shared.ledger.rules`, and the backends in :mod:`~shared.ledger.memory` and
:mod:`~shared.ledger.firestore`. Importing this package does not import the Firestore client: only its
exception classes (which :mod:`shared.errors` imports anyway); the client is built by the caller.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.ledger.errors import (
    DocConflictError,
    InvalidLedgerInput,
    KeyReuseError,
    LeaseLostError,
    LedgerContentionError,
    LedgerError,
    LedgerTimeoutError,
    RunNotFoundError,
)
from shared.ledger.firestore import DEFAULT_TIMEOUT_SECONDS, FirestoreLedger
from shared.ledger.memory import InMemoryLedger
from shared.ledger.model import (
    MAX_COLLECTION_BYTES,
    MAX_JSON_BYTES,
    MAX_LABEL_KEY_BYTES,
    MAX_LABEL_VALUE_BYTES,
    MAX_LABELS,
    MAX_NAME_BYTES,
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
    StoredDoc,
    canonical_json,
    payload_hash,
)
from shared.ledger.protocol import Ledger

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "MAX_COLLECTION_BYTES",
    "MAX_JSON_BYTES",
    "MAX_LABELS",
    "MAX_LABEL_KEY_BYTES",
    "MAX_LABEL_VALUE_BYTES",
    "MAX_NAME_BYTES",
    "MAX_PROBLEM_BYTES",
    "MAX_QUERYABLE_TEXT_BYTES",
    "MAX_REJECTED_ID_BYTES",
    "MAX_REJECTED_PAYLOAD_BYTES",
    "MAX_REJECTED_PROBLEMS",
    "Claim",
    "ClaimStatus",
    "Clock",
    "DocConflictError",
    "FirestoreLedger",
    "IdempotencyRecord",
    "InMemoryLedger",
    "InvalidLedgerInput",
    "JsonObject",
    "KeyReuseError",
    "LeaseLostError",
    "Ledger",
    "LedgerContentionError",
    "LedgerError",
    "LedgerTimeoutError",
    "RecordState",
    "RejectedEvent",
    "Run",
    "RunNotFoundError",
    "RunStatus",
    "Step",
    "StepStatus",
    "StoredDoc",
    "canonical_json",
    "payload_hash",
]

if TYPE_CHECKING:
    # mypy checks here that both backends match the contract's signatures exactly (timeouts included).
    def _conforms(memory: InMemoryLedger, store: FirestoreLedger) -> tuple[Ledger, Ledger]:
        return memory, store
