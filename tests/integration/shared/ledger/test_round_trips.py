"""What the Firestore ledger asks of Firestore per operation, counted on the wire (a counting gRPC
interceptor, the one ``make bench`` uses): the common case is written without reading first, and the
uncommon one still reads and decides exactly as the contract says."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from google.cloud import firestore

from bench.counting import CountingInterceptor, Counts, counted_firestore
from shared.ledger import ClaimStatus, FirestoreLedger, LeaseLostError, RunNotFoundError, StepStatus
from tests.contract.ledger import FakeClock

pytestmark = pytest.mark.integration

PROJECT = "ledger-contract-test"


@pytest.fixture
def counted(firestore_client: firestore.Client) -> Iterator[tuple[FirestoreLedger, CountingInterceptor]]:
    del firestore_client  # the emulator, with FIRESTORE_EMULATOR_HOST applied
    client, counter = counted_firestore(PROJECT)
    ledger = FirestoreLedger(client, prefix=f"rt{uuid.uuid4().hex[:10]}_", clock=FakeClock(datetime.now(UTC)))
    ledger.list_runs(limit=1)  # the channel's first call, outside every count
    yield ledger, counter
    client.close()


def _count(counter: CountingInterceptor, call: Callable[[], Any]) -> tuple[Any, Counts]:
    before = counter.snapshot()
    result = call()
    return result, counter.snapshot().minus(before)


def test_a_fresh_claim_and_its_completion_are_one_write_each_and_no_read(
    counted: tuple[FirestoreLedger, CountingInterceptor],
) -> None:
    ledger, counter = counted

    claim, claiming = _count(counter, lambda: ledger.claim("k-1", "h", 60, 600))
    _, completing = _count(counter, lambda: ledger.complete("k-1", str(claim.token), {"ok": True}))

    assert claim.status is ClaimStatus.CLAIMED
    assert (claiming.reads, claiming.writes, claiming.round_trips) == (0, 1, 1)
    assert (completing.reads, completing.writes, completing.round_trips) == (0, 1, 1)
    again, duplicate = _count(counter, lambda: ledger.claim("k-1", "h", 60, 600))
    assert again.status is ClaimStatus.COMPLETED and again.result == {"ok": True}
    # A key seen before: the create is refused (one write attempted), then the record is read.
    assert (duplicate.reads, duplicate.writes, duplicate.round_trips) == (1, 1, 2)


def test_a_completion_after_a_take_over_reads_and_is_refused(
    counted: tuple[FirestoreLedger, CountingInterceptor],
) -> None:
    ledger, _counter = counted
    clock = FakeClock(datetime.now(UTC))
    client, _ = counted_firestore(PROJECT)
    first = FirestoreLedger(client, prefix=ledger.prefix, clock=clock)
    claim = first.claim("k-2", "h", 1, 600)
    clock.advance(seconds=5)  # the lease lapses; another delivery takes the key over
    taken = FirestoreLedger(client, prefix=ledger.prefix, clock=clock).claim("k-2", "h", 60, 600)
    assert taken.status is ClaimStatus.CLAIMED and taken.attempt == 2

    with pytest.raises(LeaseLostError):
        first.complete("k-2", str(claim.token), {"late": True})  # its remembered claim is stale
    record = first.get("k-2")
    assert record is not None and record.token == taken.token and record.result is None
    client.close()


def test_steps_of_a_known_run_are_one_write_and_an_unknown_run_is_still_refused(
    counted: tuple[FirestoreLedger, CountingInterceptor],
) -> None:
    ledger, counter = counted
    ledger.start_run("run-1", cause={"t": 1})

    _, first = _count(counter, lambda: ledger.record_step("run-1", "a", StepStatus.SUCCEEDED))
    _, second = _count(counter, lambda: ledger.record_step("run-1", "b", StepStatus.STARTED))
    _, again = _count(counter, lambda: ledger.record_step("run-1", "b", StepStatus.SUCCEEDED))

    assert (first.reads, first.writes) == (0, 1)
    assert (second.reads, second.writes) == (0, 1)
    # An existing step: the refused create, the read, the conditional update.
    assert (again.reads, again.writes, again.round_trips) == (1, 2, 3)
    run = ledger.get_run("run-1")
    assert run is not None and [(s.name, s.status) for s in run.steps] == [
        ("a", StepStatus.SUCCEEDED),
        ("b", StepStatus.SUCCEEDED),
    ]
    with pytest.raises(RunNotFoundError):
        ledger.record_step("no-such-run", "a", StepStatus.STARTED)
