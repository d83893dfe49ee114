"""The data stage's pure pieces (batch records, budget splits, truncated queries, run ids) and
``close_due_batches`` over the in-memory ledger."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from shared.chain.data import (
    MEMBERS,
    BatchRecord,
    close_due_batches,
    determined,
    member_document,
    quarantine_run_id,
    split_by_budget,
    timestamp_text,
)
from shared.config import parse_config
from shared.errors import PermanentError
from shared.events import StorageObject, storage_object
from shared.ingest.runs import is_run_id
from shared.ledger import InMemoryLedger
from shared.notify import RecordingTransport
from shared.publisher import InMemoryPublisher
from shared.runtime import Runtime, use
from shared.training.batching import Batch, BatchPolicy, Member, member_id, plan

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[4]
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
BUCKET = "demo-data"


def member(index: int, seconds: float = 0.0, name: str = "") -> Member:
    return Member(
        "churn", BUCKET, name or f"churn/p-{index:04d}.csv", 1000 + index, T0 + timedelta(seconds=seconds)
    )


def test_timestamp_text_is_fixed_width_so_text_order_is_time_order() -> None:
    moments = [T0, T0 + timedelta(microseconds=5), T0 + timedelta(seconds=1), T0 + timedelta(hours=30)]
    texts = [timestamp_text(moment) for moment in moments]
    assert texts[0] == "2026-11-22T10:00:00.000000Z"
    assert len(set(map(len, texts))) == 1 and texts == sorted(texts)
    assert [datetime.fromisoformat(text) for text in texts] == moments
    other_zone = T0.astimezone(ZoneInfo("Asia/Tokyo"))
    assert timestamp_text(other_zone) == texts[0]


def test_a_batch_record_round_trips_and_lists_its_objects_in_order() -> None:
    batch = Batch("churn", (member(0), member(1, 1.5)), T0 + timedelta(seconds=6.5), "quiet")
    record = BatchRecord.of(batch)
    assert record.batch_id == batch.batch_id and record.keys == batch.keys and record.uris == batch.uris
    assert BatchRecord.parse(json.loads(json.dumps(record.to_json()))) == record
    assert record.run_id.startswith("data-churn-") and is_run_id(record.run_id)
    with pytest.raises(PermanentError, match="malformed"):
        BatchRecord.parse({"dataset": "churn", "batch_id": "b", "bucket": BUCKET, "objects": [["x"]]})


def test_a_batch_over_the_byte_budget_is_split_deterministically_in_order() -> None:
    members = tuple(member(index, index * 0.1, name=f"churn/{'x' * 100}-{index}.csv") for index in range(40))
    batch = Batch("churn", members, T0 + timedelta(seconds=9), "quiet")
    assert split_by_budget(batch) == [batch]  # the usual case: one batch, unchanged
    parts = split_by_budget(batch, budget=1000)
    assert [m for part in parts for m in part.members] == list(members)
    cost = len(members[0].uri) + 64  # every URI here has the same length
    per_part = 1000 // cost
    assert [len(part.members) for part in parts[:-1]] == [per_part] * (len(parts) - 1)
    assert 0 < len(parts[-1].members) <= per_part and len(parts) == -(-40 // per_part)
    assert len({part.batch_id for part in parts}) == len(parts)
    assert split_by_budget(batch, budget=1000) == parts  # the same split on every tick
    assert split_by_budget(batch, budget=1)[0].members == members[:1]  # never an empty part


def test_a_truncated_query_trusts_only_batches_it_saw_whole() -> None:
    policy = BatchPolicy(quiet=timedelta(seconds=5), max_wait=timedelta(minutes=5), max_count=3)
    members = [member(0, 0), member(1, 1), member(2, 20), member(3, 21)]  # a gap: two batches
    due = plan(members, policy, T0 + timedelta(minutes=10)).due
    assert [len(batch.members) for batch in due] == [2, 2]
    # The query returned its limit: the batch holding the last member read may go on past it.
    assert [len(batch.members) for batch in determined(due, members, truncated=True)] == [2]
    assert determined(due, members, truncated=False) == list(due)
    full = [member(index, index) for index in range(4)]  # a full batch (max_count) is complete anyway
    full_due = plan(full, policy, T0 + timedelta(minutes=10)).due
    assert [b.reason for b in determined(full_due, full, truncated=True)] == ["max_count"]


def test_quarantine_run_ids_are_label_safe_and_one_per_object_version() -> None:
    def obj(generation: int) -> StorageObject:
        return storage_object(
            {"bucket": BUCKET, "name": "churn/Données brutes.csv", "generation": generation}
        )

    first, again, newer = (quarantine_run_id("churn", obj(g)) for g in (1, 1, 2))
    assert first == again != newer
    assert is_run_id(first) and first.startswith("data-churn-q-")


def make_runtime(max_count: int = 1000) -> Runtime:
    parsed = parse_config(
        {
            "apiVersion": "mlops.dev/v1",
            "kind": "Pipeline",
            "spec": {
                "project": "demo-project",
                "datasets": [
                    {
                        "name": "churn",
                        "bucket": BUCKET,
                        "prefix": "churn/",
                        "model": "churn",
                        "schema": "schemas/churn.yaml",
                        "batching": {"quiet": "5s", "maxWait": "10m", "maxCount": max_count},
                    }
                ],
                "models": [{"name": "churn", "trainer": {"image": "trainer:seed"}}],
            },
        },
        str(ROOT / "unit.yaml"),
        env={},
    )
    return Runtime(parsed, InMemoryLedger(), InMemoryPublisher(), RecordingTransport(), clock=lambda: T0)


@pytest.fixture
def runtime() -> Iterator[Runtime]:
    with use(make_runtime()) as made:
        yield made


def admit(runtime: Runtime, count: int, spacing: float = 0.01) -> list[str]:
    uris = []
    for index in range(count):
        item = member(index, index * spacing)
        document = member_document("churn", BUCKET, item.name, item.generation, item.seen_at)
        runtime.ledger.put_doc(
            MEMBERS, member_id(BUCKET, item.name, item.generation), document, create_only=True
        )
        uris.append(item.uri)
    return uris


def requests(runtime: Runtime) -> list[dict[str, Any]]:
    publisher = runtime.publisher
    assert isinstance(publisher, InMemoryPublisher)
    return [message.json() for message in publisher.messages if message.topic_id == "training-requests"]


def test_a_burst_of_a_thousand_objects_is_one_run_listing_them_all(runtime: Runtime) -> None:
    uris = admit(runtime, 1000)  # maxCount is 1000: the batch is full when its last object arrives
    assert close_due_batches(runtime, T0 + timedelta(seconds=9)) == []  # the last one is stamped 9.99 s
    [run_id] = close_due_batches(runtime, T0 + timedelta(seconds=10))
    [request] = requests(runtime)
    assert request["run_id"] == run_id
    assert request["data"]["data_uris"] == uris
    assert request["data"]["detail"]["reason"] == "max_count"
    assert runtime.ledger.query_docs(MEMBERS, equals={"batched": False}) == []


def test_more_pending_members_than_one_query_are_closed_round_by_round() -> None:
    with use(make_runtime(max_count=3)) as runtime:  # each query reads maxCount + 1 = 4 members
        uris = admit(runtime, 7)
        closed = close_due_batches(runtime, T0 + timedelta(seconds=30))
        found = requests(runtime)
    assert [len(event["data"]["data_uris"]) for event in found] == [3, 3, 1]
    assert [uri for event in found for uri in event["data"]["data_uris"]] == uris
    assert closed == [event["run_id"] for event in found]


# -- when an instance counts the pending members --------------------------------------------------------


def test_one_instance_counts_only_when_its_own_admissions_could_have_filled_the_batch() -> None:
    from shared.chain.data import _Fullness

    probe, counts, pending = _Fullness(), 0, 0
    for _ in range(50):  # one instance admits 50 members of a batch of 50, faster than the count interval
        pending += 1
        if probe.due():
            counts += 1
            probe.counted(pending, 50)
    assert counts == 2  # the first admission, and the fiftieth: the one that fills the batch
    assert pending == 50


def test_after_the_interval_an_instance_counts_again_for_what_other_instances_admitted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import shared.chain.data as data_chain

    now = [100.0]
    monkeypatch.setattr(data_chain.time, "monotonic", lambda: now[0])
    probe = data_chain._Fullness()
    assert probe.due()
    probe.counted(10, 50)  # 39 admissions of its own could not fill it
    assert not probe.due()
    now[0] += data_chain.COUNT_INTERVAL_SECONDS  # others may have filled it meanwhile
    assert probe.due()
    probe.counted(50, 50)
    assert probe.due()  # a full (or nearly full) batch: the next admission counts again
