"""The ledger contract against :class:`shared.ledger.InMemoryLedger`, plus the pure helpers."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from shared.ledger import InMemoryLedger, Ledger, canonical_json, payload_hash
from tests.contract.ledger import FakeClock, LedgerContract
from tests.contract.ledger_count import LedgerCountContract
from tests.contract.ledger_docs import LedgerDocsContract
from tests.contract.ledger_input import LedgerInputContract

pytestmark = pytest.mark.unit


class TestInMemoryLedger(LedgerContract, LedgerInputContract, LedgerDocsContract, LedgerCountContract):
    @pytest.fixture
    def ledger(self, clock: FakeClock) -> Ledger:
        return InMemoryLedger(clock=clock)


def test_in_memory_ledger_satisfies_the_protocol() -> None:
    assert isinstance(InMemoryLedger(), Ledger)


def test_payload_hash_ignores_key_order_and_whitespace() -> None:
    assert payload_hash({"b": 1, "a": [1, {"y": 2, "x": 3}]}) == payload_hash(
        {"a": [1, {"x": 3, "y": 2}], "b": 1}
    )
    assert payload_hash({"a": 1}) != payload_hash({"a": 2})
    assert len(payload_hash({})) == 64
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'


def test_payload_hash_of_bytes_hashes_the_bytes() -> None:
    assert payload_hash(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_payload_hash_refuses_non_json_values() -> None:
    with pytest.raises(ValueError):
        payload_hash({"x": float("nan")})
    with pytest.raises(TypeError):
        payload_hash({"x": object()})


def test_clock_must_be_timezone_aware() -> None:
    ledger = InMemoryLedger(clock=lambda: datetime(2030, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        ledger.claim("k", payload_hash({}), 1, 1)


def test_non_utc_clock_is_normalised_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    ledger = InMemoryLedger(clock=lambda: datetime(2030, 1, 1, 12, tzinfo=plus_two))

    run = ledger.start_run("r", {})

    assert run.started_at.utcoffset() == timedelta(0)
    assert run.started_at.hour == 10
