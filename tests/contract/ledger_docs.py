"""The ledger contract's state documents (:mod:`shared.ledger.protocol`, "State documents").

A concrete test class inherits :class:`tests.contract.ledger.LedgerContract` (which provides the fixtures)
and :class:`LedgerDocsContract`; ``tests/unit/shared/ledger`` runs it in memory,
``tests/integration/shared/ledger`` on the Firestore emulator.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.errors import RejectionReason, is_permanent, is_transient
from shared.ledger import (
    MAX_JSON_BYTES,
    MAX_QUERYABLE_TEXT_BYTES,
    DocConflictError,
    InvalidLedgerInput,
    Ledger,
    StoredDoc,
)
from tests.contract.ledger import FakeClock, run_concurrently


def _member(dataset: str, seen_at: str, batched: bool = False, **extra: object) -> dict[str, object]:
    return {"dataset": dataset, "seen_at": seen_at, "batched": batched, **extra}


class LedgerDocsContract:
    """State documents; the ``ledger`` and ``clock`` fixtures come from the concrete test class."""

    # get / put ------------------------------------------------------------------------------------------

    def test_put_then_get_round_trips_exactly(self, ledger: Ledger, clock: FakeClock) -> None:
        data = {"image": "r/trainer@sha256:ab", "nested": [[1, 2], {"x.y": None}], "n": 1.5, "ok": True}

        written = ledger.put_doc("pointers", "image-trainer", data)
        read = ledger.get_doc("pointers", "image-trainer")

        assert isinstance(written, StoredDoc)
        assert (written.collection, written.doc_id, written.data) == ("pointers", "image-trainer", data)
        assert written.version and written.updated_at == clock()
        assert read == written
        assert ledger.get_doc("pointers", "image-server") is None
        assert ledger.get_doc("batches", "image-trainer") is None  # collections are separate

    def test_put_overwrites_the_whole_document_with_a_new_version(
        self, ledger: Ledger, clock: FakeClock
    ) -> None:
        first = ledger.put_doc("windows", "w-1", {"a": 1, "b": 2})
        clock.advance(5)

        second = ledger.put_doc("windows", "w-1", {"a": 3})

        assert second.version != first.version
        assert second.updated_at == first.updated_at + timedelta(seconds=5)
        assert ledger.get_doc("windows", "w-1") == second
        assert second.data == {"a": 3}

    def test_any_document_id_is_stored_exactly(self, ledger: Ledger) -> None:
        ids = ["gs://bucket/a/b.csv#17", "..", "__x__", "é" * 500, "x" * 4_000, "a/b", "a_b"]
        for index, doc_id in enumerate(ids):
            ledger.put_doc("members", doc_id, {"i": index})

        for index, doc_id in enumerate(ids):
            doc = ledger.get_doc("members", doc_id)
            assert doc is not None and doc.doc_id == doc_id and doc.data == {"i": index}
        assert sorted(doc.doc_id for doc in ledger.query_docs("members")) == sorted(ids)

    def test_data_handed_in_and_out_are_copies(self, ledger: Ledger) -> None:
        data: dict[str, object] = {"list": [1], "map": {"k": "v"}}
        written = ledger.put_doc("windows", "w-1", data)
        data["list"] = [2]
        written.data["map"]["k"] = "changed"
        read = ledger.get_doc("windows", "w-1")
        assert read is not None
        read.data["list"].append(3)
        [queried] = ledger.query_docs("windows")
        queried.data["new"] = 1

        stored = ledger.get_doc("windows", "w-1")
        assert stored is not None and stored.data == {"list": [1], "map": {"k": "v"}}
        assert stored.version == written.version

    # create_only / compare-and-set --------------------------------------------------------------------

    def test_create_only_twice_is_a_conflict(self, ledger: Ledger) -> None:
        first = ledger.put_doc("batches", "churn/b-1", {"members": 3}, create_only=True)

        with pytest.raises(DocConflictError) as raised:
            ledger.put_doc("batches", "churn/b-1", {"members": 4}, create_only=True)

        assert is_transient(raised.value) and not is_permanent(raised.value)
        assert raised.value.collection == "batches" and raised.value.doc_id == "churn/b-1"
        assert ledger.get_doc("batches", "churn/b-1") == first

    def test_compare_and_set_with_a_stale_version_is_a_conflict(self, ledger: Ledger) -> None:
        first = ledger.put_doc("windows", "w-1", {"alerts": 1})
        second = ledger.put_doc("windows", "w-1", {"alerts": 2}, expect_version=first.version)

        with pytest.raises(DocConflictError):
            ledger.put_doc("windows", "w-1", {"alerts": 99}, expect_version=first.version)

        assert ledger.get_doc("windows", "w-1") == second
        third = ledger.put_doc("windows", "w-1", {"alerts": 3}, expect_version=second.version)
        assert third.data == {"alerts": 3} and third.version not in (first.version, second.version)
        assert ledger.get_doc("windows", "w-1") == third

    def test_compare_and_set_on_a_missing_document_or_unknown_version_is_a_conflict(
        self, ledger: Ledger
    ) -> None:
        other = ledger.put_doc("windows", "w-other", {})

        with pytest.raises(DocConflictError):
            ledger.put_doc("windows", "w-1", {"alerts": 1}, expect_version=other.version)
        with pytest.raises(DocConflictError):
            ledger.put_doc("windows", "w-other", {"alerts": 1}, expect_version="not-a-version")

        assert ledger.get_doc("windows", "w-1") is None
        assert ledger.get_doc("windows", "w-other") == other

    def test_create_only_and_expect_version_together_is_a_caller_bug(self, ledger: Ledger) -> None:
        with pytest.raises(ValueError, match="not both"):
            ledger.put_doc("windows", "w-1", {}, create_only=True, expect_version="1")
        assert ledger.get_doc("windows", "w-1") is None

    def test_concurrent_compare_and_set_has_exactly_one_winner(self, ledger: Ledger) -> None:
        start = ledger.put_doc("windows", "w-1", {"writer": -1})

        def write(index: int) -> StoredDoc | DocConflictError:
            try:
                return ledger.put_doc("windows", "w-1", {"writer": index}, expect_version=start.version)
            except DocConflictError as error:
                return error

        outcomes = run_concurrently(8, write)

        winners = [outcome for outcome in outcomes if isinstance(outcome, StoredDoc)]
        assert len(winners) == 1
        assert sum(isinstance(outcome, DocConflictError) for outcome in outcomes) == 7
        assert ledger.get_doc("windows", "w-1") == winners[0]

    def test_concurrent_create_only_has_exactly_one_winner(self, ledger: Ledger) -> None:
        def create(index: int) -> bool:
            try:
                ledger.put_doc("batches", "b-1", {"writer": index}, create_only=True)
            except DocConflictError:
                return False
            return True

        assert sum(run_concurrently(8, create)) == 1

    # Queries ------------------------------------------------------------------------------------------

    def test_query_by_equality_ordered_and_limited(self, ledger: Ledger) -> None:
        ledger.put_doc("members", "m-3", _member("churn", "2030-01-01T00:03:00Z"))
        ledger.put_doc("members", "m-1", _member("churn", "2030-01-01T00:01:00Z"))
        ledger.put_doc("members", "m-2", _member("churn", "2030-01-01T00:02:00Z", batched=True))
        ledger.put_doc("members", "m-4", _member("churn", "2030-01-01T00:00:30Z"))
        ledger.put_doc("members", "x-1", _member("fraud", "2030-01-01T00:00:00Z"))
        ledger.put_doc("batches", "m-0", _member("churn", "2030-01-01T00:00:00Z"))  # another collection

        pending = ledger.query_docs(
            "members", equals={"dataset": "churn", "batched": False}, order_by="seen_at", limit=2
        )
        everything = ledger.query_docs("members", equals={"dataset": "churn"}, order_by="seen_at")

        assert [doc.doc_id for doc in pending] == ["m-4", "m-1"]
        assert [doc.doc_id for doc in everything] == ["m-4", "m-1", "m-2", "m-3"]
        assert pending[0].data == _member("churn", "2030-01-01T00:00:30Z")
        assert ledger.query_docs("members", equals={"dataset": "churn"}, limit=0) == []
        assert ledger.query_docs("members", equals={"dataset": "none"}) == []

    def test_query_without_order_is_by_document_id_and_equal_values_tie_by_id(self, ledger: Ledger) -> None:
        for doc_id in ("c", "a", "b"):
            ledger.put_doc("members", doc_id, {"rank": 1})

        assert [doc.doc_id for doc in ledger.query_docs("members")] == ["a", "b", "c"]
        assert [doc.doc_id for doc in ledger.query_docs("members", order_by="rank")] == ["a", "b", "c"]
        ordered = ledger.query_docs("members", equals={"rank": 1}, order_by="rank", limit=2)
        assert [doc.doc_id for doc in ordered] == ["a", "b"]

    def test_order_by_leaves_out_documents_without_the_field_and_orders_by_type(self, ledger: Ledger) -> None:
        ledger.put_doc("members", "text", {"v": "a"})
        ledger.put_doc("members", "big", {"v": 10})
        ledger.put_doc("members", "small", {"v": 2.5})
        ledger.put_doc("members", "true", {"v": True})
        ledger.put_doc("members", "null", {"v": None})
        ledger.put_doc("members", "list", {"v": [1]})  # not queryable
        ledger.put_doc("members", "none", {"w": 1})

        ordered = ledger.query_docs("members", order_by="v")

        assert [doc.doc_id for doc in ordered] == ["null", "true", "small", "big", "text"]

    def test_a_boolean_equals_only_a_boolean(self, ledger: Ledger) -> None:
        ledger.put_doc("members", "flag", {"x": True})
        ledger.put_doc("members", "one", {"x": 1})
        ledger.put_doc("members", "text", {"x": "1"})

        assert [doc.doc_id for doc in ledger.query_docs("members", equals={"x": True})] == ["flag"]
        assert [doc.doc_id for doc in ledger.query_docs("members", equals={"x": 1})] == ["one"]
        assert [doc.doc_id for doc in ledger.query_docs("members", equals={"x": "1"})] == ["text"]

    def test_a_rewrite_drops_fields_from_queries(self, ledger: Ledger) -> None:
        first = ledger.put_doc("members", "m-1", _member("churn", "2030-01-01T00:01:00Z"))
        ledger.put_doc("members", "m-1", {"dataset": "churn"}, expect_version=first.version)

        assert ledger.query_docs("members", equals={"dataset": "churn"}, order_by="seen_at") == []
        assert ledger.query_docs("members", equals={"batched": False}) == []
        assert [doc.doc_id for doc in ledger.query_docs("members", equals={"dataset": "churn"})] == ["m-1"]

    def test_long_texts_and_odd_names_are_stored_but_not_queryable(self, ledger: Ledger) -> None:
        long_text = "x" * (MAX_QUERYABLE_TEXT_BYTES + 1)
        ledger.put_doc("members", "m-1", {"long": long_text, "odd name": "v", "__x__": "v", "ok": "v"})

        assert ledger.query_docs("members", order_by="long") == []
        assert [doc.doc_id for doc in ledger.query_docs("members", equals={"ok": "v"})] == ["m-1"]
        doc = ledger.get_doc("members", "m-1")
        assert doc is not None and doc.data["long"] == long_text and doc.data["odd name"] == "v"

    # Refused input ------------------------------------------------------------------------------------

    def test_oversized_or_non_json_data_is_invalid_input(self, ledger: Ledger) -> None:
        for data in (
            {"blob": "x" * MAX_JSON_BYTES},
            {"x": float("nan")},
            {"x": {1, 2}},
            {"x": "a\ud800"},
        ):
            with pytest.raises(InvalidLedgerInput) as raised:
                ledger.put_doc("windows", "w-1", data)
            assert is_permanent(raised.value) and raised.value.reason is RejectionReason.INVALID
            assert "document data" in str(raised.value) and len(str(raised.value)) < 500
        assert ledger.get_doc("windows", "w-1") is None

    @pytest.mark.parametrize(
        "collection", ["", "Members", "a/b", "x" * 41, "runs", "idempotency", "rejected", "1st", "é"]
    )
    def test_unsafe_or_reserved_collection_names_are_invalid_input(
        self, ledger: Ledger, collection: str
    ) -> None:
        for call in (
            lambda: ledger.get_doc(collection, "d"),
            lambda: ledger.put_doc(collection, "d", {}),
            lambda: ledger.query_docs(collection),
        ):
            with pytest.raises(InvalidLedgerInput, match="collection name"):
                call()

    def test_unusable_document_ids_and_queries_are_invalid_input(self, ledger: Ledger) -> None:
        for doc_id in ("", "a\ud800", "x" * 5_000):
            with pytest.raises(InvalidLedgerInput, match="document id"):
                ledger.put_doc("windows", doc_id, {})
            with pytest.raises(InvalidLedgerInput, match="document id"):
                ledger.get_doc("windows", doc_id)
        for equals in ({"a.b": "v"}, {"__name__": "v"}, {"": 1}, {"x": 2.5}, {"x": None}, {"x": 2**63}):
            with pytest.raises(InvalidLedgerInput, match="query"):
                ledger.query_docs("windows", equals=equals)  # type: ignore[arg-type]
        with pytest.raises(InvalidLedgerInput, match="query value"):
            ledger.query_docs("windows", equals={"x": "y" * (MAX_QUERYABLE_TEXT_BYTES + 1)})
        with pytest.raises(InvalidLedgerInput, match="order_by"):
            ledger.query_docs("windows", order_by="a.b")
