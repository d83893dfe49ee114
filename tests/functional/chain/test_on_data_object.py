"""``on_data_object`` in-process through functions-framework, fed storage ``finalized`` CloudEvents as the
storage emulator sends them (binary mode), over fake ports; batches closed by ``close_due_batches``."""

from __future__ import annotations

import json
import threading
from datetime import datetime
from typing import Any

import pytest

from functions.on_data_object import handle
from shared.chain import data as data_chain
from shared.chain.data import BATCHES, MEMBERS, close_due_batches
from shared.errors import TransientError
from shared.events import CloudEventInfo, storage_object
from shared.ledger import RunStatus
from shared.training.batching import member_id
from tests.functional.chain.data_support import (
    DATA,
    FINALIZED,
    TRAINING_TOPIC,
    World,
    binary_headers,
    chain_config,
    client,
    deliver_object,
    invalid_csv,
    upload,
    valid_csv,
    world,
)
from tests.helpers import SHARED_SAMPLES, load_event

pytestmark = pytest.mark.functional


@pytest.fixture
def app() -> Any:
    return client("on_data_object")


def pending(world_: World) -> list[dict[str, Any]]:
    docs = world_.ledger.query_docs(MEMBERS, equals={"dataset": "churn", "batched": False}, limit=10_000)
    return [doc.data for doc in docs]


def test_objects_outside_every_dataset_are_acknowledged_and_ignored(app: Any) -> None:
    with world() as w:
        outside = [
            upload(w, "other/data.csv", valid_csv()),  # the data bucket, outside the churn/ prefix
            upload(w, "churn/data.csv", invalid_csv(), bucket="another-bucket"),  # right prefix, other bucket
            upload(w, "quarantine/churn/old.csv", invalid_csv()),  # our own quarantine
            upload(w, "quarantine/churn/old.csv.report.json", "{}"),
        ]
        for body in outside:
            assert deliver_object(app, body).status_code == 200
        assert pending(w) == []
        assert w.publisher.messages == []
        assert w.ports.objects.faults.calls["read_bytes"] == 0
        assert w.ports.objects.stat("another-bucket", "churn/data.csv") is not None  # untouched


@pytest.mark.parametrize("sample", ["tests", "shared"])
def test_real_event_payloads_parse_and_outside_objects_are_ignored(app: Any, sample: str) -> None:
    if sample == "shared":
        path = SHARED_SAMPLES / "storage-object-finalized-data.json"
        if not path.is_file():
            pytest.skip("../shared/samples is not present")
        body = json.loads(path.read_text())
    else:
        body = load_event("storage-object-finalized-data.json")
    with world() as w:
        headers = {**binary_headers(body), "ce-time": "2026-11-22T10:00:00Z"}
        response = app.post("/", data=json.dumps(body), headers=headers)
        assert response.status_code == 200
        assert response.get_data(as_text=True) == "done"
        assert w.ledger.list_rejected() == []


def test_a_valid_file_becomes_a_pending_member_once(app: Any) -> None:
    with world() as w:
        body = upload(w, "churn/2026-11-22/part-1.csv", valid_csv())
        for _ in range(2):  # the second is a redelivery
            assert deliver_object(app, body).status_code == 200
        members = pending(w)
        assert len(members) == 1
        member = members[0]
        assert member["uri"] == f"gs://{DATA}/churn/2026-11-22/part-1.csv"
        assert member["generation"] == int(body["generation"])
        assert (member["dataset"], member["batched"], member["seen_at"]) == (
            "churn",
            False,
            "2026-11-22T10:00:00.000000Z",
        )
        doc = w.ledger.get_doc(MEMBERS, member_id(DATA, "churn/2026-11-22/part-1.csv", body["generation"]))
        assert doc is not None
        assert w.publisher.messages == []  # no training until the batch closes
        assert w.ports.objects.stat(DATA, "churn/2026-11-22/part-1.csv") is not None


def test_an_invalid_file_is_moved_to_quarantine_with_a_report_of_every_failed_check(app: Any) -> None:
    with world() as w:
        body = upload(w, "churn/bad.csv", invalid_csv())
        assert deliver_object(app, body).status_code == 200
        objects = w.ports.objects
        assert objects.stat(DATA, "churn/bad.csv") is None  # moved, not copied
        assert objects.read_text(DATA, "quarantine/churn/bad.csv") == invalid_csv()
        report = json.loads(objects.read_text(DATA, "quarantine/churn/bad.csv.report.json"))
        assert report["valid"] is False and report["object"] == "churn/bad.csv"
        checks = {(failure["check"], failure["column"]) for failure in report["failures"]}
        assert checks == {("allowed", "label"), ("max", "f2"), ("rows.min", None)}
        assert report["failureCount"] == 3
        [note] = w.notifications("data.quarantined")
        assert note["data"]["severity"] == "warning"
        assert "label: allowed" in note["data"]["text"] and "f2: max" in note["data"]["text"]
        assert note["data"]["context"]["report"] == f"gs://{DATA}/quarantine/churn/bad.csv.report.json"
        assert note["data"]["labels"] == {"model": "churn"}
        assert w.messages(TRAINING_TOPIC) == [] and pending(w) == []
        run = w.ledger.get_run(note["run_id"])
        assert run is not None and run.status is RunStatus.FAILED
        assert run.step("data:quarantined") is not None
        # A redelivery changes nothing and announces nothing new.
        assert deliver_object(app, body).status_code == 200
        assert len(w.notifications("data.quarantined")) == 1
        assert objects.read_text(DATA, "quarantine/churn/bad.csv") == invalid_csv()


def test_an_object_larger_than_the_limit_is_quarantined_without_being_downloaded(app: Any) -> None:
    with world() as w:
        body = upload(w, "churn/huge.csv", valid_csv())
        body["size"] = str(10 * 1024**3)  # what the event says decides: 10 GiB is never downloaded
        assert deliver_object(app, body).status_code == 200
        assert w.ports.objects.faults.calls["read_bytes"] == 0
        report = json.loads(w.ports.objects.read_text(DATA, "quarantine/churn/huge.csv.report.json"))
        assert [failure["check"] for failure in report["failures"]] == ["size"]
        assert w.ports.objects.stat(DATA, "churn/huge.csv") is None


def test_a_failed_delete_is_retried_and_the_move_completes_once(app: Any) -> None:
    with world() as w:
        body = upload(w, "churn/bad.csv", invalid_csv())
        w.ports.objects.faults.fail_next("delete", TransientError("storage unavailable"))
        assert deliver_object(app, body).status_code == 500  # the emulator / Eventarc retries it
        assert w.ports.objects.stat(DATA, "quarantine/churn/bad.csv") is not None  # copied already
        assert deliver_object(app, body).status_code == 200  # the redelivery: copy found, delete retried
        assert w.ports.objects.stat(DATA, "churn/bad.csv") is None
        assert len(w.notifications("data.quarantined")) == 1


def test_an_object_moved_by_an_attempt_that_crashed_is_still_reported(app: Any) -> None:
    with world() as w:
        body = upload(w, "churn/bad.csv", invalid_csv())
        objects = w.ports.objects
        # What an attempt that crashed after the copy and the delete leaves behind.
        objects.copy(DATA, "churn/bad.csv", DATA, "quarantine/churn/bad.csv")
        objects.delete(DATA, "churn/bad.csv")
        assert deliver_object(app, body).status_code == 200
        report = json.loads(objects.read_text(DATA, "quarantine/churn/bad.csv.report.json"))
        assert report["failureCount"] == 3
        assert len(w.notifications("data.quarantined")) == 1


def test_a_replaced_generation_is_not_handled_and_the_new_one_is_left_alone(app: Any) -> None:
    with world() as w:
        old = upload(w, "churn/data.csv", invalid_csv())
        upload(w, "churn/data.csv", valid_csv())  # a newer generation replaced it before its event came
        assert deliver_object(app, old).status_code == 200
        assert w.ports.objects.read_text(DATA, "churn/data.csv") == valid_csv()
        assert w.ports.objects.stat(DATA, "quarantine/churn/data.csv") is None
        assert pending(w) == [] and w.publisher.messages == []


def test_a_burst_of_thirty_files_becomes_one_training_request_listing_them_all(app: Any) -> None:
    with world() as w:
        names = [f"churn/burst/part-{index:03d}.csv" for index in range(30)]
        for index, name in enumerate(names):
            assert deliver_object(app, upload(w, name, valid_csv(seed=index))).status_code == 200
            w.clock.advance(0.1)  # a steady upload session: never quiet for 5 s
        assert close_due_batches(w.runtime, w.clock()) == []  # still inside the quiet period
        assert w.messages(TRAINING_TOPIC) == []

        after_quiet = w.clock.advance(5)
        [run_id] = close_due_batches(w.runtime, after_quiet)
        assert close_due_batches(w.runtime, after_quiet) == []  # a second tick: nothing is due any more
        assert close_due_batches(w.runtime, w.clock.advance(60)) == []

        [request] = w.messages(TRAINING_TOPIC)  # published once, not re-published by later ticks
        event = request.json()
        assert event["type"] == "training.requested" and event["run_id"] == run_id
        assert run_id.startswith("data-churn-")
        data = event["data"]
        assert (data["model"], data["cause"], data["dataset"]) == ("churn", "data", "churn")
        assert data["data_uris"] == [f"gs://{DATA}/{name}" for name in names]
        assert data["detail"]["objects"] == 30 and data["detail"]["reason"] == "quiet"
        assert pending(w) == []
        [record] = w.ledger.query_docs(BATCHES, equals={"dataset": "churn"})
        assert record.data["closed"] is True and record.data["count"] == 30
        run = w.ledger.get_run(run_id)
        assert run is not None and run.cause["cause"] == "data" and run.step("data:batch") is not None


def admit(w: World, count: int, prefix: str = "p") -> list[str]:
    """``count`` valid objects handled by on_data_object's handler (no HTTP), 0.1 s apart."""
    names = []
    for index in range(count):
        name = f"churn/{prefix}-{index:02d}.csv"
        body = upload(w, name, valid_csv(seed=index))
        handle(CloudEventInfo(f"e-{prefix}-{index}", FINALIZED, "//storage", "", None), body, w.runtime)
        w.clock.advance(0.1)
        names.append(name)
    return names


def test_concurrent_ticks_emit_one_request() -> None:
    with world() as w:
        names = admit(w, 40)
        now = w.clock.advance(10)
        barrier = threading.Barrier(4)
        results: list[list[str]] = []

        def tick() -> None:
            barrier.wait()
            results.append(close_due_batches(w.runtime, now))

        threads = [threading.Thread(target=tick) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        [request] = w.events(TRAINING_TOPIC)
        assert request["data"]["data_uris"] == [f"gs://{DATA}/{name}" for name in names]
        assert {run_id for result in results for run_id in result} == {request["run_id"]}
        assert pending(w) == []


def test_a_batch_left_open_by_a_crash_keeps_its_members_and_a_late_member_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with world() as w:
        names = admit(w, 10)
        original = data_chain._mark_members
        calls = []

        def crash_once(*args: Any) -> None:
            calls.append(args)
            if len(calls) == 1:
                raise TransientError("the tick's instance died while marking members")
            original(*args)

        monkeypatch.setattr(data_chain, "_mark_members", crash_once)
        now = w.clock.advance(10)
        assert close_due_batches(w.runtime, now) == []  # released for a retry; the record exists
        [record] = w.ledger.query_docs(BATCHES, equals={"dataset": "churn"})
        assert record.data["closed"] is False and record.data["count"] == 10
        # A member committed late, stamped inside the batch's time span: not in the record, so not in it.
        late = upload(w, "churn/late.csv", valid_csv())
        stamp = record.data["objects"][4][2]
        w.ledger.put_doc(
            MEMBERS,
            member_id(DATA, "churn/late.csv", late["generation"]),
            data_chain.member_document(
                "churn", DATA, "churn/late.csv", int(late["generation"]), datetime.fromisoformat(stamp)
            ),
        )
        closed = close_due_batches(w.runtime, w.clock.advance(10))
        first, second = w.events(TRAINING_TOPIC)
        assert closed == [first["run_id"], second["run_id"]]
        assert first["data"]["data_uris"] == [f"gs://{DATA}/{name}" for name in names]
        assert second["data"]["data_uris"] == [f"gs://{DATA}/churn/late.csv"]
        assert pending(w) == []


def test_a_full_batch_closes_at_once_without_waiting_for_the_reconciler(app: Any) -> None:
    with world(chain_config(max_count=5)) as w:
        for index in range(7):
            assert (
                deliver_object(app, upload(w, f"churn/p-{index}.csv", valid_csv(seed=index))).status_code
                == 200
            )
        [request] = w.events(TRAINING_TOPIC)
        assert [uri.rsplit("/", 1)[1] for uri in request["data"]["data_uris"]] == [
            f"p-{i}.csv" for i in range(5)
        ]
        assert request["data"]["detail"]["reason"] == "max_count"
        assert len(pending(w)) == 2  # the next batch is filling
        later = close_due_batches(w.runtime, w.clock.advance(5))
        assert len(later) == 1 and len(w.events(TRAINING_TOPIC)) == 2


def test_a_broken_delivery_is_recorded_and_acknowledged(app: Any) -> None:
    with world() as w:
        body = upload(w, "churn/x.csv", valid_csv())
        wrong_type = {**binary_headers(body), "ce-type": "google.cloud.storage.object.v1.deleted"}
        assert app.post("/", data=json.dumps(body), headers=wrong_type).status_code == 200
        no_generation = {key: value for key, value in body.items() if key != "generation"}
        headers = {**binary_headers(body), "ce-id": "evt-no-generation"}
        assert app.post("/", data=json.dumps(no_generation), headers=headers).status_code == 200
        garbage = {**binary_headers(body), "ce-id": "evt-garbage"}
        assert app.post("/", data=b"{not json", headers=garbage).status_code == 200
        rejected = {event.event_id: event for event in w.ledger.list_rejected()}
        assert len(rejected) == 3
        assert all(event.reason == "invalid" for event in rejected.values())
        assert any("generation: required" in problem for e in rejected.values() for problem in e.problems)
        assert pending(w) == [] and w.publisher.messages == []


def test_a_structured_cloud_event_is_read_too(app: Any) -> None:
    with world() as w:
        body = upload(w, "churn/s.csv", valid_csv())
        headers = binary_headers(body)
        event = {name[3:]: value for name, value in headers.items() if name.startswith("ce-")}
        response = app.post(
            "/",
            data=json.dumps({**event, "datacontenttype": "application/json", "data": body}),
            headers={"Content-Type": "application/cloudevents+json"},
        )
        assert response.status_code == 200
        assert len(pending(w)) == 1


def test_an_event_older_than_max_age_is_recorded_as_expired(app: Any) -> None:
    with world() as w:
        body = upload(w, "churn/old.csv", valid_csv())
        headers = {**binary_headers(body), "ce-time": "2026-11-20T10:00:00Z"}  # two days before the clock
        response = app.post("/", data=json.dumps(body), headers=headers)
        assert (response.status_code, response.get_data(as_text=True)) == (200, "expired")
        [rejected] = w.ledger.list_rejected()
        assert rejected.reason == "expired" and rejected.source.startswith("on_data_object:")
        assert pending(w) == []


def test_a_valid_object_is_one_member_write_and_a_redelivery_writes_nothing(app: Any) -> None:
    with world() as w:
        body = upload(w, "churn/one.csv", valid_csv())
        assert deliver_object(app, body).status_code == 200
        doc_id = member_id(DATA, "churn/one.csv", int(body["generation"]))
        first = w.ledger.get_doc(MEMBERS, doc_id)
        assert first is not None and first.data["batched"] is False
        # No step: the member document, create-only, is the object's idempotency record.
        assert w.ledger.get(data_chain.object_key(storage_object(body))) is None
        assert deliver_object(app, body).status_code == 200  # redelivered
        again = w.ledger.get_doc(MEMBERS, doc_id)
        assert again is not None and again.version == first.version  # untouched
        assert w.ports.objects.faults.calls["read_bytes"] == 2  # each delivery validates what it reads


def test_an_invalid_object_is_read_and_validated_once_per_delivery(app: Any) -> None:
    with world() as w:
        assert deliver_object(app, upload(w, "churn/bad.csv", invalid_csv())).status_code == 200
        assert w.ports.objects.faults.calls["read_bytes"] == 1
        assert w.ports.objects.stat(DATA, "quarantine/churn/bad.csv") is not None
