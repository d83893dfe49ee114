"""The ``Deployments`` contract against the in-memory fake, and the revision names both sides use."""

from __future__ import annotations

import pytest

from shared.errors import TransientError
from shared.ports.deployments import Deployments, RevisionSpec, revision_name, spec_problems
from shared.ports.deployments_fake import FakeDeployments
from tests.contract.deployments import DeploymentsContract

pytestmark = pytest.mark.unit


class TestFakeDeployments(DeploymentsContract):
    @pytest.fixture
    def deployments(self) -> Deployments:
        return FakeDeployments(project="contract")

    @pytest.fixture
    def image(self) -> str:
        return "us-central1-docker.pkg.dev/contract/ports/server:1"

    def make_revision_fail(self, deployments: Deployments, service: str, revision: str) -> None:
        assert isinstance(deployments, FakeDeployments)
        deployments.fail_revisions(revision)

    def inject_unavailable(self, deployments: Deployments, method: str) -> None:
        assert isinstance(deployments, FakeDeployments)
        deployments.faults.fail_next(method, TransientError("UNAVAILABLE (injected)"))


@pytest.mark.parametrize(
    ("suffix", "expected"),
    [
        ("run-20261101-abc", "churn-predictor-run-20261101-abc"),
        ("Nightly_Retrain 2026/11/01", "churn-predictor-nightly-retrain-2026-11-01"),
        ("---", "churn-predictor-rev"),
    ],
)
def test_revision_names_are_valid_and_deterministic(suffix: str, expected: str) -> None:
    name = revision_name("churn-predictor", suffix)

    assert name == expected == revision_name("churn-predictor", suffix)
    assert spec_problems("churn-predictor", RevisionSpec(name=name, image="i")) == []


def test_long_suffixes_are_shortened_without_colliding() -> None:
    first = revision_name("churn-predictor", "x" * 60 + "-2026-11-01")  # differ only past the cut
    second = revision_name("churn-predictor", "x" * 60 + "-2026-11-02")

    assert first != second
    assert len(first) <= 63 and len(second) <= 63
    assert spec_problems("churn-predictor", RevisionSpec(name=first, image="i")) == []
