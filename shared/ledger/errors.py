"""The ledger's errors, inside the project's one error model (:mod:`shared.errors`).

Each is a :class:`~shared.errors.PermanentError` (the same call can never succeed: record and acknowledge) or
a :class:`~shared.errors.TransientError` (a later attempt may succeed: redeliver), so callers decide by
``isinstance`` (:func:`shared.errors.is_permanent` / :func:`~shared.errors.is_transient`) and never by a
ledger-specific attribute.
"""

from __future__ import annotations

from shared.errors import (
    DeadlineExceeded,
    InvalidInput,
    PermanentError,
    PipelineError,
    RejectionReason,
    TransientError,
)
from shared.problems import shown


class LedgerError(PipelineError):
    """Base of the ledger's errors; catch the permanent / transient classes, not this, to decide a retry."""


class InvalidLedgerInput(LedgerError, InvalidInput):
    """An idempotency key, run id, step name, label or stored object the ledger cannot take (empty, over a
    limit, not valid Unicode, not JSON): the same call can never succeed. ``problems`` names each."""


class KeyReuseError(LedgerError, PermanentError):
    """An idempotency key was claimed again with a different payload: the two events conflict for good."""

    reason = RejectionReason.KEY_REUSE

    def __init__(self, key: str, stored_hash: str, given_hash: str) -> None:
        self.key = key
        self.stored_hash = stored_hash
        self.given_hash = given_hash
        super().__init__(
            f"idempotency key {shown(key)} was already used with a different payload "
            f"(stored sha256 {stored_hash[:12]}..., this one {given_hash[:12]}...)"
        )


class LeaseLostError(LedgerError, TransientError):
    """``complete``/``release`` with a token that no longer holds the record (taken over, expired, unknown).

    The work may have been done twice; a redelivery sees the other holder's outcome.
    """

    def __init__(self, key: str, why: str) -> None:
        self.key = key
        self.why = why
        super().__init__(f"lease on idempotency key {shown(key)} lost: {why}")


class RunNotFoundError(LedgerError, TransientError, LookupError):
    """A step or outcome was recorded for a run id that was never started (its start may still be coming)."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"run {shown(run_id)} does not exist")


class LedgerContentionError(LedgerError, TransientError):
    """Too many concurrent writers kept winning the optimistic race; try again later."""


class LedgerTimeoutError(LedgerError, DeadlineExceeded):
    """The call did not finish within its timeout: the store is down, unreachable or too slow (the message
    names the last failure), or no time was left to start."""


class DocConflictError(LedgerError, TransientError):
    """``put_doc`` lost a race: ``create_only`` and the document exists, or ``expect_version`` is no longer
    the stored version (or the document is gone). Nothing was written; re-read it and decide again."""

    def __init__(self, collection: str, doc_id: str, why: str) -> None:
        self.collection = collection
        self.doc_id = doc_id
        self.why = why
        super().__init__(f"document {shown(doc_id)} in {collection!r} changed meanwhile: {why}")
