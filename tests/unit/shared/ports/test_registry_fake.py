"""The ``ModelRegistry`` contract against the in-memory fake."""

from __future__ import annotations

import pytest

from shared.errors import TransientError
from shared.ports.registry import ModelRegistry, as_stored
from shared.ports.registry_fake import FakeModelRegistry
from tests.contract.registry import ModelRegistryContract

pytestmark = pytest.mark.unit


class TestFakeModelRegistry(ModelRegistryContract):
    @pytest.fixture
    def registry(self) -> ModelRegistry:
        return FakeModelRegistry(project="contract")

    def inject_unavailable(self, registry: ModelRegistry, method: str) -> None:
        assert isinstance(registry, FakeModelRegistry)
        registry.faults.fail_next(method, TransientError("UNAVAILABLE (injected)"))


def test_metadata_is_stored_as_a_protobuf_value_would_give_it_back() -> None:
    assert as_stored({"n": 3, "ok": True, "none": None, "xs": (1, "a")}) == {
        "n": 3.0,
        "ok": True,
        "none": None,
        "xs": [1.0, "a"],
    }
    assert isinstance(as_stored({"n": 3})["n"], float)
    with pytest.raises(TypeError):
        as_stored({"when": object()})
