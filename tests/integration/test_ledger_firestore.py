"""The ledger contract against :class:`shared.ledger.FirestoreLedger` on the real Firestore emulator.

One emulator per module (the project's stack with just Firestore: the Cloud CLI's own launcher, stopped by
process group); each test gets its own collection prefix, so tests do not see each other's documents.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore

from emulators.stack import Stack, applied_env
from shared.ledger import FirestoreLedger, Ledger, StepStatus
from tests.ledger_contract import FakeClock, LedgerContract

pytestmark = pytest.mark.integration

PROJECT = "ledger-contract-test"


@pytest.fixture(scope="module")
def firestore_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[firestore.Client]:
    stack = Stack(tmp_path_factory.mktemp("firestore"), project=PROJECT, components=["firestore"])
    state = stack.up(progress=lambda _line: None)
    try:
        with applied_env(state.env):
            client = firestore.Client(project=PROJECT, credentials=AnonymousCredentials())
            try:
                yield client
            finally:
                client.close()
    finally:
        stack.down(progress=lambda _line: None)


class TestFirestoreLedger(LedgerContract):
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
