"""The ``ModelRegistry`` contract against the Vertex AI emulator's Model Registry, through the real
``aiplatform_v1`` client."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.api_core import exceptions as google_exceptions

from emulators.apiserver.admin import EmulatorAdmin
from shared import clients
from shared.errors import TransientError
from shared.ports.errors import AlreadyExists
from shared.ports.registry import ModelRegistry, VertexModelRegistry
from tests.contract.registry import ModelRegistryContract, upload
from tests.integration.api_emulators import PROJECT, ApiStack, running

pytestmark = pytest.mark.integration

LOCATION = "us-central1"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiStack]:
    root: Path = tmp_path_factory.mktemp("registry-port")
    with running(root, vertex=True) as api:
        clients.reset()
        yield api


@pytest.fixture
def admin(stack: ApiStack) -> Iterator[EmulatorAdmin]:
    admin = EmulatorAdmin(stack.hosts["vertex"])
    yield admin
    admin.clear_faults()


class TestVertexModelRegistry(ModelRegistryContract):
    @pytest.fixture
    def registry(self, stack: ApiStack, admin: EmulatorAdmin) -> ModelRegistry:
        return VertexModelRegistry(PROJECT, LOCATION)

    def inject_unavailable(self, registry: ModelRegistry, method: str) -> None:
        rpc = {"upload": "UploadModel", "get_version": "GetModel"}[method]
        EmulatorAdmin(os.environ["VERTEX_EMULATOR_HOST"]).fail_next(rpc, "UNAVAILABLE")


def test_a_model_created_meanwhile_gets_a_new_version_instead(stack: ApiStack, admin: EmulatorAdmin) -> None:
    """Two first uploads race: the loser's create answers ALREADY_EXISTS and it adds a version instead."""
    model_id = "raced"
    registry = VertexModelRegistry(PROJECT, LOCATION)
    registry.upload(upload(model_id, "run-1"))
    # The next lookup says "no such model", as it would have before the other upload finished.
    admin.fail_next("GetModel", "NOT_FOUND")

    version = registry.upload(upload(model_id, "run-2"))

    assert version.version_id == "2"
    assert [v.version_id for v in registry.list_versions(model_id)] == ["1", "2"]


def test_already_exists_is_told_apart_from_aborted_over_rest(stack: ApiStack, admin: EmulatorAdmin) -> None:
    registry = VertexModelRegistry(PROJECT, LOCATION)
    admin.fail_next("UploadModel", "ALREADY_EXISTS", count=2)
    admin.fail_next("GetModel", "NOT_FOUND")

    with pytest.raises(AlreadyExists) as raised:
        registry.upload(upload("twice-refused", "run-1"))

    assert isinstance(raised.value.__cause__, google_exceptions.Conflict)
    admin.clear_faults()
    admin.fail_next("UploadModel", "ABORTED")
    with pytest.raises(TransientError):
        registry.upload(upload("aborted", "run-1"))
