"""The ``Objects`` contract against the storage emulator, through the real ``google-cloud-storage`` client."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.api_core import exceptions as google_exceptions

from emulators.apiserver.admin import EmulatorAdmin
from shared import clients
from shared.errors import DeadlineExceeded, TransientError
from shared.ports.objects import Objects, StorageObjects
from tests.contract.objects import ObjectsContract, unique_bucket
from tests.integration.api_emulators import ApiStack, running

pytestmark = pytest.mark.integration

#: The storage emulator's fault-injection keys (JSON API method ids) for the port's methods.
METHODS = {"write": "objects.insert", "read_bytes": "objects.get", "list": "objects.list"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiStack]:
    root: Path = tmp_path_factory.mktemp("objects-port")
    with running(root, storage=True) as api:
        clients.reset()
        yield api


@pytest.fixture
def admin(stack: ApiStack) -> Iterator[EmulatorAdmin]:
    admin = EmulatorAdmin(os.environ["STORAGE_EMULATOR_HOST"])
    yield admin
    admin.clear_faults()


class TestStorageObjects(ObjectsContract):
    @pytest.fixture
    def objects(self, stack: ApiStack, admin: EmulatorAdmin) -> Objects:
        return StorageObjects()

    @pytest.fixture
    def bucket(self, objects: Objects) -> str:
        name = unique_bucket()
        clients.storage().create_bucket(name)
        return name

    def inject_unavailable(self, objects: Objects, method: str) -> None:
        EmulatorAdmin(os.environ["STORAGE_EMULATOR_HOST"]).fail_next(METHODS[method], "UNAVAILABLE")


def test_the_google_error_is_kept_as_the_cause(stack: ApiStack, admin: EmulatorAdmin) -> None:
    bucket = unique_bucket()
    clients.storage().create_bucket(bucket)
    admin.fail_next("objects.insert", "RESOURCE_EXHAUSTED")

    with pytest.raises(TransientError) as raised:
        StorageObjects().write(bucket, "a.txt", "x")

    assert isinstance(raised.value.__cause__, google_exceptions.TooManyRequests)


def test_reads_are_retried_within_the_budget(stack: ApiStack, admin: EmulatorAdmin) -> None:
    bucket = unique_bucket()
    clients.storage().create_bucket(bucket)
    objects = StorageObjects()
    objects.write(bucket, "a.txt", "x")
    admin.fail_next("objects.get", "UNAVAILABLE", count=2)

    assert objects.read_text(bucket, "a.txt", timeout=10) == "x"


def test_a_slow_answer_ends_at_the_timeout_as_a_deadline(stack: ApiStack, admin: EmulatorAdmin) -> None:
    bucket = unique_bucket()
    clients.storage().create_bucket(bucket)
    admin.add_latency("objects.list", 3.0)

    with pytest.raises(DeadlineExceeded):
        StorageObjects().list(bucket, timeout=0.5)
