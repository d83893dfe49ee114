"""Coalescing data objects into training runs, and debouncing drift alerts: the pure window decisions.

Batching (new data objects)
===========================
A burst of objects in one dataset yields one training run that lists them all. A batch opens with its first
object and closes at the earliest of (all three configurable, as :class:`BatchPolicy`):

* ``quiet``     — no new object for this long: the upload session is over (Airflow's
  ``GCSUploadSessionCompleteSensor``: ``inactivity_period`` with no new object);
* ``max_wait``  — this long after the first object, however busy the bucket (Inngest ``batchEvents.timeout``,
  measured from the first event);
* ``max_count`` — this many objects (Inngest ``batchEvents.maxSize``); the batch is due at once and the next
  object opens a new batch.

Storage: no burst serialises on one document. Each validated object writes its *own* member document,
keyed by :func:`member_id` (``bucket/name#generation``), under its dataset, with ``seen_at`` = the write's
commit time (``SERVER_TIMESTAMP``) and ``state: pending``. Nothing else is written per object, so N objects
are N independent writes. A batch is not chosen when an object arrives (tumbling time buckets would split a
burst that straddles a boundary); it is *computed* when closing, by :func:`plan`, from the pending members:

1. the reconciler (and, for a speedy ``max_count`` close, ``on_data_object`` after its own write) takes
   ``now``, *then* queries the dataset's pending members, and calls ``plan(members, policy, now)``;
2. for each due batch, it creates the batch record ``batches/{batch_id}`` with ``create()`` (fails if it
   exists) holding the member keys, then marks those members ``batched`` and emits one training request
   with run id derived from ``batch_id``. The batch record is the truth: if ``create()`` finds the record
   already there (an overlapping tick), that record's members are the batch, and any member it does not
   list stays pending for the next batch;
3. members listed by a batch record but still ``pending`` (a crash between 2's writes) are passed as
   ``batched=`` and skipped by :func:`plan`; the run itself is re-driven from its record.

Why a batch never changes once due: ``batch_id`` is derived from the batch's first member, and members are
ordered by commit time. Any member ordered before another was committed before it, so a query that sees
the later one sees the earlier one too: every tick agrees on where the first pending batch starts, and a
batch is due only when ``now`` is past its close, so members committed later start a new batch. An object
delivered late (its event retried for minutes) simply joins or opens the batch current at its commit; it is
never lost and never in two runs.

Debounce (drift alerts)
=======================
At most one drift-caused retrain per model per ``window`` (:class:`DebouncePolicy`), on the leading edge:
the first alert starts a retrain at once and opens a window; alerts received before the window closes are
suppressed and recorded on that run (:func:`debounce`). One small document per model holds the current
window (``run_id``, ``opened_at``); it is written only when a window opens, with a precondition on the
version read (Firestore ``update_time``), so two alerts racing to open a window cannot both win: the loser
re-reads and is suppressed. Suppressed alerts are written to their own documents under the run. The
reconciler finds windows past :meth:`DriftWindow.closes_at` and closes them (final count on the run).

Everything here is pure: plain values in, decisions out; times are timezone-aware ``datetime``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

CloseReason = Literal["max_count", "max_wait", "quiet"]

#: GCP label values (run ids travel as labels): lowercase letters, digits, ``-`` and ``_``, at most 63.
_LABEL_UNSAFE = re.compile(r"[^a-z0-9_-]+")


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def _slug(text: str, length: int) -> str:
    return _LABEL_UNSAFE.sub("-", text.lower()).strip("-")[:length].rstrip("-") or "x"


def _aware(moment: datetime, what: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {moment!r}")
    return moment


# ---------------------------------------------------------------------------------------------- batching


@dataclass(frozen=True)
class BatchPolicy:
    """When a batch closes: ``quiet`` after its last object, ``max_wait`` after its first, or when full."""

    quiet: timedelta
    max_wait: timedelta
    max_count: int

    def __post_init__(self) -> None:
        if self.quiet <= timedelta(0):
            raise ValueError("quiet must be positive")
        if self.max_wait <= timedelta(0):
            raise ValueError("max_wait must be positive")
        if self.max_count < 1:
            raise ValueError("max_count must be at least 1")


def member_key(bucket: str, name: str, generation: int | str) -> str:
    """The identity of one object version: ``bucket/name#generation`` (a rewrite is a new member)."""
    return f"{bucket}/{name}#{generation}"


def member_id(bucket: str, name: str, generation: int | str) -> str:
    """A Firestore document id for the member: fixed length, no ``/``, whatever the object's name."""
    return _digest(member_key(bucket, name, generation), 40)


@dataclass(frozen=True)
class Member:
    """One validated data object waiting for a training run."""

    dataset: str
    bucket: str
    name: str
    generation: int
    seen_at: datetime  # the member record's commit time

    def __post_init__(self) -> None:
        _aware(self.seen_at, "seen_at")

    @property
    def key(self) -> str:
        return member_key(self.bucket, self.name, self.generation)

    @property
    def uri(self) -> str:
        return f"gs://{self.bucket}/{self.name}"


@dataclass(frozen=True)
class Batch:
    """Members that make one training run, in arrival order, and when and why the batch closes."""

    dataset: str
    members: tuple[Member, ...]
    closes_at: datetime
    reason: CloseReason

    @property
    def opened_at(self) -> datetime:
        return self.members[0].seen_at

    @property
    def batch_id(self) -> str:
        """Deterministic and label-safe: the dataset, the first member's time and a digest of its key."""
        first = self.members[0]
        stamp = first.seen_at.astimezone(UTC)
        return f"{_slug(self.dataset, 24)}-{stamp:%Y%m%d-%H%M%S}-{_digest(first.key, 10)}"

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(member.key for member in self.members)

    @property
    def uris(self) -> tuple[str, ...]:
        """What the training run lists: every object of the batch, in arrival order."""
        return tuple(member.uri for member in self.members)

    def is_due(self, now: datetime) -> bool:
        return _aware(now, "now") >= self.closes_at


@dataclass(frozen=True)
class Plan:
    """What to do now: the batches to emit, the batch still filling, and when to look again."""

    due: tuple[Batch, ...]
    filling: Batch | None

    @property
    def next_check_at(self) -> datetime | None:
        """When the filling batch closes if nothing else arrives (schedule a look then)."""
        return self.filling.closes_at if self.filling else None


def partition(members: Iterable[Member], policy: BatchPolicy) -> list[Batch]:
    """Split one dataset's pending members into consecutive batches, each with its closing time.

    Members are ordered by ``(seen_at, key)``, so the input order does not matter. A member joins the
    current batch unless the batch is full, the gap since its last member is ``quiet`` or more, or the batch
    opened ``max_wait`` or more before it: then it opens the next batch. The bounds are half-open, so a member
    exactly ``quiet`` after the last one starts a new batch, as Airflow's sensor declares the session over
    once the inactivity reaches the period.
    """
    ordered = sorted(members, key=lambda member: (member.seen_at, member.key))
    datasets = {member.dataset for member in ordered}
    if len(datasets) > 1:
        raise ValueError(f"members of one dataset at a time, got {', '.join(sorted(datasets))}")
    groups: list[list[Member]] = []
    for member in ordered:
        current = groups[-1] if groups else None
        if current is None or _starts_new_batch(current, member, policy):
            groups.append([member])
        else:
            current.append(member)
    return [_close(group, policy) for group in groups]


def _starts_new_batch(current: list[Member], member: Member, policy: BatchPolicy) -> bool:
    return (
        len(current) >= policy.max_count
        or member.seen_at - current[-1].seen_at >= policy.quiet
        or member.seen_at - current[0].seen_at >= policy.max_wait
    )


def _close(group: list[Member], policy: BatchPolicy) -> Batch:
    first, last = group[0], group[-1]
    if len(group) >= policy.max_count:
        return Batch(first.dataset, tuple(group), last.seen_at, "max_count")
    after_quiet = last.seen_at + policy.quiet
    at_max_wait = first.seen_at + policy.max_wait
    if at_max_wait < after_quiet:
        return Batch(first.dataset, tuple(group), at_max_wait, "max_wait")
    return Batch(first.dataset, tuple(group), after_quiet, "quiet")


def plan(
    members: Iterable[Member], policy: BatchPolicy, now: datetime, *, batched: Collection[str] = ()
) -> Plan:
    """The batches of one dataset that are due at ``now``, and the one still filling.

    ``members`` are the dataset's pending members as read *after* taking ``now``; ``batched`` are member
    keys some batch record already lists (skipped: a member is in one run only). Batches are due in order
    (each closes no later than the next one's first member arrives); only that due prefix is returned, so a
    member stamped ahead of ``now`` by clock skew can never make a later batch close before an earlier one.
    """
    _aware(now, "now")
    skipped = set(batched)
    batches = partition((member for member in members if member.key not in skipped), policy)
    due: list[Batch] = []
    for batch in batches:
        if not batch.is_due(now):
            return Plan(due=tuple(due), filling=batch)
        due.append(batch)
    return Plan(due=tuple(due), filling=None)


# ---------------------------------------------------------------------------------------------- debounce


@dataclass(frozen=True)
class DebouncePolicy:
    """At most one drift-caused retrain per model per ``window``."""

    window: timedelta

    def __post_init__(self) -> None:
        if self.window <= timedelta(0):
            raise ValueError("window must be positive")


@dataclass(frozen=True)
class DriftWindow:
    """A model's open debounce window: the retrain it started and when."""

    model: str
    run_id: str
    opened_at: datetime

    def __post_init__(self) -> None:
        _aware(self.opened_at, "opened_at")

    def closes_at(self, policy: DebouncePolicy) -> datetime:
        return self.opened_at + policy.window

    def is_open(self, now: datetime, policy: DebouncePolicy) -> bool:
        return _aware(now, "now") < self.closes_at(policy)


@dataclass(frozen=True)
class Debounce:
    """The decision for one alert: ``start`` a retrain (opening ``window``) or ``suppress`` it onto one."""

    action: Literal["start", "suppress"]
    window: DriftWindow

    @property
    def run_id(self) -> str:
        return self.window.run_id


def drift_run_id(model: str, alert_id: str) -> str:
    """The run a window opened by ``alert_id`` starts: the same alert redelivered names the same run."""
    return f"drift-{_slug(model, 30)}-{_digest(f'{model}|{alert_id}', 12)}"


def debounce(
    model: str, alert_id: str, received_at: datetime, current: DriftWindow | None, policy: DebouncePolicy
) -> Debounce:
    """Start a drift retrain for this alert, or suppress it onto the model's open window.

    An alert received before the current window closes is suppressed, including one whose delivery was
    delayed and that predates the window (the retrain already started covers it). Otherwise the alert opens
    a new window at ``received_at``, whose run id :func:`drift_run_id` derives from the alert.
    """
    _aware(received_at, "received_at")
    if current is not None and current.model != model:
        raise ValueError(f"the window is {current.model!r}'s, the alert is for {model!r}")
    if current is not None and received_at < current.closes_at(policy):
        return Debounce("suppress", current)
    return Debounce("start", DriftWindow(model, drift_run_id(model, alert_id), received_at))


def closed_windows(
    windows: Iterable[DriftWindow], now: datetime, policy: DebouncePolicy
) -> list[DriftWindow]:
    """The windows the reconciler should close at ``now`` (their suppression period is over)."""
    _aware(now, "now")
    return [window for window in windows if not window.is_open(now, policy)]
