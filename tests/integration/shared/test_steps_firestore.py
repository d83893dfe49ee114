"""The step runner's fault suite against the Firestore ledger on the real Firestore emulator."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore

from emulators.stack import Stack, applied_env
from shared.ledger import FirestoreLedger, Ledger
from tests.contract.ledger import FakeClock
from tests.contract.steps import StepRunnerContract

pytestmark = pytest.mark.integration

PROJECT = "steps-contract-test"


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


class TestStepRunnerFirestore(StepRunnerContract):
    @pytest.fixture
    def ledger(self, firestore_client: firestore.Client, clock: FakeClock) -> Ledger:
        assert os.environ["FIRESTORE_EMULATOR_HOST"]  # never touch a real project
        return FirestoreLedger(firestore_client, prefix=f"s{uuid.uuid4().hex[:12]}_", clock=clock)
