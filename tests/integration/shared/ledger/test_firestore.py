"""The ledger contract against :class:`shared.ledger.FirestoreLedger` on the real Firestore emulator, plus
what only Firestore can show: the document layout, and bounded time when Firestore is not there.

One emulator per module (the project's stack with just Firestore: the Cloud CLI's own launcher, stopped by
process group); each test gets its own collection prefix, so tests do not see each other's documents.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore

from shared.errors import TransientError, is_transient
from shared.ledger import FirestoreLedger, Ledger, LedgerTimeoutError, RunStatus, StepStatus
from tests.contract.ledger import FakeClock, LedgerContract, run_concurrently
from tests.contract.ledger_count import LedgerCountContract
from tests.contract.ledger_docs import LedgerDocsContract
from tests.contract.ledger_input import LedgerInputContract

pytestmark = pytest.mark.integration

PROJECT = "ledger-contract-test"


class TestFirestoreLedger(LedgerContract, LedgerInputContract, LedgerDocsContract, LedgerCountContract):
    @pytest.fixture
    def ledger(self, firestore_client: firestore.Client, clock: FakeClock) -> Ledger:
        assert os.environ["FIRESTORE_EMULATOR_HOST"]  # never touch a real project
        return FirestoreLedger(firestore_client, prefix=f"t{uuid.uuid4().hex[:12]}_", clock=clock)


def test_collections_are_prefixed(firestore_client: firestore.Client) -> None:
    prefix = f"p{uuid.uuid4().hex[:12]}_"
    ledger = FirestoreLedger(firestore_client, prefix=prefix)
    ledger.start_run("run/1", {"x": 1})
    ledger.record_step("run/1", "build", StepStatus.STARTED)
    ledger.claim("a/b#1", "h", 10, 10)
    ledger.record_rejected("evt/1", "invalid", [], "test", "raw")

    names = {collection.id for collection in firestore_client.collections()}

    assert {f"{prefix}runs", f"{prefix}idempotency", f"{prefix}rejected"} <= names
    [run_doc] = list(firestore_client.collection(f"{prefix}runs").stream())
    assert run_doc.get("run_id") == "run/1" and "/" not in run_doc.id
    [step_doc] = list(run_doc.reference.collection("steps").stream())
    assert step_doc.id == "build" and step_doc.get("name") == "build"
    [record_doc] = list(firestore_client.collection(f"{prefix}idempotency").stream())
    assert record_doc.get("key") == "a/b#1" and len(record_doc.id) == 64


def test_prefix_is_validated(firestore_client: firestore.Client) -> None:
    with pytest.raises(ValueError, match="prefix"):
        FirestoreLedger(firestore_client, prefix="a/b")


def test_steps_are_their_own_documents_and_never_write_the_run(firestore_client: firestore.Client) -> None:
    prefix = f"s{uuid.uuid4().hex[:12]}_"
    ledger = FirestoreLedger(firestore_client, prefix=prefix)
    ledger.start_run("run-1", {})
    run_ref = firestore_client.collection(f"{prefix}runs").document("run-1")
    before = run_ref.get().update_time

    run_concurrently(20, lambda i: ledger.record_step("run-1", f"step-{i}", StepStatus.SUCCEEDED))

    assert run_ref.get().update_time == before  # 20 concurrent steps, no write to the run document
    assert len(list(run_ref.collection("steps").stream())) == 20
    run = ledger.get_run("run-1")
    assert run is not None and len(run.steps) == 20


def test_document_ids_are_bounded_and_never_reserved(firestore_client: firestore.Client) -> None:
    prefix = f"d{uuid.uuid4().hex[:12]}_"
    ledger = FirestoreLedger(firestore_client, prefix=prefix)
    names = ["..", ".", "__x__", "a/b", "nul\x00", "é" * 2_000, "x" * 4_000]
    for name in names:
        ledger.start_run(name, {})
        ledger.record_step(name, name, StepStatus.STARTED)

    runs = list(firestore_client.collection(f"{prefix}runs").stream())

    assert sorted(doc.get("run_id") for doc in runs) == sorted(names)
    ids = [doc.id for doc in runs]
    ids += [step.id for doc in runs for step in doc.reference.collection("steps").stream()]
    assert len(ids) == 2 * len(names)
    assert all(len(doc_id.encode()) <= 200 and "/" not in doc_id for doc_id in ids)
    # Firestore reserves ".", ".." and any id that both starts and ends with "__".
    assert not any(doc_id in (".", "..") or (doc_id[:2] == doc_id[-2:] == "__") for doc_id in ids)


def test_state_documents_live_in_prefixed_collections_with_bounded_ids(
    firestore_client: firestore.Client,
) -> None:
    prefix = f"c{uuid.uuid4().hex[:12]}_"
    ledger = FirestoreLedger(firestore_client, prefix=prefix)
    written = ledger.put_doc("members", "gs://b/o.csv#1", {"dataset": "churn", "rows": [[1, 2]]})
    ledger.put_doc("pointers", "image-trainer", {"image": "r/t@sha256:ab"})

    [member] = list(firestore_client.collection(f"{prefix}members").stream())
    [pointer] = list(firestore_client.collection(f"{prefix}pointers").stream())

    assert "/" not in member.id and "~" in member.id and member.get("doc_id") == "gs://b/o.csv#1"
    assert member.get("fields") == {"dataset": "churn"}  # the nested array is only in data_json
    assert pointer.id == "image-trainer"
    assert written.version == member.update_time.rfc3339()


def test_a_state_document_with_expires_at_carries_it_as_a_timestamp_for_a_ttl_policy(
    firestore_client: firestore.Client,
) -> None:
    prefix = f"x{uuid.uuid4().hex[:12]}_"
    ledger = FirestoreLedger(firestore_client, prefix=prefix)
    data = {"timestamp": "1", "expires_at": "2026-12-01T00:10:00.123456+00:00"}
    ledger.put_doc("slack-requests", "d1", data, create_only=True)
    ledger.put_doc("slack-requests", "d2", {"expires_at": "not a time"}, create_only=True)

    [first] = [
        doc for doc in firestore_client.collection(f"{prefix}slack-requests").stream() if doc.id == "d1"
    ]
    assert first.get("expires_at").isoformat() == "2026-12-01T00:10:00.123456+00:00"  # a Timestamp
    stored = ledger.get_doc("slack-requests", "d1")
    assert stored is not None and stored.data == data  # what was written comes back, unchanged
    [second] = [
        doc for doc in firestore_client.collection(f"{prefix}slack-requests").stream() if doc.id == "d2"
    ]
    assert "expires_at" not in (second.to_dict() or {})  # not a time: no TTL field, nothing refused


# Bounded time: Firestore down or silent -------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def silent_peer() -> Iterator[int]:
    """A loopback port that accepts connections and never answers (a hung server, a black-holed route)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    try:
        yield int(server.getsockname()[1])
    finally:
        server.close()


def _ledger_at(host: str, monkeypatch: pytest.MonkeyPatch, timeout: float) -> FirestoreLedger:
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", host)
    client = firestore.Client(project=PROJECT, credentials=AnonymousCredentials())
    return FirestoreLedger(client, prefix="down_", timeout=timeout)


def _calls(ledger: FirestoreLedger) -> dict[str, Callable[[], object]]:
    return {
        "claim": lambda: ledger.claim("k", "h", 10, 10),
        "complete": lambda: ledger.complete("k", "token", {}),
        "start_run": lambda: ledger.start_run("run-1", {}),
        "record_step": lambda: ledger.record_step("run-1", "build", StepStatus.STARTED),
        "get_run": lambda: ledger.get_run("run-1"),
        "list_runs": lambda: ledger.list_runs(RunStatus.RUNNING),
        "finish_run": lambda: ledger.finish_run("run-1", RunStatus.FAILED),
        "record_rejected": lambda: ledger.record_rejected("evt-1", "invalid", [], "s", "p"),
        "list_rejected": lambda: ledger.list_rejected(),
        "get_doc": lambda: ledger.get_doc("windows", "w-1"),
        "put_doc": lambda: ledger.put_doc("windows", "w-1", {"a": 1}),
        "put_doc create_only": lambda: ledger.put_doc("batches", "b-1", {}, create_only=True),
        "put_doc expect_version": lambda: ledger.put_doc(
            "windows", "w-1", {}, expect_version="2030-01-01T00:00:00.123456789Z"
        ),
        "query_docs": lambda: ledger.query_docs(
            "members", equals={"dataset": "churn", "batched": False}, order_by="seen_at"
        ),
    }


def _assert_fails_fast(call: Callable[[], object], budget: float, name: str = "the call") -> None:
    started = time.monotonic()
    with pytest.raises(LedgerTimeoutError) as raised:
        call()
    elapsed = time.monotonic() - started
    assert isinstance(raised.value, TransientError) and is_transient(raised.value)
    assert elapsed < budget + 1.5, f"{name} took {elapsed:.1f}s for a {budget}s timeout"


def test_firestore_down_is_a_transient_error_within_the_default_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ledger = _ledger_at(f"127.0.0.1:{_free_port()}", monkeypatch, timeout=1.0)  # nothing listens there

    for name, call in _calls(ledger).items():
        _assert_fails_fast(call, 1.0, name)


def test_firestore_down_is_a_transient_error_within_a_per_call_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ledger = _ledger_at(f"127.0.0.1:{_free_port()}", monkeypatch, timeout=60.0)

    _assert_fails_fast(lambda: ledger.claim("k", "h", 10, 10, timeout=0.5), 0.5)
    _assert_fails_fast(lambda: ledger.get_run("run-1", timeout=0.5), 0.5)
    _assert_fails_fast(lambda: ledger.put_doc("windows", "w-1", {}, timeout=0.5), 0.5)
    _assert_fails_fast(lambda: ledger.query_docs("members", order_by="seen_at", timeout=0.5), 0.5)
    with pytest.raises(LedgerTimeoutError, match="no time left"):
        ledger.get("k", timeout=0)
    with pytest.raises(LedgerTimeoutError, match="no time left"):
        ledger.get_doc("windows", "w-1", timeout=0)


def test_a_silent_firestore_is_a_transient_error_within_the_timeout(
    silent_peer: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = _ledger_at(f"127.0.0.1:{silent_peer}", monkeypatch, timeout=1.0)

    _assert_fails_fast(lambda: ledger.claim("k", "h", 10, 10), 1.0)
    _assert_fails_fast(lambda: ledger.list_runs(), 1.0)
    _assert_fails_fast(lambda: ledger.put_doc("windows", "w-1", {}, create_only=True), 1.0)
    _assert_fails_fast(lambda: ledger.query_docs("members", equals={"dataset": "churn"}), 1.0)
