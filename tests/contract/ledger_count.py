"""The ledger contract's ``count_docs`` (:mod:`shared.ledger.protocol`): how many state documents match,
counted up to a limit without reading them. Run in memory (``tests/unit/shared/ledger``) and on the
Firestore emulator (``tests/integration/shared/ledger``)."""

from __future__ import annotations

import pytest

from shared.ledger import InvalidLedgerInput, Ledger


def _member(dataset: str, batched: bool) -> dict[str, object]:
    return {"dataset": dataset, "batched": batched, "seen_at": "2026-11-30T00:00:00.000000Z"}


class LedgerCountContract:
    """``count_docs``; the ``ledger`` fixture comes from the concrete test class."""

    def test_counts_the_documents_whose_fields_match(self, ledger: Ledger) -> None:
        for index in range(5):
            ledger.put_doc("members", f"a-{index}", _member("a", batched=index >= 3))
        ledger.put_doc("members", "b-0", _member("b", batched=False))
        ledger.put_doc("batches", "a-0", _member("a", batched=False))  # another collection

        assert ledger.count_docs("members", equals={"dataset": "a", "batched": False}) == 3
        assert ledger.count_docs("members", equals={"dataset": "a"}) == 5
        assert ledger.count_docs("members") == 6
        assert ledger.count_docs("members", equals={"dataset": "c"}) == 0
        assert ledger.count_docs("windows") == 0

    def test_counts_up_to_the_limit(self, ledger: Ledger) -> None:
        for index in range(4):
            ledger.put_doc("members", f"m-{index}", _member("a", batched=False))

        assert ledger.count_docs("members", equals={"dataset": "a"}, limit=2) == 2
        assert ledger.count_docs("members", equals={"dataset": "a"}, limit=4) == 4
        assert ledger.count_docs("members", equals={"dataset": "a"}, limit=0) == 0

    def test_a_document_written_again_is_counted_once_with_its_new_fields(self, ledger: Ledger) -> None:
        ledger.put_doc("members", "m-1", _member("a", batched=False))
        ledger.put_doc("members", "m-1", _member("a", batched=True))

        assert ledger.count_docs("members", equals={"dataset": "a", "batched": False}) == 0
        assert ledger.count_docs("members", equals={"dataset": "a", "batched": True}) == 1

    def test_a_bad_collection_is_refused(self, ledger: Ledger) -> None:
        with pytest.raises(InvalidLedgerInput):
            ledger.count_docs("Not A Slug")
