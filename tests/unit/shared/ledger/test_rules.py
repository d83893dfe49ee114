"""The pure pieces both backends share (storage ids, bounded text) and the ledger errors in the one model."""

from __future__ import annotations

import pytest

from shared.errors import (
    DeadlineExceeded,
    InvalidInput,
    PermanentError,
    RejectionReason,
    TransientError,
    is_permanent,
    is_transient,
    rejection_reason,
)
from shared.ledger import (
    InvalidLedgerInput,
    KeyReuseError,
    LeaseLostError,
    LedgerContentionError,
    LedgerError,
    LedgerTimeoutError,
    RunNotFoundError,
)
from shared.ledger.rules import digest, doc_id, storable_text

pytestmark = pytest.mark.unit

AWKWARD = ["..", ".", "__x__", "a/b", "nul\x00", "lone \ud800", "é" * 2_000, "x" * 1_100_000, "~", "a~b"]


@pytest.mark.parametrize("name", AWKWARD, ids=range(len(AWKWARD)))
def test_document_ids_are_bounded_safe_and_total(name: str) -> None:
    identifier = doc_id(name)

    assert 0 < len(identifier.encode()) <= 200
    assert identifier.isascii() and "/" not in identifier
    assert identifier not in (".", "..")
    assert not (identifier.startswith("__") and identifier.endswith("__"))


def test_safe_names_are_their_own_document_id_and_never_collide_with_hashed_ones() -> None:
    assert doc_id("run-2026-11-01.a_b") == "run-2026-11-01.a_b"
    assert "~" in doc_id("a~b") and doc_id("a~b") != "a~b"
    assert doc_id("n" * 200) == "n" * 200
    assert doc_id("n" * 201) != "n" * 201


def test_names_differing_only_past_the_readable_prefix_get_different_ids() -> None:
    base = "event/" + "x" * 500
    ids = {doc_id(base + suffix) for suffix in ("1", "2", "\ud800", "\udc00")}
    assert len(ids) == 4


def test_digest_is_total_and_matches_sha256_of_utf8() -> None:
    assert digest("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert digest("\ud800") != digest("\udc00")


def test_storable_text_is_valid_utf8_cut_on_a_character_boundary() -> None:
    text, cut = storable_text("é" * 10, 7)
    assert cut and text == "éé…" and len(text.encode()) <= 7  # 2+2 bytes, then the 3-byte mark
    text, cut = storable_text("é" * 10, 7, mark_cut=False)
    assert cut and text == "ééé"
    assert storable_text("a\ud800", 100) == ("a\\ud800", False)
    assert storable_text("short", 100) == ("short", False)


# Errors: one model -----------------------------------------------------------------------------------------


def test_key_reuse_and_invalid_input_are_permanent() -> None:
    reuse = KeyReuseError("k", "a" * 64, "b" * 64)
    invalid = InvalidLedgerInput("run id", ["must not be empty"])

    assert is_permanent(reuse) and not is_transient(reuse)
    assert isinstance(reuse, PermanentError) and rejection_reason(reuse) is RejectionReason.KEY_REUSE
    assert is_permanent(invalid) and isinstance(invalid, InvalidInput)
    assert rejection_reason(invalid) is RejectionReason.INVALID
    assert invalid.problems == ["must not be empty"] and str(invalid) == "invalid run id: must not be empty"


@pytest.mark.parametrize(
    "error",
    [
        LeaseLostError("k", "taken over"),
        LedgerContentionError("busy"),
        RunNotFoundError("run-1"),
        LedgerTimeoutError("no answer"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_lease_contention_unknown_run_and_timeouts_are_transient(error: LedgerError) -> None:
    assert isinstance(error, TransientError) and is_transient(error) and not is_permanent(error)


def test_run_not_found_is_a_lookup_error_and_a_timeout_is_a_deadline() -> None:
    assert isinstance(RunNotFoundError("r"), LookupError)
    assert isinstance(LedgerTimeoutError("t"), DeadlineExceeded)


@pytest.mark.parametrize(
    "cls",
    [LedgerError, InvalidLedgerInput, KeyReuseError, LeaseLostError, LedgerContentionError, RunNotFoundError],
)
def test_ledger_errors_declare_no_retry_attributes_of_their_own(cls: type[LedgerError]) -> None:
    assert "retryable" not in vars(cls) and "http_status" not in vars(cls)


def test_messages_show_a_short_form_of_a_huge_key() -> None:
    assert len(str(KeyReuseError("k" * 1_000_000, "a" * 64, "b" * 64))) < 300
    assert len(str(LeaseLostError("k" * 1_000_000, "gone"))) < 300
    assert len(str(RunNotFoundError("r" * 1_000_000))) < 300
