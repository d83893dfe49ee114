"""Batch windows (quiet period, maximum wait, maximum count) and the drift debounce: pure decisions."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta

import pytest

from shared.training.batching import (
    BatchPolicy,
    DebouncePolicy,
    DriftWindow,
    Member,
    closed_windows,
    debounce,
    drift_run_id,
    member_id,
    member_key,
    partition,
    plan,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 30, 10, 0, 0, tzinfo=UTC)
POLICY = BatchPolicy(quiet=timedelta(seconds=30), max_wait=timedelta(minutes=5), max_count=100)
LABEL = re.compile(r"^[a-z0-9_-]{1,63}$")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def member(seconds: float, name: str | None = None, dataset: str = "churn", generation: int = 1) -> Member:
    return Member(dataset, "demo-data", name or f"churn/part-{seconds:08.2f}.csv", generation, at(seconds))


def names(batch_members: tuple[Member, ...]) -> list[str]:
    return [item.name for item in batch_members]


# ---------------------------------------------------------------------------------------------- identity


def test_member_identity_is_bucket_name_and_generation() -> None:
    assert member_key("b", "churn/a.csv", 17) == "b/churn/a.csv#17"
    first = member_id("b", "churn/a.csv", 17)
    assert re.fullmatch(r"[0-9a-f]{40}", first)  # a valid Firestore document id, whatever the name
    assert member_id("b", "churn/a.csv", "17") == first
    assert member_id("b", "churn/a.csv", 18) != first  # a rewrite of the object is a new member
    assert member_id("b", "x/" * 600 + "a.csv", 1) != first


def test_policies_refuse_meaningless_bounds() -> None:
    with pytest.raises(ValueError, match="quiet"):
        BatchPolicy(quiet=timedelta(0), max_wait=timedelta(minutes=1), max_count=10)
    with pytest.raises(ValueError, match="max_wait"):
        BatchPolicy(quiet=timedelta(seconds=1), max_wait=timedelta(0), max_count=10)
    with pytest.raises(ValueError, match="max_count"):
        BatchPolicy(quiet=timedelta(seconds=1), max_wait=timedelta(minutes=1), max_count=0)
    with pytest.raises(ValueError, match="window"):
        DebouncePolicy(window=timedelta(0))
    with pytest.raises(ValueError, match="timezone-aware"):
        Member("churn", "b", "n", 1, datetime(2026, 11, 30, 10, 0))  # naive: refused
    with pytest.raises(ValueError, match="timezone-aware"):
        plan([], POLICY, datetime(2026, 11, 30, 10, 0))  # naive: refused


# --------------------------------------------------------------------------------------------- quiet period


def test_a_burst_is_one_batch_due_a_quiet_period_after_its_last_object() -> None:
    burst = [member(0), member(5), member(12), member(40)]  # gaps of 5, 7 and 28 s: all under 30
    waiting = plan(burst, POLICY, at(69.999))
    assert waiting.due == ()
    assert waiting.filling is not None and waiting.next_check_at == at(70)
    due = plan(burst, POLICY, at(70))  # exactly quiet after the last object: due (inclusive)
    (batch,) = due.due
    assert due.filling is None
    assert batch.reason == "quiet" and batch.closes_at == at(70)
    assert batch.uris == tuple(f"gs://demo-data/{item.name}" for item in burst)
    assert batch.opened_at == at(0)


def test_a_gap_of_exactly_the_quiet_period_starts_a_new_batch() -> None:
    first, second = partition([member(0), member(30)], POLICY)
    assert (names(first.members), names(second.members)) == ([member(0).name], [member(30).name])
    assert first.closes_at == at(30)
    (joined,) = partition([member(0), member(29.999)], POLICY)
    assert len(joined.members) == 2


# ------------------------------------------------------------------------------------------------ max wait


def test_a_steady_trickle_closes_at_the_maximum_wait() -> None:
    trickle = [member(seconds) for seconds in range(0, 400, 20)]  # every 20 s: never quiet for 30 s
    batches = partition(trickle, POLICY)
    assert [len(batch.members) for batch in batches] == [15, 5]  # 0..280 s, then 300 s opens the next
    first = batches[0]
    assert (first.reason, first.closes_at) == ("max_wait", at(300))
    assert batches[1].members[0].seen_at == at(300)  # exactly max_wait after the first: next batch
    result = plan(trickle, POLICY, at(300))
    assert [len(batch.members) for batch in result.due] == [15]
    assert result.filling == batches[1]


# ----------------------------------------------------------------------------------------------- max count


def test_a_full_batch_is_due_at_once_and_the_rest_fill_the_next() -> None:
    small = BatchPolicy(quiet=timedelta(seconds=30), max_wait=timedelta(minutes=5), max_count=100)
    burst = [member(index * 0.01, name=f"churn/{index:04d}.csv") for index in range(250)]
    result = plan(burst, small, at(2.5))
    assert [len(batch.members) for batch in result.due] == [100, 100]
    assert [batch.reason for batch in result.due] == ["max_count", "max_count"]
    assert result.due[0].closes_at == at(0.99)  # when its 100th object arrived
    assert result.filling is not None and len(result.filling.members) == 50
    assert names(result.due[1].members)[0] == "churn/0100.csv"
    every = [name for batch in (*result.due, result.filling) for name in names(batch.members)]
    assert every == [item.name for item in burst]  # each object in exactly one batch, in order


def test_max_count_of_one_makes_every_object_its_own_run() -> None:
    single = BatchPolicy(quiet=timedelta(seconds=30), max_wait=timedelta(minutes=5), max_count=1)
    result = plan([member(0), member(1)], single, at(1))
    assert [names(batch.members) for batch in result.due] == [[member(0).name], [member(1).name]]


# ------------------------------------------------------------------------------------- order and stability


def test_arrival_order_of_the_query_does_not_matter() -> None:
    members = [member(seconds) for seconds in (0, 3, 7, 50, 52, 130)]
    expected = [(batch.batch_id, batch.keys) for batch in partition(members, POLICY)]
    shuffled = members[:]
    for seed in range(5):
        random.Random(seed).shuffle(shuffled)
        assert [(batch.batch_id, batch.keys) for batch in partition(shuffled, POLICY)] == expected
    # Objects committed in the same instant are ordered by key, so every tick agrees.
    same = [member(0, name="churn/b.csv"), member(0, name="churn/a.csv")]
    assert names(partition(same, POLICY)[0].members) == ["churn/a.csv", "churn/b.csv"]


def test_a_due_batch_never_changes_when_later_objects_arrive() -> None:
    burst = [member(0), member(10), member(20)]
    before = plan(burst, POLICY, at(50)).due[0]
    # A late object (its event redelivered after minutes) is committed after the batch closed.
    late = member(75, name="churn/part-00002.00.csv")
    after = plan([*burst, late], POLICY, at(75))
    assert after.due[0] == before
    assert after.due[0].batch_id == before.batch_id
    assert after.filling is not None and names(after.filling.members) == [late.name]


def test_members_already_in_a_batch_record_are_skipped() -> None:
    burst = [member(0), member(10), member(20), member(21)]
    # An overlapping tick recorded the batch of the first three; member 21 s was not in its view.
    recorded = [item.key for item in burst[:3]]
    result = plan(burst, POLICY, at(60), batched=recorded)
    (batch,) = result.due
    assert names(batch.members) == [member(21).name]
    assert batch.batch_id != plan(burst[:3], POLICY, at(60)).due[0].batch_id


def test_only_the_due_prefix_is_emitted_even_with_a_member_from_the_future() -> None:
    # Clock skew: the second object's commit time is ahead of the reconciler's now.
    members = [member(0), member(100)]
    result = plan(members, POLICY, at(40))
    assert [names(batch.members) for batch in result.due] == [[member(0).name]]
    assert result.filling is not None and result.filling.opened_at == at(100)
    early = plan(members, POLICY, at(20))
    assert early.due == () and early.filling is not None and early.filling.opened_at == at(0)


def test_one_dataset_at_a_time_and_label_safe_batch_ids() -> None:
    with pytest.raises(ValueError, match="one dataset at a time"):
        partition([member(0), member(1, dataset="other")], POLICY)
    (batch,) = partition([member(0, dataset="Churn Data/EU.v2" * 4)], POLICY)
    assert LABEL.match(batch.batch_id), batch.batch_id
    assert batch.batch_id.startswith("churn-data-eu-v2churn-da")
    assert "-20261130-100000-" in batch.batch_id
    assert plan([], POLICY, at(0)).due == () and plan([], POLICY, at(0)).next_check_at is None


# ---------------------------------------------------------------------------------------------- debounce

WINDOW = DebouncePolicy(window=timedelta(hours=1))


def test_the_first_alert_starts_a_retrain_and_redelivery_names_the_same_run() -> None:
    decision = debounce("churn", "incident-1", at(0), None, WINDOW)
    assert decision.action == "start"
    assert decision.window == DriftWindow("churn", decision.run_id, at(0))
    assert decision.run_id == drift_run_id("churn", "incident-1")
    assert LABEL.match(decision.run_id)
    assert debounce("churn", "incident-1", at(5), None, WINDOW).run_id == decision.run_id
    assert drift_run_id("churn", "incident-2") != decision.run_id
    assert drift_run_id("other", "incident-1") != decision.run_id


def test_alerts_inside_the_window_are_suppressed_onto_its_run() -> None:
    window = debounce("churn", "incident-1", at(0), None, WINDOW).window
    inside = debounce("churn", "incident-2", at(3599.999), window, WINDOW)
    assert (inside.action, inside.run_id) == ("suppress", window.run_id)
    late_delivery = debounce("churn", "incident-0", at(-600), window, WINDOW)  # older than the window
    assert (late_delivery.action, late_delivery.run_id) == ("suppress", window.run_id)
    boundary = debounce("churn", "incident-3", at(3600), window, WINDOW)  # exactly a window later: new run
    assert boundary.action == "start" and boundary.window.opened_at == at(3600)
    assert boundary.run_id == drift_run_id("churn", "incident-3")
    with pytest.raises(ValueError, match="'churn''s"):
        debounce("other", "incident-9", at(10), window, WINDOW)


def test_the_reconciler_closes_windows_whose_period_is_over() -> None:
    windows = [DriftWindow("churn", "r1", at(0)), DriftWindow("fraud", "r2", at(1800))]
    assert closed_windows(windows, at(3599), WINDOW) == []
    assert closed_windows(windows, at(3600), WINDOW) == [windows[0]]
    assert closed_windows(windows, at(5400), WINDOW) == windows
    assert windows[1].closes_at(WINDOW) == at(5400)
