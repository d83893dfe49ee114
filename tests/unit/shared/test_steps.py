"""The step runner's fault suite against the in-memory ledger."""

from __future__ import annotations

import pytest

from shared.ledger import InMemoryLedger, Ledger
from tests.contract.ledger import FakeClock
from tests.contract.steps import StepRunnerContract

pytestmark = pytest.mark.unit


class TestStepRunnerInMemory(StepRunnerContract):
    @pytest.fixture
    def ledger(self, clock: FakeClock) -> Ledger:
        return InMemoryLedger(clock=clock)
