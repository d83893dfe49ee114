"""The behaviour every :class:`shared.ledger.Ledger` must show, as :mod:`shared.ledger.protocol` specifies.

A concrete test module subclasses :class:`LedgerContract` and
:class:`tests.contract.ledger_input.LedgerInputContract` (hostile input, limits, timeouts) in one class whose
name starts with ``Test``, and overrides the ``ledger`` fixture, building the implementation with the
``clock`` fixture so that tests move time forward without sleeping. ``tests/unit/shared/ledger`` runs it
against the in-memory ledger, ``tests/integration/shared/ledger`` against Firestore on its emulator.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest

from shared.errors import RejectionReason, is_permanent
from shared.ledger import (
    MAX_NAME_BYTES,
    MAX_REJECTED_PAYLOAD_BYTES,
    ClaimStatus,
    InvalidLedgerInput,
    KeyReuseError,
    LeaseLostError,
    Ledger,
    RecordState,
    RunNotFoundError,
    RunStatus,
    StepStatus,
    payload_hash,
)

T = TypeVar("T")

LEASE = 30.0
TTL = 3600.0
H1 = payload_hash({"payload": 1})
H2 = payload_hash({"payload": 2})


class FakeClock:
    """A clock that only moves when told to; safe to read from many threads."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now


def run_concurrently(count: int, action: Callable[[int], T]) -> list[T]:
    """Run ``action(i)`` for ``i`` in ``range(count)`` on ``count`` threads released at the same moment."""
    barrier = threading.Barrier(count)

    def call(index: int) -> T:
        barrier.wait(timeout=30)
        return action(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(call, range(count)))


class LedgerContract:
    """The contract; subclasses provide ``ledger``."""

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock(datetime(2030, 1, 2, 3, 4, 5, 123456, tzinfo=UTC))

    @pytest.fixture
    def ledger(self, clock: FakeClock) -> Ledger:
        raise NotImplementedError("a concrete contract test overrides the `ledger` fixture")

    # Idempotency: claim ---------------------------------------------------------------------------------

    def test_fresh_key_is_claimed_with_a_lease(self, ledger: Ledger, clock: FakeClock) -> None:
        claim = ledger.claim("delivery-1", H1, LEASE, TTL)

        assert claim.status is ClaimStatus.CLAIMED
        assert claim.claimed
        assert claim.key == "delivery-1"
        assert claim.token
        assert claim.attempt == 1
        assert claim.lease_expires_at == clock() + timedelta(seconds=LEASE)
        record = ledger.get("delivery-1")
        assert record is not None
        assert record.state is RecordState.IN_PROGRESS
        assert record.payload_hash == H1
        assert record.token == claim.token
        assert record.result is None

    def test_second_claim_while_leased_is_in_progress(self, ledger: Ledger, clock: FakeClock) -> None:
        first = ledger.claim("delivery-1", H1, LEASE, TTL)
        clock.advance(LEASE - 1)

        second = ledger.claim("delivery-1", H1, LEASE, TTL)

        assert second.status is ClaimStatus.IN_PROGRESS
        assert second.token is None
        assert second.result is None
        assert second.lease_expires_at == first.lease_expires_at
        assert second.retry_after(clock()) == pytest.approx(1.0)
        record = ledger.get("delivery-1")
        assert record is not None and record.token == first.token

    def test_claim_with_a_different_payload_hash_is_key_reuse(self, ledger: Ledger) -> None:
        ledger.claim("gs://bucket/model.pkl#17", H1, LEASE, TTL)

        with pytest.raises(KeyReuseError) as raised:
            ledger.claim("gs://bucket/model.pkl#17", H2, LEASE, TTL)

        assert "gs://bucket/model.pkl#17" in str(raised.value)
        assert raised.value.key == "gs://bucket/model.pkl#17"
        assert is_permanent(raised.value) and raised.value.reason is RejectionReason.KEY_REUSE

    def test_key_reuse_is_refused_after_completion_too(self, ledger: Ledger) -> None:
        claim = ledger.claim("k", H1, LEASE, TTL)
        assert claim.token is not None
        ledger.complete("k", claim.token, {"ok": True})

        with pytest.raises(KeyReuseError):
            ledger.claim("k", H2, LEASE, TTL)

    def test_complete_then_claim_returns_the_stored_result(self, ledger: Ledger, clock: FakeClock) -> None:
        claim = ledger.claim("k", H1, LEASE, TTL)
        assert claim.token is not None
        result = {"build_id": "b-1", "images": [["a", 1], ["b", 2]], "nested": {"x.y": None, "n": 1.5}}
        ledger.complete("k", claim.token, result)
        clock.advance(LEASE * 10)  # the lease no longer matters once completed

        again = ledger.claim("k", H1, LEASE, TTL)

        assert again.status is ClaimStatus.COMPLETED
        assert again.result == result
        assert again.token is None
        record = ledger.get("k")
        assert record is not None and record.state is RecordState.COMPLETED and record.result == result

    def test_returned_results_are_copies(self, ledger: Ledger) -> None:
        claim = ledger.claim("k", H1, LEASE, TTL)
        assert claim.token is not None
        result = {"items": [1, 2]}
        ledger.complete("k", claim.token, result)
        result["items"].append(3)

        first = ledger.claim("k", H1, LEASE, TTL)
        assert first.result == {"items": [1, 2]}
        first.result["items"].append(4)

        assert ledger.claim("k", H1, LEASE, TTL).result == {"items": [1, 2]}

    def test_complete_twice_by_the_holder_is_a_no_op(self, ledger: Ledger) -> None:
        claim = ledger.claim("k", H1, LEASE, TTL)
        assert claim.token is not None
        ledger.complete("k", claim.token, {"n": 1})

        ledger.complete("k", claim.token, {"n": 2})

        assert ledger.claim("k", H1, LEASE, TTL).result == {"n": 1}

    def test_release_then_claim_is_claimed_at_once_with_a_new_token(self, ledger: Ledger) -> None:
        first = ledger.claim("k", H1, LEASE, TTL)
        assert first.token is not None
        ledger.release("k", first.token)
        released = ledger.get("k")
        assert released is not None and released.state is RecordState.RELEASED

        second = ledger.claim("k", H1, LEASE, TTL)

        assert second.status is ClaimStatus.CLAIMED
        assert second.token is not None and second.token != first.token
        assert second.attempt == 2
        with pytest.raises(LeaseLostError):
            ledger.complete("k", first.token, {"stale": True})

    def test_release_twice_by_the_holder_is_a_no_op(self, ledger: Ledger) -> None:
        claim = ledger.claim("k", H1, LEASE, TTL)
        assert claim.token is not None
        ledger.release("k", claim.token)

        ledger.release("k", claim.token)

        record = ledger.get("k")
        assert record is not None and record.state is RecordState.RELEASED

    def test_release_after_complete_is_refused(self, ledger: Ledger) -> None:
        claim = ledger.claim("k", H1, LEASE, TTL)
        assert claim.token is not None
        ledger.complete("k", claim.token, {"done": 1})

        with pytest.raises(LeaseLostError, match="completed"):
            ledger.release("k", claim.token)

        assert ledger.claim("k", H1, LEASE, TTL).result == {"done": 1}

    def test_expired_lease_is_taken_over_with_a_new_token(self, ledger: Ledger, clock: FakeClock) -> None:
        first_at = clock()
        first = ledger.claim("k", H1, LEASE, TTL)
        assert first.token is not None
        clock.advance(LEASE)

        second = ledger.claim("k", H1, LEASE, TTL)
        record = ledger.get("k")

        assert second.status is ClaimStatus.CLAIMED
        assert second.token is not None and second.token != first.token
        assert second.attempt == 2
        assert second.lease_expires_at == clock() + timedelta(seconds=LEASE)
        assert record is not None and record.created_at == first_at and record.updated_at == clock()
        with pytest.raises(LeaseLostError):
            ledger.complete("k", first.token, {"from": "first"})
        with pytest.raises(LeaseLostError):
            ledger.release("k", first.token)
        ledger.complete("k", second.token, {"from": "second"})
        assert ledger.claim("k", H1, LEASE, TTL).result == {"from": "second"}

    def test_holder_may_complete_after_its_lease_lapsed_if_nobody_took_over(
        self, ledger: Ledger, clock: FakeClock
    ) -> None:
        claim = ledger.claim("k", H1, LEASE, TTL)
        assert claim.token is not None
        clock.advance(LEASE * 2)

        ledger.complete("k", claim.token, {"late": True})

        assert ledger.claim("k", H1, LEASE, TTL).result == {"late": True}

    def test_complete_with_a_stale_or_unknown_token_is_refused(self, ledger: Ledger) -> None:
        claim = ledger.claim("k", H1, LEASE, TTL)
        assert claim.token is not None

        with pytest.raises(LeaseLostError) as raised:
            ledger.complete("k", "not-the-token", {"x": 1})
        with pytest.raises(LeaseLostError):
            ledger.release("k", "not-the-token")
        with pytest.raises(LeaseLostError):
            ledger.complete("never-claimed", "any", {"x": 1})

        assert "'k'" in str(raised.value)
        record = ledger.get("k")
        assert record is not None
        assert record.state is RecordState.IN_PROGRESS and record.token == claim.token

    def test_completed_record_past_its_ttl_is_treated_as_absent(
        self, ledger: Ledger, clock: FakeClock
    ) -> None:
        claim = ledger.claim("k", H1, LEASE, TTL)
        assert claim.token is not None
        clock.advance(10)
        ledger.complete("k", claim.token, {"n": 1})
        clock.advance(TTL - 1)
        assert ledger.claim("k", H1, LEASE, TTL).status is ClaimStatus.COMPLETED
        clock.advance(1)

        assert ledger.get("k") is None
        again = ledger.claim("k", H2, LEASE, TTL)  # not key reuse: the old record is gone

        assert again.status is ClaimStatus.CLAIMED
        assert again.attempt == 1
        assert again.token != claim.token
        with pytest.raises(LeaseLostError):
            ledger.complete("k", claim.token, {"n": 2})

    def test_unknown_key_reads_as_none(self, ledger: Ledger) -> None:
        assert ledger.get("nothing-here") is None

    @pytest.mark.parametrize(
        "key",
        [
            "bucket/path/to/model.pkl#1700000000000000",
            "a#b",
            "/",
            ".",
            "..",
            "__reserved__",
            "spaces and ünïcödé ✓",
            "nul\x00inside",
            "tab\tand\nnewline",
            "x" * 2000,
            "𝄞" * (MAX_NAME_BYTES // 4 - 1) + "abc",  # with the neighbour's "/": exactly at the limit
        ],
    )
    def test_keys_with_awkward_characters(self, ledger: Ledger, key: str) -> None:
        claim = ledger.claim(key, H1, LEASE, TTL)
        assert claim.status is ClaimStatus.CLAIMED and claim.token is not None
        neighbour = ledger.claim(key + "/", H1, LEASE, TTL)
        ledger.complete(key, claim.token, {"key": key})

        record = ledger.get(key)

        assert record is not None and record.key == key and record.result == {"key": key}
        assert neighbour.status is ClaimStatus.CLAIMED
        assert ledger.claim(key, H1, LEASE, TTL).result == {"key": key}

    def test_claim_arguments_are_validated(self, ledger: Ledger) -> None:
        with pytest.raises(InvalidLedgerInput):
            ledger.claim("", H1, LEASE, TTL)
        with pytest.raises(InvalidLedgerInput):
            ledger.claim("k", "", LEASE, TTL)
        with pytest.raises(ValueError):  # a caller's bug, not an input that arrived
            ledger.claim("k", H1, 0, TTL)
        with pytest.raises(ValueError):
            ledger.claim("k", H1, LEASE, -1)
        assert ledger.get("k") is None

    def test_concurrent_claims_of_a_fresh_key_have_exactly_one_winner(self, ledger: Ledger) -> None:
        claims = run_concurrently(8, lambda _: ledger.claim("contended", H1, LEASE, TTL))

        statuses = sorted(claim.status.value for claim in claims)
        assert statuses.count("CLAIMED") == 1
        assert statuses.count("IN_PROGRESS") == 7
        winner = next(claim for claim in claims if claim.claimed)
        record = ledger.get("contended")
        assert record is not None and record.token == winner.token

    def test_concurrent_take_over_of_a_lapsed_lease_has_exactly_one_winner(
        self, ledger: Ledger, clock: FakeClock
    ) -> None:
        first = ledger.claim("contended", H1, LEASE, TTL)
        clock.advance(LEASE + 1)

        claims = run_concurrently(8, lambda _: ledger.claim("contended", H1, LEASE, TTL))

        winners = [claim for claim in claims if claim.claimed]
        assert len(winners) == 1
        assert winners[0].token != first.token and winners[0].attempt == 2
        assert all(claim.status is ClaimStatus.IN_PROGRESS for claim in claims if not claim.claimed)

    # Runs -----------------------------------------------------------------------------------------------

    def test_start_run_creates_a_running_run(self, ledger: Ledger, clock: FakeClock) -> None:
        cause = {"kind": "storage", "object": "models/m.pkl", "generation": 3}

        run = ledger.start_run("run-1", cause, {"service": "scorer"})

        assert run.run_id == "run-1"
        assert run.status is RunStatus.RUNNING
        assert run.cause == cause
        assert run.labels == {"service": "scorer"}
        assert run.started_at == clock() and run.finished_at is None
        assert run.steps == ()
        assert ledger.get_run("run-1") == run

    def test_start_run_is_idempotent(self, ledger: Ledger, clock: FakeClock) -> None:
        first = ledger.start_run("run-1", {"n": 1}, {"a": "b"})
        clock.advance(5)

        second = ledger.start_run("run-1", {"n": 2}, None)

        assert second == first
        assert ledger.get_run("run-1") == first
        assert len(ledger.list_runs()) == 1

    def test_concurrent_start_run_creates_one_run(self, ledger: Ledger) -> None:
        runs = run_concurrently(8, lambda i: ledger.start_run("run-1", {"caller": i}))

        assert len({run.cause["caller"] for run in runs}) == 1
        assert len(ledger.list_runs()) == 1

    def test_unknown_run_reads_as_none(self, ledger: Ledger) -> None:
        assert ledger.get_run("nope") is None

    def test_step_keeps_its_start_and_gets_a_finish(self, ledger: Ledger, clock: FakeClock) -> None:
        ledger.start_run("run-1", {})
        started_at = clock.advance(1)
        started = ledger.record_step("run-1", "build", StepStatus.STARTED, {"build_id": "b-1"})
        finished_at = clock.advance(60)

        done = ledger.record_step("run-1", "build", StepStatus.SUCCEEDED, {"image": "img@sha256:1"})

        assert started.started_at == started_at and started.finished_at is None
        assert done.status is StepStatus.SUCCEEDED
        assert done.started_at == started_at
        assert done.finished_at == finished_at
        assert done.detail == {"build_id": "b-1", "image": "img@sha256:1"}
        run = ledger.get_run("run-1")
        assert run is not None and run.step("build") == done

    def test_recording_the_same_terminal_status_again_is_a_no_op(
        self, ledger: Ledger, clock: FakeClock
    ) -> None:
        ledger.start_run("run-1", {})
        ledger.record_step("run-1", "deploy", StepStatus.STARTED)
        clock.advance(10)
        done = ledger.record_step("run-1", "deploy", StepStatus.SUCCEEDED, {"revision": "r-1"})
        clock.advance(10)

        again = ledger.record_step("run-1", "deploy", StepStatus.SUCCEEDED, {"revision": "r-2"})

        assert again == done
        run = ledger.get_run("run-1")
        assert run is not None and run.step("deploy") == done

    def test_late_started_never_reopens_a_finished_step(self, ledger: Ledger, clock: FakeClock) -> None:
        ledger.start_run("run-1", {})
        done = ledger.record_step("run-1", "train", StepStatus.SUCCEEDED)
        clock.advance(5)

        late = ledger.record_step("run-1", "train", StepStatus.STARTED)

        assert late == done
        assert late.status is StepStatus.SUCCEEDED
        assert late.started_at == late.finished_at  # first recorded as already terminal

    def test_failed_step_may_be_superseded_by_a_retry_success_but_success_is_final(
        self, ledger: Ledger, clock: FakeClock
    ) -> None:
        ledger.start_run("run-1", {})
        first = ledger.record_step("run-1", "train", StepStatus.FAILED, {"error": "quota"})
        clock.advance(30)
        assert ledger.record_step("run-1", "train", StepStatus.STARTED) == first

        succeeded = ledger.record_step("run-1", "train", StepStatus.SUCCEEDED, {"error": None})
        late_failure = ledger.record_step("run-1", "train", StepStatus.FAILED, {"error": "late"})

        assert succeeded.status is StepStatus.SUCCEEDED
        assert succeeded.started_at == first.started_at and succeeded.finished_at == clock()
        assert succeeded.detail == {"error": None}
        assert late_failure == succeeded

    def test_steps_are_ordered_by_start_time(self, ledger: Ledger, clock: FakeClock) -> None:
        ledger.start_run("run-1", {})
        for name in ("validate", "build", "deploy", "analyse"):
            clock.advance(1)
            ledger.record_step("run-1", name, StepStatus.STARTED)
        clock.advance(1)
        ledger.record_step("run-1", "validate", StepStatus.SUCCEEDED)

        run = ledger.get_run("run-1")

        assert run is not None
        assert [step.name for step in run.steps] == ["validate", "build", "deploy", "analyse"]

    def test_step_names_and_run_ids_with_awkward_characters(self, ledger: Ledger) -> None:
        run_id = "github/push#abc123"
        ledger.start_run(run_id, {})
        names = ["a/b", "a_b", "..", "__x__", "canary 10%"]
        for name in names:
            ledger.record_step(run_id, name, StepStatus.SKIPPED, {"name": name})

        run = ledger.get_run(run_id)

        assert run is not None and run.run_id == run_id
        assert sorted(step.name for step in run.steps) == sorted(names)
        assert all(step.detail == {"name": step.name} for step in run.steps)

    def test_a_run_read_with_named_steps_holds_only_those_recorded(
        self, ledger: Ledger, clock: FakeClock
    ) -> None:
        ledger.start_run("run-1", {"why": "test"}, {"team": "ml"})
        for name in ("build", "canary 10%", "a/b", "deploy"):
            clock.advance(1)
            ledger.record_step("run-1", name, StepStatus.SUCCEEDED, {"name": name})
        whole = ledger.get_run("run-1")

        some = ledger.get_run("run-1", steps=["deploy", "a/b", "never recorded"])

        assert whole is not None and some is not None
        assert [step.name for step in some.steps] == ["a/b", "deploy"]  # in recorded order, like a whole run
        assert some.steps == tuple(step for step in whole.steps if step.name in ("a/b", "deploy"))
        assert (some.run_id, some.status, some.cause, some.labels) == (
            "run-1",
            whole.status,
            whole.cause,
            whole.labels,
        )
        empty = ledger.get_run("run-1", steps=[])
        assert empty is not None and empty.steps == ()
        assert ledger.get_run("nope", steps=["build"]) is None

    def test_concurrent_step_records_all_land(self, ledger: Ledger) -> None:
        ledger.start_run("run-1", {})

        def record(i: int) -> None:
            ledger.record_step("run-1", "shared-step", StepStatus.STARTED, {f"w{i}": i})
            ledger.record_step("run-1", f"step-{i}", StepStatus.STARTED)
            ledger.record_step("run-1", f"step-{i}", StepStatus.SUCCEEDED)

        run_concurrently(8, record)

        run = ledger.get_run("run-1")
        assert run is not None
        assert {step.name for step in run.steps} == {"shared-step", *(f"step-{i}" for i in range(8))}
        assert all(step.status is StepStatus.SUCCEEDED for step in run.steps if step.name != "shared-step")
        shared = run.step("shared-step")
        assert shared is not None and shared.status is StepStatus.STARTED and len(shared.detail) == 1

    def test_twenty_different_steps_recorded_at_once_on_one_run_all_survive(self, ledger: Ledger) -> None:
        ledger.start_run("run-1", {})

        recorded = run_concurrently(
            20, lambda i: ledger.record_step("run-1", f"notify-{i:02d}", StepStatus.SUCCEEDED, {"i": i})
        )

        run = ledger.get_run("run-1")
        assert run is not None and len(run.steps) == 20
        assert {step.name: step.detail for step in run.steps} == {
            f"notify-{i:02d}": {"i": i} for i in range(20)
        }
        assert {step.name for step in recorded} == {step.name for step in run.steps}

    def test_step_names_are_exact_never_cut(self, ledger: Ledger) -> None:
        ledger.start_run("run-1", {})
        long_safe = "n" * 300  # past the length kept readable in a document id
        long_unsafe = "event/" + "x" * 100  # past the readable prefix of a hashed document id
        names = [
            "nightly-retrain-2026-11-01",
            "nightly-retrain-2026-11-02",
            long_safe + "1",
            long_safe + "2",
            long_unsafe + "1",
            long_unsafe + "2",
            "é" * (MAX_NAME_BYTES // 2),  # exactly at the limit
        ]
        for name in names:
            ledger.record_step("run-1", name, StepStatus.SUCCEEDED, {"name": name})

        run = ledger.get_run("run-1")

        assert run is not None
        assert sorted(step.name for step in run.steps) == sorted(names)
        assert all(step.detail == {"name": step.name} for step in run.steps)

    @pytest.mark.parametrize(
        "run_id", ["/", ".", "..", "__x__", "a\x00b", "r" * 300, "é" * (MAX_NAME_BYTES // 2 - 1) + "a"]
    )
    def test_run_ids_with_awkward_characters_are_kept_exactly(self, ledger: Ledger, run_id: str) -> None:
        ledger.start_run(run_id, {"id": run_id})
        ledger.record_step(run_id, "build", StepStatus.STARTED)
        ledger.start_run(run_id + "/", {"id": run_id + "/"})  # a neighbour that must stay apart

        run = ledger.get_run(run_id)
        finished = ledger.finish_run(run_id, RunStatus.SUCCEEDED)

        assert run is not None and run.run_id == run_id and run.cause == {"id": run_id}
        assert [step.name for step in run.steps] == ["build"]
        assert finished.run_id == run_id and [step.name for step in finished.steps] == ["build"]
        assert {r.run_id for r in ledger.list_runs()} == {run_id, run_id + "/"}

    def test_record_step_on_an_unknown_run_is_refused(self, ledger: Ledger) -> None:
        with pytest.raises(RunNotFoundError):
            ledger.record_step("nope", "build", StepStatus.STARTED)
        assert ledger.get_run("nope") is None

    def test_finish_run_is_sticky(self, ledger: Ledger, clock: FakeClock) -> None:
        ledger.start_run("run-1", {})
        ledger.record_step("run-1", "deploy", StepStatus.SUCCEEDED)
        finished_at = clock.advance(100)

        done = ledger.finish_run("run-1", RunStatus.SUCCEEDED)
        clock.advance(100)
        again = ledger.finish_run("run-1", RunStatus.FAILED)

        assert done.status is RunStatus.SUCCEEDED and done.finished_at == finished_at
        assert again == done
        assert ledger.get_run("run-1") == done
        assert [step.name for step in done.steps] == ["deploy"]

    def test_steps_recorded_after_the_run_finished_are_kept_without_reopening_it(
        self, ledger: Ledger, clock: FakeClock
    ) -> None:
        ledger.start_run("run-1", {})
        ledger.finish_run("run-1", RunStatus.CANCELLED)
        clock.advance(1)

        late = ledger.record_step("run-1", "notify", StepStatus.SUCCEEDED)

        run = ledger.get_run("run-1")
        assert run is not None and run.status is RunStatus.CANCELLED
        assert run.steps == (late,)

    def test_finish_run_needs_a_terminal_status_and_a_known_run(self, ledger: Ledger) -> None:
        ledger.start_run("run-1", {})
        with pytest.raises(ValueError):
            ledger.finish_run("run-1", RunStatus.RUNNING)
        with pytest.raises(RunNotFoundError):
            ledger.finish_run("nope", RunStatus.CANCELLED)
        run = ledger.get_run("run-1")
        assert run is not None and run.status is RunStatus.RUNNING

    def test_list_runs_newest_first_filtered_and_limited(self, ledger: Ledger, clock: FakeClock) -> None:
        for i in range(5):
            clock.advance(1)
            ledger.start_run(f"run-{i}", {"i": i})
        ledger.finish_run("run-1", RunStatus.FAILED)
        ledger.finish_run("run-3", RunStatus.SUCCEEDED)

        assert [run.run_id for run in ledger.list_runs()] == ["run-4", "run-3", "run-2", "run-1", "run-0"]
        assert [run.run_id for run in ledger.list_runs(limit=2)] == ["run-4", "run-3"]
        assert [run.run_id for run in ledger.list_runs(RunStatus.RUNNING)] == ["run-4", "run-2", "run-0"]
        assert [run.run_id for run in ledger.list_runs(RunStatus.FAILED)] == ["run-1"]
        assert ledger.list_runs(RunStatus.CANCELLED) == []
        assert ledger.list_runs(limit=0) == []

    # Rejected events ------------------------------------------------------------------------------------

    def test_rejected_event_is_recorded_once(self, ledger: Ledger, clock: FakeClock) -> None:
        payload = {"ref": "refs/heads/main", "commits": [[1, 2]]}
        first = ledger.record_rejected("evt-1", "invalid", ["missing field 'after'"], "github", payload)
        recorded_at = clock()
        clock.advance(10)

        second = ledger.record_rejected("evt-1", "expired", ["other"], "github", "other payload")

        assert (first, second) == (True, False)
        [event] = ledger.list_rejected()
        assert event.event_id == "evt-1"
        assert event.reason == "invalid"
        assert event.problems == ("missing field 'after'",)
        assert event.source == "github"
        assert event.payload == payload
        assert event.payload_truncated is False
        assert event.recorded_at == recorded_at

    def test_rejected_events_are_listed_newest_first(self, ledger: Ledger, clock: FakeClock) -> None:
        for i, reason in enumerate(["invalid", "expired", "key_reuse"]):
            clock.advance(1)
            ledger.record_rejected(f"projects/p/topics/t#{i}", reason, [], "pubsub", f"raw {i}")

        events = ledger.list_rejected()

        assert [event.reason for event in events] == ["key_reuse", "expired", "invalid"]
        assert [event.payload for event in events] == ["raw 2", "raw 1", "raw 0"]
        assert [event.reason for event in ledger.list_rejected(limit=1)] == ["key_reuse"]

    def test_oversized_rejected_payload_is_kept_truncated(self, ledger: Ledger) -> None:
        payload = {"blob": "x" * (MAX_REJECTED_PAYLOAD_BYTES + 10)}

        assert ledger.record_rejected("big", "invalid", ["too large"], "storage", payload) is True

        [event] = ledger.list_rejected()
        assert event.payload_truncated is True
        assert isinstance(event.payload, str)
        assert len(event.payload) == MAX_REJECTED_PAYLOAD_BYTES
        assert event.payload.startswith('{"blob":"xxx')
