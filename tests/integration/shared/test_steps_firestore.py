"""The step runner's fault suite against the Firestore ledger on the real Firestore emulator."""

from __future__ import annotations

import os
import uuid

import pytest
from google.cloud import firestore

from shared.ledger import FirestoreLedger, Ledger
from tests.contract.ledger import FakeClock
from tests.contract.steps import StepRunnerContract

pytestmark = pytest.mark.integration


class TestStepRunnerFirestore(StepRunnerContract):
    @pytest.fixture
    def ledger(self, firestore_client: firestore.Client, clock: FakeClock) -> Ledger:
        assert os.environ["FIRESTORE_EMULATOR_HOST"]  # never touch a real project
        return FirestoreLedger(firestore_client, prefix=f"s{uuid.uuid4().hex[:12]}_", clock=clock)
