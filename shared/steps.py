"""The idempotent-step runner: where at-least-once correctness lives, so no function writes it by hand.

A step is one side effect keyed by a domain key (``notify/EVENT/CHANNEL``, ``build/REPO/COMMIT/IMAGE``, ...).
:meth:`StepRunner.run` takes it through five stages::

    claim(key, payload hash) → effect → complete(result) → record the step on the run → publish next events

* **claim** — ``COMPLETED``: a duplicate; the stages after *complete* are redone from the stored result (they
  are idempotent), so a crash between *complete* and *publish* never loses the step or the next event.
  ``IN_PROGRESS``: another delivery holds a live lease → :attr:`Outcome.BUSY` (the caller asks for a retry).
  A different payload under the same key → :class:`~shared.ledger.KeyReuseError` (permanent).
* **effect** — runs with the invocation's :mod:`~shared.deadline`; the lease is taken longer than what is left
  of it, so it can only lapse under a process that hung past its deadline. The effect is told the claim's
  ``attempt``: above 1 a previous holder may have done the work before crashing, and an effect that can look
  its side effect up (a build by tag, a job by label) should do so before acting again. An effect that
  cannot (a webhook POST) is at-least-once in exactly that case.
* **complete** — a :class:`~shared.errors.PermanentError` from the effect is completed as ``failed`` (never
  retried) and recorded as a FAILED step; any other failure releases the claim → :attr:`Outcome.RETRY`.
  A lost lease (another delivery took over) → :attr:`Outcome.BUSY`: the other holder records the outcome.
* **record** — one step per key on the run, named exactly by the caller (never truncated); the run is created
  only when it does not exist yet, so events of one run do not all write its run document.
* **publish** — the next events, each with an event id derived from the step key, so a re-publication after a
  crash is the same event and its consumer's own claim turns it into a duplicate.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared import deadline as deadlines
from shared import log
from shared.config import PipelineConfig
from shared.errors import PermanentError, TransientError
from shared.events import new_envelope
from shared.ledger import ClaimStatus, LeaseLostError, Ledger, RunNotFoundError, StepStatus, payload_hash
from shared.publisher import Publisher

JsonObject = dict[str, Any]

#: How much longer than the invocation's remaining budget a lease lasts.
LEASE_MARGIN_SECONDS = 30.0
#: The longest one ledger call may take (less when the invocation has less left).
LEDGER_CALL_SECONDS = 10.0


class Outcome(enum.StrEnum):
    DONE = "done"  # the effect ran now and succeeded
    FAILED = "failed"  # the effect failed permanently; recorded, not retried
    DUPLICATE = "duplicate"  # done before (by this or another delivery); follow-ups redone idempotently
    BUSY = "busy"  # another delivery holds the step right now
    RETRY = "retry"  # transient failure; the claim was released for the next delivery


@dataclass(frozen=True)
class Emit:
    """A next event: published on the topic of ``kind`` (``spec.topics``) after the step completes."""

    kind: str
    data: Mapping[str, Any]
    type: str = ""  # the envelope type; defaults to ``kind``
    ordering_key: str = ""

    def to_json(self) -> JsonObject:
        return {
            "kind": self.kind,
            "type": self.type or self.kind,
            "data": dict(self.data),
            "ordering_key": self.ordering_key,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Emit:
        return cls(
            kind=str(raw["kind"]),
            data=dict(raw.get("data") or {}),
            type=str(raw.get("type") or ""),
            ordering_key=str(raw.get("ordering_key") or ""),
        )


@dataclass(frozen=True)
class Effect:
    """What an effect returns: the result to remember and the events to publish next."""

    result: Mapping[str, Any] = field(default_factory=dict)
    emits: Sequence[Emit] = ()
    #: The side effect was handled, but what it handled is a failure the run should show (a build that
    #: failed): the step is recorded FAILED on the run; it is completed and its events published all the same.
    failed: bool = False


@dataclass(frozen=True)
class StepContext:
    key: str
    attempt: int  # 1 for a fresh claim; above 1 a previous holder may have acted before it crashed
    deadline: deadlines.Deadline


@dataclass(frozen=True)
class Step:
    """One idempotent side effect."""

    key: str
    payload: Mapping[str, Any]  # what must be identical for two deliveries to be the same step
    effect: Callable[[StepContext], Effect]
    name: str = ""  # the step's name on the run; defaults to the key
    run_id: str = ""  # no run: nothing is recorded on a run
    causation_id: str = ""  # the event that caused this step (set on published events)
    cause: Mapping[str, Any] = field(default_factory=dict)  # the run's cause if this step creates it


@dataclass(frozen=True)
class StepResult:
    key: str
    outcome: Outcome
    result: Mapping[str, Any] = field(default_factory=dict)
    error: str = ""
    published: tuple[str, ...] = ()  # event ids published (or re-published) by this call

    @property
    def failed(self) -> bool:
        return self.outcome is Outcome.FAILED


def event_id_for(step_key: str, emit: Emit, index: int) -> str:
    """Deterministic, bounded, label-safe: the same step always publishes the same event ids."""
    digest = hashlib.sha256(f"{step_key}\n{index}\n{emit.type or emit.kind}".encode()).hexdigest()[:32]
    return f"{(emit.type or emit.kind)[:40]}-{digest}"


class StepRunner:
    """Runs :class:`Step` s against one ledger and publisher, inside the current invocation's deadline."""

    def __init__(
        self,
        ledger: Ledger,
        publisher: Publisher,
        config: PipelineConfig,
        deadline: deadlines.Deadline | None = None,
    ) -> None:
        self.ledger = ledger
        self.publisher = publisher
        self.config = config
        self._deadline = deadline

    @property
    def deadline(self) -> deadlines.Deadline:
        return self._deadline if self._deadline is not None else deadlines.current()

    def run(self, step: Step) -> StepResult:
        deadline = self.deadline
        deadline.check(f"claiming {step.key}")
        lease = max(self.config.lease_seconds, deadline.remaining() + LEASE_MARGIN_SECONDS)
        claim = self.ledger.claim(
            step.key,
            payload_hash(dict(step.payload)),
            lease,
            self.config.idempotency_ttl_seconds,
            timeout=deadline.timeout(LEDGER_CALL_SECONDS),
        )
        if claim.status is ClaimStatus.IN_PROGRESS:
            return StepResult(step.key, Outcome.BUSY, error="another delivery holds this step")
        if claim.status is ClaimStatus.COMPLETED:
            stored = dict(claim.result or {})
            published = self._follow_up(step, stored)
            return StepResult(
                step.key, Outcome.DUPLICATE, _public(stored), stored.get("error", ""), published
            )

        assert claim.token is not None
        context = StepContext(step.key, claim.attempt, deadline)
        try:
            effect = step.effect(context)
        except PermanentError as error:
            stored = {"status": "failed", "error": str(error), "problems": list(error.problems)[:20]}
        except Exception as error:
            self._release(step.key, claim.token)
            log.warning(
                "step failed, released for a retry",
                step=step.key,
                run_id=step.run_id,
                error=f"{type(error).__name__}: {error}",
            )
            return StepResult(step.key, Outcome.RETRY, error=f"{type(error).__name__}: {error}")
        else:
            stored = {
                "status": "succeeded",
                "result": dict(effect.result),
                "emits": [emit.to_json() for emit in effect.emits],
            }
            if effect.failed:
                stored["recorded"] = "failed"
        try:
            self.ledger.complete(step.key, claim.token, stored, timeout=deadline.timeout(LEDGER_CALL_SECONDS))
        except LeaseLostError as error:
            # Our lease lapsed while the effect ran and another delivery took the step over: its outcome is
            # the one recorded. Ours is not published, so the run shows one outcome.
            return StepResult(step.key, Outcome.BUSY, error=str(error))
        published = self._follow_up(step, stored)
        outcome = Outcome.FAILED if stored["status"] == "failed" else Outcome.DONE
        return StepResult(step.key, outcome, _public(stored), stored.get("error", ""), published)

    def run_all(self, steps: Iterable[Step]) -> list[StepResult]:
        """Run independent steps in order; a step that must retry does not stop the others."""
        return [self.run(step) for step in steps]

    def _release(self, key: str, token: str) -> None:
        try:
            self.ledger.release(key, token, timeout=self.deadline.timeout(LEDGER_CALL_SECONDS))
        except Exception as error:  # the lease lapses by itself; the retry happens later, not never
            log.warning("could not release a claim", step=key, error=f"{type(error).__name__}: {error}")

    def _follow_up(self, step: Step, stored: Mapping[str, Any]) -> tuple[str, ...]:
        """Record the step on the run and publish its events: idempotent, so redone on every duplicate."""
        failed = stored.get("status") == "failed"
        if step.run_id:
            self.deadline.check(f"recording step {step.name or step.key}")
            detail: JsonObject = {"key": step.key, "result": stored.get("result", {})}
            if failed:
                detail["error"] = stored.get("error", "")
            status = (
                StepStatus.FAILED if failed or stored.get("recorded") == "failed" else StepStatus.SUCCEEDED
            )
            name = step.name or step.key
            timeout = self.deadline.timeout(LEDGER_CALL_SECONDS)
            try:
                self.ledger.record_step(step.run_id, name, status, detail, timeout=timeout)
            except RunNotFoundError:
                cause = dict(step.cause) or {"step": name}
                self.ledger.start_run(
                    step.run_id, cause=cause, timeout=self.deadline.timeout(LEDGER_CALL_SECONDS)
                )
                self.ledger.record_step(
                    step.run_id, name, status, detail, timeout=self.deadline.timeout(LEDGER_CALL_SECONDS)
                )
        published: list[str] = []
        for index, raw in enumerate(stored.get("emits") or []):
            emit = Emit.from_json(raw)
            event_id = event_id_for(step.key, emit, index)
            self.deadline.check(f"publishing {emit.kind} for {step.key}")
            envelope = new_envelope(
                emit.type or emit.kind,
                step.run_id,
                dict(emit.data),
                event_id=event_id,
                causation_id=step.causation_id,
            )
            self.publisher.publish(self.config.topic_for(emit.kind), envelope, emit.ordering_key)
            published.append(event_id)
        return tuple(published)


def _public(stored: Mapping[str, Any]) -> JsonObject:
    result = stored.get("result")
    return dict(result) if isinstance(result, Mapping) else {}


def raise_for_retries(results: Sequence[StepResult], what: str) -> None:
    """Ask for a redelivery (TransientError) when any step must retry or is held by another delivery."""
    pending = [result for result in results if result.outcome in (Outcome.RETRY, Outcome.BUSY)]
    if pending:
        raise TransientError(
            f"{what} not finished yet: " + ", ".join(f"{result.key} ({result.error})" for result in pending)
        )
