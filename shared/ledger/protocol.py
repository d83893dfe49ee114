"""The ledger's contract: written down here and nowhere else.

Every backend (:class:`~shared.ledger.memory.InMemoryLedger`,
:class:`~shared.ledger.firestore.FirestoreLedger`) says only *how* it realises this;
``tests/contract/ledger.py`` checks it against each of them.

Every handler is delivered at least once, so every step first *claims* an idempotency record for its domain
key, does its side effect, then *completes* the record with a small result (or *releases* it on failure so a
retry can claim it at once). The ledger also keeps the history of each pipeline run and a record of every
event that was refused, so nothing is silently lost.

Idempotency records
===================
One per domain key (a GitHub delivery id, ``bucket/object#generation``, a Pub/Sub message id, ``run-id/step``
...). A key is any non-empty text (``/``, ``#``, ``..``, ``__x__``, NUL and non-ASCII included) of at most
:data:`~shared.ledger.model.MAX_NAME_BYTES` of UTF-8; it is stored and handed back exactly.

* ``payload_hash`` — of the payload the key was first claimed for; claiming the key with another hash is
  :class:`~shared.ledger.errors.KeyReuseError`.
* ``state`` — ``IN_PROGRESS`` (a holder has a lease), ``COMPLETED`` (done, ``result`` stored) or ``RELEASED``
  (the holder gave up; the next claim takes it at once).
* ``token`` — the random lease token of the current (or last) holder; ``complete`` and ``release`` must
  present it.
* ``attempt`` — 1 for the first claim, +1 for each take-over of a released or lapsed lease.
* ``lease_expires_at`` — until then an ``IN_PROGRESS`` record belongs to its holder; afterwards anyone may
  take it over (with a new token).
* ``expires_at`` — after this instant the record is treated as absent (a fresh claim starts again at attempt
  1 and the payload hash is not compared). ``now + max(ttl, lease)`` on claim, ``now + ttl`` on completion.
  A store may delete expired records (a Firestore TTL policy on ``expires_at``); the ledger never relies on
  that.
* ``result`` — a JSON object stored on completion and handed back to later claims; keep it small (ids and
  names, not artefacts).
* ``created_at`` — when the key was first claimed (kept across take-overs of a live record).

Every lease and expiry decision uses the ledger's injected ``clock`` (timezone-aware), never a server's time,
so tests move time forward without sleeping and all backends decide identically. Datetimes come back in UTC.

Runs and steps
==============
A run (``run_id``: the same rules as a key) is ``{status: RUNNING|SUCCEEDED|FAILED|CANCELLED, cause, labels,
started_at, updated_at, finished_at, steps}``. ``start_run`` is idempotent (a second call returns the run
unchanged) and a terminal status is sticky.

A step is named exactly by its caller (the same rules as a key; never cut, so ``retrain-2026-11-01`` and
``retrain-2026-11-02`` are two steps): ``{name, status: STARTED|SUCCEEDED|FAILED|SKIPPED, started_at,
finished_at, updated_at, detail}``. ``started_at`` comes from the step's first record, ``finished_at`` from
the record that made it terminal; ``detail`` objects are merged (later keys win). Transitions:

* a record that does not change the status is a no-op (redelivery is harmless);
* ``STARTED`` never reopens a terminal step (out-of-order delivery);
* ``SUCCEEDED`` and ``SKIPPED`` are final; ``FAILED`` may be superseded by a later ``SUCCEEDED`` or
  ``SKIPPED`` (a retry's outcome).

Records of *different* steps of one run never contend: any number of them may be written concurrently and
all survive (recording a step does not write the run). Steps may still be recorded on a finished run (late
events are kept); they never change the run's status.

Rejected events
===============
``{event_id, reason, problems, source, payload, payload_truncated, recorded_at}``, idempotent on the whole
``event_id`` (the first record wins). Recording one never fails because of what it holds: it is how a
hostile event is acknowledged. So the event id, reason and source are stored cut to
:data:`~shared.ledger.model.MAX_REJECTED_ID_BYTES` (ending in ``…``), the problems to
:data:`~shared.ledger.model.MAX_REJECTED_PROBLEMS` of :data:`~shared.ledger.model.MAX_PROBLEM_BYTES`, the
payload's JSON text to :data:`~shared.ledger.model.MAX_REJECTED_PAYLOAD_BYTES` (then as text, with
``payload_truncated``); a payload that is not a JSON object (or not JSON at all) is kept as text, and a lone
surrogate in a text becomes the six characters ``\\ud800``.

State documents
===============
Small JSON documents the chain keeps between events (data members awaiting a batch, batch records, drift
windows, pointers such as the newest image built), addressed by ``collection`` and ``doc_id``:
``StoredDoc(collection, doc_id, data, version, updated_at)``.

* ``collection`` — a lowercase slug of at most :data:`~shared.ledger.model.MAX_COLLECTION_BYTES` (``a-z``
  first, then ``a-z0-9_-``), never one of the ledger's own (``idempotency``, ``runs``, ``rejected``); the
  backend applies its prefix. ``doc_id`` — any text, with the same rules as a key; stored exactly.
* ``data`` — a JSON object, with the same limits as ``result``; handed out as a copy.
* ``version`` — opaque text that changes on every write (Firestore: the document's ``update_time``).
  ``put_doc(expect_version=v)`` writes only if the stored version is still ``v``
  (compare-and-set); ``put_doc(create_only=True)`` only if the document does not exist. A write that
  loses either race raises :class:`~shared.ledger.errors.DocConflictError` (transient: re-read, decide
  again) and changes nothing; of concurrent compare-and-sets from one version exactly one wins. Without
  either, ``put_doc`` overwrites.
* ``updated_at`` — from the ledger's clock at the write.
* Queries — ``query_docs`` filters on equality of top-level fields and orders ascending by one top-level
  field. A top-level field is *queryable* when its name is a plain identifier (``[A-Za-z_][A-Za-z0-9_]*``,
  at most 100 characters, not ``__x__``) and its value is null, a boolean, a number (an integer within 64
  bits) or text of at most :data:`~shared.ledger.model.MAX_QUERYABLE_TEXT_BYTES`; other fields are stored
  but never match a filter. As in Firestore: a boolean equals only a boolean; ``order_by`` leaves out
  documents without that field and orders null < booleans < numbers < text; ties (and everything, without
  ``order_by``) go by document id. In production Firestore each equality + ``order_by`` shape needs a
  composite index (see :mod:`shared.ledger.firestore`).

Stored objects and limits
=========================
``result``, ``cause`` and ``detail`` must be JSON objects of at most
:data:`~shared.ledger.model.MAX_JSON_BYTES` as canonical JSON; they round-trip exactly (arrays of arrays
included). Labels are text, at most :data:`~shared.ledger.model.MAX_LABELS`, keys non-empty and not
``__like_this__``. The limits keep every record inside Firestore's 1 MiB document limit.

Errors
======
Every error is one of :mod:`shared.errors`' two kinds (see :mod:`shared.ledger.errors`):

* permanent — :class:`~shared.ledger.errors.InvalidLedgerInput` (an empty, oversized or non-Unicode key, run
  id or step name; a value that is not storable JSON or is over a limit) and
  :class:`~shared.ledger.errors.KeyReuseError`. The call changed nothing.
* transient — :class:`~shared.ledger.errors.LeaseLostError`, :class:`~shared.ledger.errors.RunNotFoundError`,
  :class:`~shared.ledger.errors.LedgerContentionError`, :class:`~shared.ledger.errors.DocConflictError`, and
  :class:`~shared.ledger.errors.LedgerUnavailableError` (the store did not answer in time;
  :class:`~shared.ledger.errors.LedgerTimeoutError` when the time budget ran out).

Only caller bugs raise plain :class:`ValueError` (a non-positive lease or TTL, ``finish_run`` to
``RUNNING``, a naive clock, ``put_doc`` with both ``create_only`` and ``expect_version``).

Timeouts
========
Every method takes ``timeout`` (seconds): the most it may take in all, retries included. ``None`` means the
backend's default, which is finite (:data:`~shared.ledger.firestore.DEFAULT_TIMEOUT_SECONDS` for Firestore).
When the time is up it raises :class:`~shared.ledger.errors.LedgerTimeoutError` rather than keep waiting:
an outage surfaces as a transient error within the timeout, never as a hang.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Protocol, runtime_checkable

from shared.ledger.model import (
    Claim,
    IdempotencyRecord,
    JsonObject,
    RejectedEvent,
    Run,
    RunStatus,
    Step,
    StepStatus,
    StoredDoc,
)


@runtime_checkable
class Ledger(Protocol):
    """Idempotency records, run records, rejected events and state documents, as the module docstring
    specifies."""

    def claim(
        self,
        key: str,
        payload_hash: str,
        lease_seconds: float,
        ttl_seconds: float,
        *,
        timeout: float | None = None,
    ) -> Claim:
        """Claim ``key`` for a payload (its ``payload_hash``) with a lease of ``lease_seconds``.

        ``CLAIMED`` (with a fresh token) when the key is absent, expired, released or its lease lapsed;
        ``COMPLETED`` (with the stored result) when it was completed; ``IN_PROGRESS`` while another holder's
        lease runs. Of concurrent claims of one key exactly one is ``CLAIMED``. A different payload hash on a
        live record raises :class:`~shared.ledger.errors.KeyReuseError`.
        """
        ...

    def complete(self, key: str, token: str, result: JsonObject, *, timeout: float | None = None) -> None:
        """Mark the record ``COMPLETED`` with ``result``; completing again with the same token is a no-op
        (the first result stays). :class:`~shared.ledger.errors.LeaseLostError` unless ``token`` holds the
        record (another holder took over, it was released, or it never existed); a lapsed lease that nobody
        took over may still be completed."""
        ...

    def release(self, key: str, token: str, *, timeout: float | None = None) -> None:
        """Give up the lease so the next claim takes the key at once; releasing twice is a no-op.
        :class:`~shared.ledger.errors.LeaseLostError` unless ``token`` holds it or after completion."""
        ...

    def get(self, key: str, *, timeout: float | None = None) -> IdempotencyRecord | None:
        """The live record for ``key``; None when absent or past its expiry."""
        ...

    def start_run(
        self,
        run_id: str,
        cause: JsonObject,
        labels: Mapping[str, str] | None = None,
        *,
        timeout: float | None = None,
    ) -> Run:
        """Create the run, ``RUNNING``, and return it; if it exists already, return it unchanged (so of
        concurrent starts one cause wins and all return it)."""
        ...

    def record_step(
        self,
        run_id: str,
        step: str,
        status: StepStatus,
        detail: JsonObject | None = None,
        *,
        timeout: float | None = None,
    ) -> Step:
        """Record a step's status by the transition rules; returns the step as stored.
        :class:`~shared.ledger.errors.RunNotFoundError` when the run was never started."""
        ...

    def get_run(
        self, run_id: str, *, steps: Collection[str] | None = None, timeout: float | None = None
    ) -> Run | None:
        """The run with its steps ordered by ``started_at`` (then name); None when unknown. ``steps``: read
        only the steps of these names (those recorded): one round trip and a read per name, where a whole
        run is two round trips and a read per step."""
        ...

    def list_runs(
        self, status: RunStatus | None = None, limit: int = 50, *, timeout: float | None = None
    ) -> list[Run]:
        """Up to ``limit`` runs with their steps, newest ``started_at`` first, optionally only those with
        ``status``; empty for ``limit <= 0``."""
        ...

    def finish_run(self, run_id: str, status: RunStatus, *, timeout: float | None = None) -> Run:
        """``RUNNING`` -> ``status`` (terminal; ``ValueError`` otherwise) and return the run; a terminal run
        is returned unchanged. :class:`~shared.ledger.errors.RunNotFoundError` for an unknown run."""
        ...

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
        """Record a refused event (``reason``: a :class:`~shared.errors.RejectionReason`), bounded as the
        module docstring says; True when newly recorded, False when ``event_id`` was already recorded.
        Refuses only an empty ``event_id``."""
        ...

    def list_rejected(self, limit: int = 100, *, timeout: float | None = None) -> list[RejectedEvent]:
        """Up to ``limit`` rejected events, most recently recorded first; empty for ``limit <= 0``."""
        ...

    def get_doc(self, collection: str, doc_id: str, *, timeout: float | None = None) -> StoredDoc | None:
        """The state document, or None when it does not exist."""
        ...

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
        """Write ``data`` as the whole document and return it as stored (with its new ``version``).
        :class:`~shared.ledger.errors.DocConflictError` when ``create_only`` and it exists, or when
        ``expect_version`` is given and the stored version differs (or the document is gone)."""
        ...

    def query_docs(
        self,
        collection: str,
        *,
        equals: Mapping[str, str | int | bool] | None = None,
        order_by: str = "",
        limit: int = 100,
        timeout: float | None = None,
    ) -> list[StoredDoc]:
        """Up to ``limit`` documents whose queryable fields equal ``equals``, ascending by ``order_by`` (a
        top-level field; documents without it are left out), then by document id; empty for ``limit <= 0``."""
        ...

    def count_docs(
        self,
        collection: str,
        *,
        equals: Mapping[str, str | int | bool] | None = None,
        limit: int = 1000,
        timeout: float | None = None,
    ) -> int:
        """How many documents' queryable fields equal ``equals``, counted up to ``limit`` (0 for
        ``limit <= 0``): not read (Firestore counts on the server), so the cost does not grow with them."""
        ...
